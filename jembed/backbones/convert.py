"""Weight files -> Flax variables: read a file's tensors, map each by a table of rules, check every name and shape.

Readers (all give {name: float32 numpy array} in the file's own layout):
  .safetensors            `safetensors.numpy` (no torch needed)
  .pt / .pth / .bin       torch state dicts, zip or legacy format, read without torch (`torch_pickle`, which refuses
                          any global but tensors and dicts, as `torch.load(weights_only=True)` does); TorchScript
                          archives such as OpenAI's CLIP files through `torch.jit.load`, only when torch is installed
                          (the `torch` extra)
  .caffemodel             Caffe's NetParameter, parsed with protobuf (see `caffe_proto`): `<layer>.weight`, `.bias`

A family module describes its file as `Expect` rows (the file's key, where it goes in the Flax tree, the shape the
architecture needs in the file's layout, how to transpose it) plus `(regex, reason)` rows of tensors it leaves out on
purpose. `convert` then uses every expected tensor, skips the listed ones, and refuses anything else, so a file of
another architecture (or a new variant we do not know) is an error, not silently half-loaded.
"""

import dataclasses
import os
import re
import zipfile

import numpy as np
from safetensors.numpy import load_file

from jembed.backbones import caffe_proto
from jembed.backbones import torch_pickle

# Checkpoint wrappers of training scripts (DeiT: {'model': ...}; timm train scripts: {'state_dict': ...}).
_WRAPPERS = ("state_dict", "model", "module")


@dataclasses.dataclass(frozen=True)
class Expect:
  """One tensor the architecture needs.

  Attributes:
    key: the name in the file (e.g. 'layer1.0.conv1.weight').
    target: the path in the Flax params tree (e.g. ('layer1_0', 'conv1', 'kernel')).
    shape: its shape in the file's layout.
    layout: 'linear' ([out, in] -> [in, out]), 'conv' ([O, I, H, W] -> [H, W, I, O]), 'unbatch' (the leading 1
      dropped: timm's [1, T, C] tokens), 'row' ([C] -> [1, C]: CLIP's class embedding), or 'same'.
  """

  key: str
  target: tuple[str, ...]
  shape: tuple[int, ...]
  layout: str = "same"


def conv_bn_rows(conv_key: str, bn_key: str, conv_target: tuple[str, ...], bn_target: tuple[str, ...], out: int,
                 inp: int, k: int) -> list[Expect]:  # fmt: skip
  """The rows of a bias-free torch convolution `conv_key` ([out, inp, k, k]) into the Flax conv at `conv_target` and
  of the BatchNorm2d `bn_key` after it (out channels) into a `resnet.FrozenBatchNorm` at `bn_target`."""
  names = (("weight", "scale"), ("bias", "bias"), ("running_mean", "mean"), ("running_var", "var"))
  return [Expect(f"{conv_key}.weight", conv_target + ("kernel",), (out, inp, k, k), "conv")] + [
      Expect(f"{bn_key}.{suffix}", bn_target + (name,), (out,)) for suffix, name in names
  ]


class WeightFileError(ValueError):
  """A weight file that does not hold the architecture asked for (the message names the file, key and shape)."""


def read_tensors(path: str) -> dict[str, np.ndarray]:
  """Every tensor of a weight file, by name, as float32 numpy arrays in the file's layout and order.

  Raises:
    FileNotFoundError: no such file.
    WeightFileError: an unknown extension, a torch file that is not a state dict, or a TorchScript archive without
      torch installed.
  """
  path = os.path.expanduser(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no weight file at {path!r}")
  if path.endswith(".safetensors"):
    return {k: np.asarray(v, np.float32) for k, v in load_file(path).items()}
  if path.endswith(".caffemodel"):
    return caffe_proto.read_caffemodel(path)
  if path.endswith((".pt", ".pth", ".bin", ".ckpt")):
    return _read_torch(path)
  raise WeightFileError(f"{path}: unknown weight file type (use .safetensors, .pt/.pth/.bin or .caffemodel)")


def _read_torch(path: str) -> dict[str, np.ndarray]:
  if _is_torchscript(path):  # OpenAI's CLIP .pt files are TorchScript archives, not pickled state dicts
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise WeightFileError(
          f"{path}: a TorchScript archive; reading it needs torch (pip install 'jembed[torch]'), or convert the "
          "file to .safetensors where torch is installed"
      ) from None
    state = torch.jit.load(path, map_location="cpu").state_dict()
    state = {k: v.detach().float().cpu().numpy() for k, v in state.items()}
  else:
    try:
      state = torch_pickle.load(path)  # state dicts need no torch
    except torch_pickle.TorchPickleError as e:
      raise WeightFileError(str(e)) from None
  for _ in range(2):
    wrapped = [k for k in _WRAPPERS if isinstance(state, dict) and isinstance(state.get(k), dict)]
    state = state[wrapped[0]] if wrapped else state
  if not isinstance(state, dict):
    raise WeightFileError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors")
  return {k: np.asarray(v, np.float32) for k, v in state.items() if isinstance(v, np.ndarray)}


def _is_torchscript(path: str) -> bool:
  if not zipfile.is_zipfile(path):
    return False
  with zipfile.ZipFile(path) as z:
    return any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())


def strip_prefix(tensors: dict[str, np.ndarray], first_key: str) -> dict[str, np.ndarray]:
  """Drops a wrapper prefix ('module.' of DataParallel, 'model.', ...) found in front of `first_key`, if any."""
  if first_key in tensors:
    return tensors
  prefixes = [k[: -len(first_key)] for k in tensors if k.endswith("." + first_key)]
  if not prefixes:
    return tensors
  prefix = min(prefixes, key=len)
  return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in tensors.items()}


def convert(
    tensors: dict[str, np.ndarray], expected: list[Expect], ignored: list[tuple[str, str]], *, path: str, arch: str
) -> tuple[dict, dict[str, str]]:
  """The Flax params tree of `expected`, filled from `tensors`.

  Args:
    tensors: the file's tensors (see `read_tensors`).
    expected: every tensor the architecture needs.
    ignored: (regex, reason) of tensors left out on purpose (a classifier, the text tower, BatchNorm counters).
    path, arch: for the messages.

  Returns:
    (params, ignored): the nested params dict of float32 arrays in Flax layout, and {file key: reason} of what was
    left out.

  Raises:
    WeightFileError: a needed key missing or of the wrong shape (one line naming the key, file and expected shape),
      or tensors that are neither needed nor on the ignore list.
  """
  params, used = {}, set()
  for e in expected:
    if e.key not in tensors:
      raise WeightFileError(
          f"{path}: no tensor {e.key!r}, which {arch} needs with shape {e.shape} (the file has "
          f"{len(tensors)} tensors, e.g. {sorted(tensors)[:4]})"
      )
    value = tensors[e.key]
    if tuple(value.shape) != tuple(e.shape):
      raise WeightFileError(f"{path}: tensor {e.key!r} has shape {tuple(value.shape)}, {arch} needs {e.shape}")
    node = params
    for k in e.target[:-1]:
      node = node.setdefault(k, {})
    node[e.target[-1]] = to_flax(value, e.layout)
    used.add(e.key)
  skipped, unknown = {}, []
  for key in tensors:
    if key in used:
      continue
    reason = next((why for pattern, why in ignored if re.fullmatch(pattern, key)), None)
    if reason is None:
      unknown.append(key)
    else:
      skipped[key] = reason
  if unknown:
    raise WeightFileError(
        f"{path}: {len(unknown)} tensors that {arch} neither uses nor ignores on purpose, e.g. "
        f"{unknown[:4]} (shape {tuple(tensors[unknown[0]].shape)}): is it another architecture?"
    )
  return params, skipped


def to_flax(value: np.ndarray, layout: str) -> np.ndarray:
  """A tensor in torch/Caffe layout -> Flax layout (see `Expect.layout`)."""
  value = np.asarray(value, np.float32)
  if layout == "linear":
    return np.ascontiguousarray(value.T)
  if layout == "conv":
    return np.ascontiguousarray(value.transpose(2, 3, 1, 0))
  if layout == "unbatch":
    return value[0]
  if layout == "row":
    return value[None]
  if layout == "same":
    return value
  raise ValueError(f"unknown layout {layout!r}")
