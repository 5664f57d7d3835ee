"""The methods compared on the same test images: a registry `{name: Method}`; a new method is one `register` call.

A method turns a set's images into two distance matrices, so every protocol treats all methods alike:
  image x shape  float32[Q, N]  (ranks the shapes for each image)
  image x image  float32[Q, Q]  (ranks the other images, for the paper's precision-recall)

  * `joint`: the trained CNN's image points against the shape points (and against each other);
  * `joint_<name>`: the same for another trained run on the same shapes (`config.eval.compare_runs`, e.g. the paper's
    regression beside the rank-aware default), so every trained variant is a row on the same images;
  * `hog_nn`, `pixels`: the baselines of `baselines.py` (nearest LFD view of each shape).
"""

import dataclasses
import functools
import hashlib
from typing import Callable

import jax
import ml_collections
import numpy as np

from jembed.api import embed
from jembed.api import index
from jembed.api import retrieval
from jembed.embedding import hog_nn as hog_nn_lib
from jembed.evaluation import baselines

Distances = tuple[np.ndarray, np.ndarray]


class Context:
  """What a method may read: the config, the workdir, the trained model, and the shapes' view features (computed
  once, on first use, and only for the methods that ask)."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, model: embed.TrainedModel):
    self.config, self.workdir, self.model = config, workdir, model
    self._nearest = {}
    self._network = {}
    self.cache = {}  # what other methods compute once per evaluation (e.g. `verify_method`'s grid and weights)

  @functools.cached_property
  def hog_views(self) -> np.ndarray:
    return hog_nn_lib.hog_view_features(self.workdir, self.model.shape_ids)

  @functools.cached_property
  def pixel_views(self) -> np.ndarray:
    return baselines.pixel_view_features(self.config, self.workdir, self.model.shape_ids)

  def nearest_view(self, kind: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A view baseline ('hog_nn' | 'pixels') on `images`, computed once per set of images (its retrieval row and its
    viewpoint row share it): (float32[Q, F] the images' features, float32[Q, N] image x shape distances, int64[Q]
    each image's nearest view among all N x 20 LFD views)."""
    key = (kind, images_key(images))
    if key not in self._nearest:
      features, views = (
          (hog_nn_lib.hog_features(images), self.hog_views)
          if kind == "hog_nn"
          else (baselines.pixel_features(images), self.pixel_views)
      )
      self._nearest[key] = (
          features,
          *hog_nn_lib.nearest_view(features, views, len(views) // len(self.model.shape_ids)),
      )
    return self._nearest[key]

  def network_outputs(self, images: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """The trained network on `images`, one pass per set of images (the joint row, the fused rows and the viewpoint
    head's row share it): (float32[Q, D] points, {'azimuth', 'elevation', 'tilt'}: float32[Q] degrees, or None
    when the network has no viewpoint head)."""
    key = images_key(images)
    if key not in self._network:
      params = self.model.params
      if params.spec.viewpoint_bins:
        points, angles = run_batched(_embed_with_viewpoint, params, images)
        self._network[key] = (points.astype(np.float32), angles)
      else:
        self._network[key] = (embed_all(params, images), None)
    return self._network[key]


def images_key(images: np.ndarray) -> tuple:
  """A set of images' identity for the caches above: its shape and a hash of its pixels."""
  return images.shape, hashlib.sha1(np.ascontiguousarray(images).data).hexdigest()


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


def add_label(name: str, text: str) -> None:
  """Names a row that is not a registered method (e.g. `fused:points`, `viewpoint:joint`) for results.md."""
  _OTHER_LABELS[name] = text


def label(name: str) -> str:
  """The display name of a method (or of the `chance` row); unknown names are shown as they are."""
  return METHODS[name].label if name in METHODS else _OTHER_LABELS.get(name, name)


def get(name: str) -> Method:
  if name not in METHODS:
    raise ValueError(f"unknown evaluation method {name!r}; expected one of {sorted(METHODS)}")
  return METHODS[name]


_embed_images = jax.jit(embed.embed_images)  # one wrapper, so its compiled programs are reused across sets
_embed_with_viewpoint = jax.jit(embed.embed_with_viewpoint)


def run_batched(fn, params: embed.Params, images: np.ndarray, batch: int = 128):
  """`fn(params, uint8[batch, S, S, 3])` over all Q images in fixed-size padded batches (one compiled program); its
  outputs (an array or a dict of arrays, leading dim = batch) concatenated to Q rows, as numpy."""
  out = []
  for lo in range(0, len(images), batch):
    chunk = images[lo : lo + batch]
    padded = np.zeros((batch,) + chunk.shape[1:], np.uint8)
    padded[: len(chunk)] = chunk
    out.append(jax.tree.map(lambda x, n=len(chunk): np.asarray(x)[:n], fn(params, padded)))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *out)


def embed_all(params: embed.Params, images: np.ndarray, batch: int = 128) -> np.ndarray:
  """uint8[Q, S, S, 3] -> float32[Q, D]."""
  return run_batched(_embed_images, params, images, batch).astype(np.float32)


def _point_distances(points: np.ndarray, shapes: index.ShapeIndex) -> Distances:
  """Image x shape from the run's resident shape index, image x image among the images."""
  return shapes.distances(points), retrieval.pairwise_l2(points, points)


@register("joint", "joint embedding")
def joint(images: np.ndarray, context: Context) -> Distances:
  return _point_distances(context.network_outputs(images)[0], context.model.shape_index)


def register_run(name: str, workdir: str) -> str:
  """Adds another trained run on the same shapes (e.g. trained with another `config.train.loss`) as the method
  `joint_<name>`, labelled 'joint embedding (<name>)'; returns the method's name. Registering a name again points it
  at the new workdir.

  Its distances raise ValueError when that run's shapes are not the evaluated run's (ranks would be meaningless).
  """
  key = f"joint_{name}"
  load = functools.cache(lambda: embed.load(workdir))

  def distances(images: np.ndarray, context: Context) -> Distances:
    model = load()
    if list(model.shape_ids) != list(context.model.shape_ids):
      raise ValueError(f"config.eval.compare_runs: the run in {workdir} embeds other shapes than {context.workdir}")
    return _point_distances(embed_all(model.params, images), model.shape_index)

  METHODS[key] = Method(key, f"joint embedding ({name})", distances)
  return key


def compared_runs(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """Registers the runs of `config.eval.compare_runs` ('name=workdir,...'; '' = none) and returns their methods."""
  spec = config.eval.get("compare_runs", "")
  names = []
  for item in filter(None, (s.strip() for s in spec.split(","))):
    name, sep, workdir = item.partition("=")
    if not sep or not name or not workdir:
      raise ValueError(f"config.eval.compare_runs: {item!r} is not name=workdir")
    names.append(register_run(name, workdir))
  return tuple(names)


def _nearest_view(kind: str, images: np.ndarray, context: Context) -> Distances:
  features, image_shape, _ = context.nearest_view(kind, images)
  return image_shape, retrieval.pairwise_l2(features, features)


@register("hog_nn", "HoG-NN")
def hog_nn(images: np.ndarray, context: Context) -> Distances:
  return _nearest_view("hog_nn", images, context)


@register("pixels", "raw pixels")
def pixels(images: np.ndarray, context: Context) -> Distances:
  return _nearest_view("pixels", images, context)
