"""Reading torch files without torch: the committed files torch itself wrote (zip and legacy formats) against what
they hold, truncation and foreign globals refused without running them, and the same tensors through `convert`."""

import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest
from safetensors.numpy import load_file

from jembed import backbones
from jembed.backbones import convert
from jembed.backbones import torch_pickle

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "fixtures"))
import make_backbone_fixtures as fixtures  # noqa: E402  pylint: disable=g-import-not-at-top

EXPECTED = os.path.join(fixtures.OUT, "torch_files.npz")


@pytest.mark.parametrize("name", ["torch_zip", "torch_legacy"])
def test_files_written_by_torch_read_exactly(name):
  """Views (transposed, sliced at an offset), a Parameter, half / bfloat16 / int64 / bool and an empty tensor come
  back with torch's values, shapes and dtypes; the wrapper's plain values too."""
  got = torch_pickle.load(os.path.join(fixtures.OUT, f"{name}.pth"))
  want = np.load(EXPECTED)
  assert got["epoch"] == 3 and list(got["state_dict"]) == ["w", "t", "sl", "p", "h", "bf", "i", "b", "n"]
  state = got["state_dict"]
  for key in want.files:
    np.testing.assert_array_equal(state[key].astype(np.float32), want[key], err_msg=key)
    assert state[key].shape == want[key].shape, key
  assert state["h"].dtype == np.float16 and str(state["bf"].dtype) == "bfloat16"
  assert state["i"].dtype == np.int64 and state["b"].dtype == np.bool_
  np.testing.assert_array_equal(state["t"], state["w"].T)  # a view of the same storage


def test_convert_reads_a_pth_state_dict_as_the_safetensors_file(tmp_path):
  """The ResNet fixture re-saved as a legacy-format .pth by hand (the format's own layout: five pickles, then each
  storage's element count and bytes) loads the same variables as its .safetensors."""
  tensors = load_file(os.path.join(fixtures.OUT, "resnet_timm.safetensors"))
  path = tmp_path / "resnet.pth"
  _write_legacy(path, {"model": tensors})
  _, a = backbones.load_pretrained(fixtures.TINY["resnet_timm"], os.path.join(fixtures.OUT, "resnet_timm.safetensors"))
  _, b = backbones.load_pretrained(fixtures.TINY["resnet_timm"], str(path))
  for x, y in zip(_leaves(a), _leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_foreign_globals_are_refused_and_not_run(tmp_path):
  """A pickle that would call os.system is an error naming the global; the command never runs."""
  marker = tmp_path / "ran"

  class Evil:

    def __reduce__(self):
      return os.system, (f"touch {marker}",)

  for zipped in (True, False):
    path = tmp_path / f"evil_{zipped}.pth"
    if zipped:
      with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
    else:
      with open(path, "wb") as f:
        for obj in (torch_pickle._LEGACY_MAGIC, 1001, {}, {"w": Evil()}, []):  # pylint: disable=protected-access
          pickle.dump(obj, f, protocol=2)
    with pytest.raises(torch_pickle.TorchPickleError, match=r"refuses to unpickle (posix|nt)\.system"):
      torch_pickle.load(str(path))
    with pytest.raises(convert.WeightFileError, match="refuses to unpickle"):
      convert.read_tensors(str(path))
  assert not marker.exists()


def test_truncated_and_foreign_files_name_the_problem(tmp_path):
  data = open(os.path.join(fixtures.OUT, "torch_legacy.pth"), "rb").read()
  (tmp_path / "cut.pth").write_bytes(data[:-10])
  with pytest.raises(torch_pickle.TorchPickleError, match="cut.pth: ends inside storage"):
    torch_pickle.load(str(tmp_path / "cut.pth"))
  (tmp_path / "text.pth").write_bytes(b"not a torch file at all")
  with pytest.raises(convert.WeightFileError, match="text.pth: neither a zip nor a legacy torch file"):
    convert.read_tensors(str(tmp_path / "text.pth"))


def _leaves(tree):
  if isinstance(tree, dict):
    for k in sorted(tree):
      yield from _leaves(tree[k])
  else:
    yield np.asarray(tree)


def _write_legacy(path, obj) -> None:
  """torch's legacy format written from numpy float32 arrays without torch (each array its own contiguous storage):
  the globals torch would name are written as pickle GLOBAL opcodes."""
  storages = []
  names = {}

  class FloatStorage:
    pass

  def rebuild_tensor_v2(*args):
    return args

  names[id(FloatStorage)], names[id(rebuild_tensor_v2)] = ("torch", "FloatStorage"), (
      "torch._utils",
      "_rebuild_tensor_v2",
  )

  class Tensor:

    def __init__(self, key, shape):
      self.key, self.shape = key, shape

    def __reduce__(self):
      stride = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
      return rebuild_tensor_v2, (("storage", self.key), 0, self.shape, stride, False, {})

  class Pickler(pickle._Pickler):  # pylint: disable=protected-access  (the Python pickler: save_global is hookable)

    def persistent_id(self, o):
      if isinstance(o, tuple) and len(o) == 2 and o[0] == "storage":
        return ("storage", FloatStorage, o[1], "cpu", storages[int(o[1])].size, None)
      return None

    def save_global(self, o, name=None):
      module, qualname = names[id(o)]
      self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
      self.memoize(o)

    # The type dispatch table holds the base class's save_global: point functions and classes at ours.
    dispatch = {**pickle._Pickler.dispatch, types.FunctionType: save_global, type: save_global}  # pylint: disable=protected-access

  def wrap(value):
    if isinstance(value, dict):
      return {k: wrap(v) for k, v in value.items()}
    storages.append(np.ascontiguousarray(value, np.float32))
    return Tensor(str(len(storages) - 1), tuple(value.shape))

  wrapped = wrap(obj)
  with open(path, "wb") as f:
    for header in (torch_pickle._LEGACY_MAGIC, 1001, {"little_endian": True}):  # pylint: disable=protected-access
      pickle.dump(header, f, protocol=2)
    Pickler(f, protocol=2).dump(wrapped)
    pickle.dump([str(i) for i in range(len(storages))], f, protocol=2)
    for arr in storages:
      f.write(struct.pack("<q", arr.size))
      f.write(arr.astype("<f4").tobytes())
