"""The methods compared on the same test images: a registry `{name: Method}`; a new method is one `register` call.

A method turns a set's images into two distance matrices, so every protocol treats all methods alike:
  image x shape  float32[Q, N]  (ranks the shapes for each image)
  image x image  float32[Q, Q]  (ranks the other images, for the paper's precision-recall)

  * `joint`: the trained CNN's image points against the shape points (and against each other);
  * `hog_nn`, `pixels`: the baselines of `baselines.py` (nearest LFD view of each shape).
"""

import dataclasses
import functools
from typing import Callable

import jax
import ml_collections
import numpy as np

from jembed import embed
from jembed import retrieval
from jembed.evaluation import baselines

Distances = tuple[np.ndarray, np.ndarray]


class Context:
  """What a method may read: the config, the workdir, the trained model, and the shapes' view features (computed
  once, on first use, and only for the methods that ask)."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, model: embed.TrainedModel):
    self.config, self.workdir, self.model = config, workdir, model

  @functools.cached_property
  def hog_views(self) -> np.ndarray:
    return baselines.hog_view_features(self.workdir, self.model.shape_ids)

  @functools.cached_property
  def pixel_views(self) -> np.ndarray:
    return baselines.pixel_view_features(self.config, self.workdir, self.model.shape_ids)


@dataclasses.dataclass(frozen=True)
class Method:
  """One row of the results table per set.

  Attributes:
    name: the key in results.json.
    label: the name people read in results.md and the plots.
    distances: (uint8[Q, S, S, 3] images, Context) -> (float32[Q, N] image x shape, float32[Q, Q] image x image).
  """
  name: str
  label: str
  distances: Callable[[np.ndarray, Context], Distances]


METHODS: dict[str, Method] = {}
# Rows that are computed without distances (expected scores) still need a label.
_OTHER_LABELS = {"chance": "chance"}


def register(name: str, label: str):
  """Decorator: adds `fn(images, context) -> (image_shape, image_image)` to `METHODS` under `name`."""
  def wrap(fn):
    if name in METHODS or name in _OTHER_LABELS:
      raise ValueError(f"evaluation method {name!r} registered twice")
    METHODS[name] = Method(name, label, fn)
    return fn
  return wrap


def label(name: str) -> str:
  """The display name of a method (or of the `chance` row); unknown names are shown as they are."""
  return METHODS[name].label if name in METHODS else _OTHER_LABELS.get(name, name)


def get(name: str) -> Method:
  if name not in METHODS:
    raise ValueError(f"unknown evaluation method {name!r}; expected one of {sorted(METHODS)}")
  return METHODS[name]


_embed_images = jax.jit(embed.embed_images)  # one wrapper, so its compiled programs are reused across sets


def embed_all(params: embed.Params, images: np.ndarray, batch: int = 128) -> np.ndarray:
  """uint8[Q, S, S, 3] -> float32[Q, D], in fixed-size padded batches (one compiled program)."""
  out = []
  for lo in range(0, len(images), batch):
    chunk = images[lo:lo + batch]
    padded = np.zeros((batch,) + chunk.shape[1:], np.uint8)
    padded[:len(chunk)] = chunk
    out.append(np.asarray(_embed_images(params, padded))[:len(chunk)])
  return np.concatenate(out).astype(np.float32)


@register("joint", "joint embedding")
def joint(images: np.ndarray, context: Context) -> Distances:
  points = embed_all(context.model.params, images)
  return retrieval.pairwise_l2(points, context.model.shape_points), retrieval.pairwise_l2(points, points)


def _nearest_view(features: np.ndarray, views: np.ndarray, context: Context) -> Distances:
  image_shape = baselines.nearest_view(features, views, len(views) // len(context.model.shape_ids))
  return image_shape, retrieval.pairwise_l2(features, features)


@register("hog_nn", "HoG-NN")
def hog_nn(images: np.ndarray, context: Context) -> Distances:
  return _nearest_view(baselines.hog_features(images), context.hog_views, context)


@register("pixels", "raw pixels")
def pixels(images: np.ndarray, context: Context) -> Distances:
  return _nearest_view(baselines.pixel_features(images), context.pixel_views, context)
