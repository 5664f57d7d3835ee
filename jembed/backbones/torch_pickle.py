"""torch's pickled state dicts (.pt / .pth / .bin) read into numpy without torch.

torch writes two formats, both a pickle whose tensors point at storages by a persistent id:
  zip (torch >= 1.6)   `<archive>/data.pkl` and one raw little-endian file per storage, `<archive>/data/<key>`;
                       id ('storage', type, key, location, numel).
  legacy (< 1.6, and   five pickles in a row: magic number, protocol version, system info, the object (ids
  `_use_new_zipfile_  ('storage', type, key, location, numel, view)), the storage keys in file order; then each
  serialization=False`) storage as an int64 element count and its raw bytes.
A tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`: a strided view of its storage.

Only what a state dict needs is unpickled (tensors, parameters, dicts, OrderedDict and plain values): any other global
is refused, as `torch.load(weights_only=True)` refuses it, so a weight file cannot run code. TorchScript archives
(`code/` in the zip, e.g. OpenAI's CLIP .pt) are not state dicts; they need torch (`convert.read_tensors`).
"""

import collections
import dataclasses
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def _dtype(storage_type: "_StorageType") -> np.dtype:
  """The little-endian numpy dtype of a torch storage type (torch writes storages little-endian)."""
  return np.dtype(_DTYPES[storage_type.name]).newbyteorder("<")


class TorchPickleError(ValueError):
  """A file that is not a torch state dict this reader can read (the message names the file and why)."""


@dataclasses.dataclass(frozen=True)
class _StorageType:
  name: str


@dataclasses.dataclass
class _Storage:
  key: str
  dtype: np.dtype
  data: np.ndarray | None = None  # filled when the raw bytes are read (after the object, in legacy files)
  view: tuple | None = None  # legacy views: (root storage key, element offset, size)


@dataclasses.dataclass(frozen=True)
class _Tensor:
  storage: _Storage
  offset: int
  size: tuple
  stride: tuple

  def materialize(self, storages: dict) -> np.ndarray:
    storage, offset = self.storage, self.offset
    if storage.view is not None:
      root_key, view_offset, _ = storage.view
      storage, offset = storages[root_key], offset + view_offset
    flat = storage.data
    if not self.size:
      return np.array(flat[offset])
    itemsize = flat.dtype.itemsize
    needed = offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
    if min(self.size) > 0 and needed > flat.size:
      raise TorchPickleError(f"a tensor of size {self.size} reaches past its storage of {flat.size} elements")
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], self.size, tuple(s * itemsize for s in self.stride), writeable=False
    )
    return np.array(view)


def _rebuild_tensor(storage, offset, size, stride, *unused):
  del unused  # requires_grad, backward hooks, metadata: nothing a state dict's values need
  return _Tensor(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad, hooks, *unused):
  del requires_grad, hooks, unused
  return data


_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _Unpickler(pickle.Unpickler):
  """Resolves only the globals of a state dict; storages become `_Storage` records looked up by `load_storage`."""

  def __init__(self, file, load_storage, path: str):
    super().__init__(file)
    self._load_storage, self._path = load_storage, path

  def find_class(self, module, name):
    if (module, name) in _GLOBALS:
      return _GLOBALS[(module, name)]
    if module == "torch" and name in _DTYPES:
      return _StorageType(name)
    raise TorchPickleError(
        f"{self._path}: refuses to unpickle {module}.{name} (only tensors and dicts are read without torch; "
        "install torch for other files)"
    )

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
      raise TorchPickleError(f"{self._path}: unknown persistent id {pid!r:.80}")
    return self._load_storage(pid)


def _materialize(obj, storages: dict):
  if isinstance(obj, _Tensor):
    return obj.materialize(storages)
  if isinstance(obj, dict):
    return type(obj)((k, _materialize(v, storages)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialize(v, storages) for v in obj)
  return obj


def _read_zip(path: str):
  with zipfile.ZipFile(path) as z:
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkl:
      raise TorchPickleError(f"{path}: a zip archive without data.pkl (not a torch file)")
    prefix = pkl[0][: -len("data.pkl")]
    if any(n.startswith(prefix + "code/") for n in z.namelist()):
      raise TorchPickleError(f"{path}: a TorchScript archive, not a state dict (reading it needs torch)")
    storages = {}

    def load(pid):
      _, stype, key, _, numel = pid[:5]
      if key not in storages:
        raw = z.read(f"{prefix}data/{key}")
        storages[key] = _Storage(key, _dtype(stype), np.frombuffer(raw, _dtype(stype), count=int(numel)))
      return storages[key]

    with z.open(pkl[0]) as f:
      obj = _Unpickler(f, load, path).load()
  return _materialize(obj, storages)


def _read_legacy(path: str):
  with open(path, "rb") as f:
    try:
      magic = pickle.load(f)
    except Exception as e:  # noqa: BLE001  (any unpickling failure means: not this format)
      raise TorchPickleError(f"{path}: neither a zip nor a legacy torch file ({e})") from None
    if magic != _LEGACY_MAGIC:
      raise TorchPickleError(f"{path}: not a torch file (no torch magic number)")
    pickle.load(f)  # protocol version
    pickle.load(f)  # system info (endianness, type sizes)
    storages = {}

    def load(pid):
      _, stype, key, _, _, view = pid  # (the element count comes again before the storage's bytes)
      if key not in storages:
        storages[key] = _Storage(key, _dtype(stype))
      if view is None:
        return storages[key]
      view_key, offset, size = view
      if view_key not in storages:
        storages[view_key] = _Storage(view_key, storages[key].dtype, view=(key, int(offset), int(size)))
      return storages[view_key]

    obj = _Unpickler(f, load, path).load()
    for key in pickle.load(f):
      storage, header = storages[key], f.read(8)
      numel = struct.unpack("<q", header)[0] if len(header) == 8 else -1
      raw = f.read(max(numel, 0) * storage.dtype.itemsize)
      if numel < 0 or len(raw) != numel * storage.dtype.itemsize:
        raise TorchPickleError(f"{path}: ends inside storage {key!r} (a truncated file?)")
      storage.data = np.frombuffer(raw, storage.dtype)
  return _materialize(obj, storages)


def load(path: str):
  """The object of a torch file with its tensors as numpy arrays (the storage's dtype: float32, float16, bfloat16,
  int64, ...). Raises TorchPickleError for anything but a pickled object of tensors, dicts and plain values."""
  return _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
