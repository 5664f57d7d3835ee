"""jembed.backbones against the reference libraries' own outputs (committed fixtures; regenerate with
tests/fixtures/make_backbone_fixtures.py), the caffemodel reader against files written from known arrays, and the
converters' errors. The full-size timm checks run only where timm is installed (`pip install -e ".[reference]"`).

Parity is relative to the features' scale: max |ours - theirs| <= 1e-4 * max |theirs|.
"""

import dataclasses
import os
import sys

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from jembed import backbones
from jembed.backbones import caffe_proto
from jembed.backbones import convert

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "fixtures"))
import make_backbone_fixtures as fixtures  # noqa: E402  pylint: disable=g-import-not-at-top

RTOL = 1e-4


def _fixture(name: str) -> str:
  return os.path.join(fixtures.OUT, f"{name}.caffemodel" if name == "caffenet" else f"{name}.safetensors")


def assert_features_close(got, want):
  got, want = np.asarray(got), np.asarray(want)
  assert got.shape == want.shape and got.dtype == np.float32
  err = np.abs(got - want).max() / np.abs(want).max()
  assert err <= RTOL, f"max relative difference {err:.3g} > {RTOL}"


@pytest.mark.parametrize("name", sorted(fixtures.TINY))
def test_features_match_reference_library(name):
  """timm / torchvision / OpenCLIP / a torch CaffeNet computed these features from these files and images."""
  ref = np.load(os.path.join(fixtures.OUT, f"{name}.npz"))
  spec, variables = backbones.load_pretrained(fixtures.TINY[name], _fixture(name))
  assert_features_close(backbones.features(spec, variables, ref["images"]), ref["features"])
  assert spec.features == ref["features"].shape[1]


@pytest.mark.parametrize("name,size", [(n, s) for n, sizes in sorted(fixtures.OTHER_SIZES.items()) for s in sizes])
def test_vit_at_other_sizes_resamples_positions_as_timm(name, size):
  """Up and down from the file's grid: the positions resampled at load time equal timm's dynamic_img_size path."""
  ref = np.load(os.path.join(fixtures.OUT, f"{name}.npz"))
  spec, variables = backbones.load_pretrained(fixtures.TINY[name], _fixture(name), image_size=size)
  assert spec.image_size == size and spec.config.grid == size // spec.config.patch
  assert_features_close(backbones.features(spec, variables, ref[f"images_{size}"]), ref[f"features_{size}"])


def test_features_jit_and_any_input_size():
  spec, variables = backbones.load_pretrained(fixtures.TINY["resnet_timm"], _fixture("resnet_timm"))
  images = np.random.default_rng(0).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
  eager = backbones.features(spec, variables, images)
  jitted = jax.jit(backbones.features, static_argnums=0)(spec, variables, images)
  np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)
  assert eager.shape == (3, spec.features)


def test_every_tensor_used_or_ignored_with_a_reason():
  spec, variables, ignored = backbones.load_pretrained(
      fixtures.TINY["openclip"], _fixture("openclip"), return_ignored=True
  )
  n_used = len(jax.tree.leaves(variables))
  assert n_used + len(ignored) == len(load_file(_fixture("openclip")))
  assert {k for k, why in ignored.items() if why == "the text tower"} >= {"token_embedding.weight", "text_projection"}
  assert all(k.startswith("visual.") for k in set(load_file(_fixture("openclip"))) - set(ignored))


def test_missing_misshaped_and_unknown_tensors_are_one_clear_error(tmp_path):
  tensors = load_file(_fixture("vit_augreg"))
  spec = fixtures.TINY["vit_augreg"]
  missing = dict(tensors)
  del missing["blocks.1.mlp.fc2.weight"]
  save_file(missing, str(tmp_path / "missing.safetensors"))
  with pytest.raises(
      convert.WeightFileError,
      match=r"missing\.safetensors: no tensor 'blocks\.1\.mlp\.fc2\.weight'"
      r", which vit_augreg needs with shape \(32, 128\)",
  ):
    backbones.load_pretrained(spec, str(tmp_path / "missing.safetensors"))
  bad = dict(tensors, **{"blocks.0.attn.qkv.bias": np.zeros(95, np.float32)})
  save_file(bad, str(tmp_path / "bad.safetensors"))
  with pytest.raises(
      convert.WeightFileError,
      match=r"bad\.safetensors: tensor 'blocks\.0\.attn\.qkv\.bias' has " r"shape \(95,\), vit_augreg needs \(96,\)",
  ):
    backbones.load_pretrained(spec, str(tmp_path / "bad.safetensors"))
  extra = dict(tensors, **{"dist_token": np.zeros((1, 1, 32), np.float32)})  # a distilled DeiT: not supported
  save_file(extra, str(tmp_path / "extra.safetensors"))
  with pytest.raises(convert.WeightFileError, match=r"neither uses nor ignores on purpose, e\.g\. \['dist_token'\]"):
    backbones.load_pretrained(spec, str(tmp_path / "extra.safetensors"))
  with pytest.raises(convert.WeightFileError, match="no tensor 'conv1.weight'"):  # a ViT file given as a ResNet
    backbones.load_pretrained(fixtures.TINY["resnet_timm"], _fixture("vit_augreg"))
  with pytest.raises(ValueError, match="unknown backbone 'resnet51'"):
    backbones.load_pretrained("resnet51", _fixture("vit_augreg"))
  with pytest.raises(FileNotFoundError, match="no weight file"):
    backbones.load_pretrained("resnet50", str(tmp_path / "nothing.safetensors"))


def test_prefixed_state_dict_is_read(tmp_path):
  """DataParallel's 'module.' prefix (and similar wrappers) are stripped."""
  tensors = load_file(_fixture("resnet_timm"))
  save_file({f"module.{k}": v for k, v in tensors.items()}, str(tmp_path / "wrapped.safetensors"))
  _, a = backbones.load_pretrained(fixtures.TINY["resnet_timm"], _fixture("resnet_timm"))
  _, b = backbones.load_pretrained(fixtures.TINY["resnet_timm"], str(tmp_path / "wrapped.safetensors"))
  jax.tree.map(np.testing.assert_array_equal, a, b)


def _caffe_layers(rng):
  return [
      ("data", "Data", []),
      ("conv1", "Convolution", [rng.normal(size=(8, 3, 11, 11)), rng.normal(size=8)]),
      ("relu1", "ReLU", []),
      ("pool1", "Pooling", []),
      ("norm1", "LRN", []),
      ("conv2", "Convolution", [rng.normal(size=(16, 4, 5, 5)), rng.normal(size=16)]),
      ("conv3", "Convolution", [rng.normal(size=(16, 16, 3, 3)), rng.normal(size=16)]),
      ("conv4", "Convolution", [rng.normal(size=(16, 8, 3, 3)), rng.normal(size=16)]),
      ("conv5", "Convolution", [rng.normal(size=(8, 8, 3, 3)), rng.normal(size=8)]),
      ("fc6", "InnerProduct", [rng.normal(size=(6, 32)), rng.normal(size=6)]),
      ("fc-rcnn", "InnerProduct", [rng.normal(size=(3, 6)), rng.normal(size=3)]),
  ]


@pytest.mark.parametrize("v1,legacy_dims", [(True, True), (False, False), (False, True)])
def test_caffemodel_reads_back_exactly_in_layer_order(tmp_path, v1, legacy_dims):
  """V1 `layers` with num/channels/height/width (the 2014 model zoo) and V2 `layer` with `shape`."""
  layers = _caffe_layers(np.random.default_rng(0))
  path = str(tmp_path / "net.caffemodel")
  caffe_proto.write_caffemodel(path, layers, v1=v1, legacy_dims=legacy_dims)
  read = caffe_proto.read_layers(path)
  assert list(read) == [name for name, _, _ in layers]
  for name, kind, blobs in layers:
    got_kind, got = read[name]
    assert got_kind == kind and len(got) == len(blobs)
    for g, b in zip(got, blobs):  # legacy dims pad to 4-D; the values and their order are Caffe's
      np.testing.assert_array_equal(g.reshape(b.shape), b.astype(np.float32))
  tensors = caffe_proto.read_caffemodel(path)
  assert tensors["fc6.weight"].shape == (6, 32) and tensors["conv1.bias"].shape == (8,)
  _, variables, ignored = backbones.load_pretrained(_caffenet_spec(), path, return_ignored=True)
  trunk = variables["params"]["trunk"]
  np.testing.assert_array_equal(trunk["conv2"]["kernel"], layers[5][2][0].astype(np.float32).transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(trunk["conv5"]["bias"], layers[8][2][1].astype(np.float32))
  assert set(ignored) == {"fc6.weight", "fc6.bias", "fc-rcnn.weight", "fc-rcnn.bias"}


def _caffenet_spec():
  return dataclasses.replace(fixtures.TINY["caffenet"], config=(8, 16, 16, 16, 8))


def test_caffenet_backbone_is_the_training_models_caffenet():
  """The paper's network in jembed.training.model runs the same conv1-pool5 as the registry's 'caffenet'."""
  from jembed.training import model as model_lib  # pylint: disable=g-import-not-at-top

  assert model_lib.CaffeNet is backbones.caffenet.CaffeNet
  assert backbones.get("caffenet").features == 9216


@pytest.mark.slow
@pytest.mark.parametrize(
    "timm_name,size", [("resnet50", 224), ("vit_small_patch14_dinov2", 518), ("vit_small_patch14_dinov2", 224)]
)
def test_full_size_timm_files_saved_by_timm(tmp_path, timm_name, size):
  """The issue's check: a random-weight timm model saved as safetensors by timm itself, features through
  jembed.backbones equal timm's (DINOv2 also at 224 px, its positions resampled from 37x37 to 16x16)."""
  try:
    torch, timm, _, _ = fixtures.import_torch_libraries()
  except ImportError:
    pytest.skip("needs timm, torch, torchvision and open_clip (pip install -e '.[reference]')")
  from timm.models import _hub  # pylint: disable=g-import-not-at-top

  model = (
      timm.create_model(timm_name, pretrained=False, dynamic_img_size=True)
      if "vit" in timm_name
      else timm.create_model(timm_name, pretrained=False)
  )
  fixtures.randomize(model.eval(), 0)
  _hub.save_for_hf(model, str(tmp_path), safe_serialization=True)
  images = fixtures.images(1, size)
  dc = timm.data.resolve_data_config({}, model=model)
  with torch.no_grad():
    want = model.forward_head(
        model.forward_features(fixtures.torch_input(torch, images, dc["mean"], dc["std"])), pre_logits=True
    ).numpy()
  spec, variables = backbones.load_pretrained(timm_name, str(tmp_path / "model.safetensors"), image_size=size)
  assert_features_close(jax.jit(backbones.features, static_argnums=0)(spec, variables, images), want)


def test_torch_checkpoint_with_wrapper(tmp_path):
  """A .pth state dict (DeiT-style {'model': ...} wrapper) reads as the safetensors file does."""
  torch = pytest.importorskip("torch", reason="writing the .pth file needs torch (reading it does not)")
  tensors = load_file(_fixture("vit_dinov2"))
  torch.save({"model": {k: torch.from_numpy(v) for k, v in tensors.items()}, "epoch": 3}, tmp_path / "w.pth")
  _, a = backbones.load_pretrained(fixtures.TINY["vit_dinov2"], _fixture("vit_dinov2"))
  _, b = backbones.load_pretrained(fixtures.TINY["vit_dinov2"], str(tmp_path / "w.pth"))
  jax.tree.map(np.testing.assert_array_equal, a, b)
