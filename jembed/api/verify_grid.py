"""Verification's pose grid: every shape of a run rendered once at the coarse hypotheses (`verify.grid_views`) and
kept as features in `W/verify/` (HoG as float16, edges as bits), so that scoring a photo's K x H hypotheses is two
matrix products (`verify.hypothesis_distances`). `verify_deep.grid_features` is the same grid through a pretrained
backbone.
"""

import dataclasses
import os

from absl import logging
import jax
import numpy as np
import tqdm

from jembed.api import verify
from jembed.render import base
from jembed.shapes import manifest
from jembed.shapes import sources
from jembed.utils import resample
from jembed.workdir import files
from jembed.workdir import paths


@dataclasses.dataclass(frozen=True)
class Grid:
  """Every shape's coarse hypotheses as features (`grid_cache`).

  Attributes:
    ids: str[N] the shapes, in the order asked for.
    angles: float32[N, H, 3] (azimuth, elevation, tilt) of each hypothesis.
    hog: float32[N, H, F]; edges: float32[N, H, P] (`verify.view_features`). A shape that no longer loads has zero
      features (it is never verified well: its HoG distance is the photo's norm, its chamfer 0 but equal for all).
  """

  ids: np.ndarray
  angles: np.ndarray
  hog: np.ndarray
  edges: np.ndarray


def grid_key(settings: verify.Settings) -> str:
  """What the grid cache's features depend on besides the shapes."""
  grid = f"{settings.size}:{settings.azimuths}x{settings.elevations}:{verify.RENDER_SIZE}"
  return f"{grid}:{verify.EDGE_FRACTION}:{verify.CREASE}:{resample.KERNEL}"


def render_grid_shape(
    renderer: base.Renderer, shape, settings: verify.Settings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One shape's coarse hypotheses: (float32[H, 3] angles, float32[H, F] HoG, float32[H, P] edges)."""
  views = verify.grid_views(shape.category, settings.azimuths, settings.elevations)
  gray, alpha = verify.render_crops(renderer, shape.vertices, shape.faces, views, settings.size)
  feats, edges = verify.view_features(gray, alpha)
  return np.stack([views.azimuth, views.elevation, views.tilt], 1), np.asarray(feats), np.asarray(edges)


def grid_cache(workdir: str, shape_ids, renderer: base.Renderer, settings: verify.Settings = verify.Settings()) -> Grid:
  """The run's shapes at the coarse pose grid, rendered once into `W/verify/` (HoG as float16, edges as bits) and
  read back afterwards (a cache of other shapes or settings is made again).

  Costs ~1 min for 200 shapes x 72 hypotheses on 2 CPU cores (EGL); then a photo's K x H scores are two products.
  """
  ids = np.asarray(shape_ids).astype(str)
  name = paths.VERIFY_GRID.format(size=settings.size, azimuths=settings.azimuths, elevations=settings.elevations)
  path = paths.verify_dir(workdir, name)
  memo = (os.path.abspath(path), grid_key(settings), hash(tuple(ids)))
  return memoized(_GRIDS, memo, lambda: _grid_cache(path, ids, workdir, renderer, settings))


_GRIDS: dict[tuple, Grid] = {}


def memoized(store: dict, memo: tuple, make):
  """`store[memo]`, made by `make()` the first time: a process verifying photo after photo (the query, the web page)
  reads a run's grid once; `store` keeps one grid only (a new one replaces it)."""
  if memo not in store:
    store.clear()
    store[memo] = make()
  return store[memo]


_ON_DEVICE: dict[tuple, tuple] = {}


def on_device(grid: Grid) -> tuple[jax.Array, jax.Array]:
  """(grid.hog, grid.edges) on the device, copied once per grid (the query's photos and the evaluation's sets all
  score against them). The store holds the grid too, so its id cannot be reused by another grid while it is there."""
  return memoized(_ON_DEVICE, (id(grid),), lambda: (grid, jax.device_put(grid.hog), jax.device_put(grid.edges)))[1:]


def read_matching(path: str, ids: np.ndarray, key: str, what: str):
  """The npz at `path` when it holds these shape `ids` made with `key`, else None (absent, other shapes or settings,
  or damaged: then a warning that `what` is made again)."""
  if not os.path.exists(path):
    return None
  try:
    c = files.load_npz(path)
    if np.array_equal(c["ids"], ids) and str(c["key"]) == key:
      return c
  except (files.DamagedFile, KeyError) as e:
    logging.warning("%s: making %s again", e, what)
  return None


def each_shape(workdir: str, ids: np.ndarray, desc: str):
  """(row in `ids`, normalized mesh) of each of the run's shapes that still loads, with a progress bar."""
  row = {s: i for i, s in enumerate(ids)}
  refs, up_axis, front = manifest.listed_shapes(workdir, ids)
  for shape in tqdm.tqdm(sources.iter_shapes(refs, up_axis, front), total=len(refs), desc=desc, unit="shape"):
    yield row[shape.id], shape


def _grid_cache(path: str, ids: np.ndarray, workdir: str, renderer: base.Renderer, settings: verify.Settings) -> Grid:
  h, p = settings.azimuths * settings.elevations, settings.size * settings.size
  c = read_matching(path, ids, grid_key(settings), "verification's pose grid")
  if c is not None:
    edges = np.unpackbits(c["edge_bits"], axis=-1, count=p).astype(np.float32)
    edges /= np.maximum(edges.sum(-1, keepdims=True), 1.0)
    return Grid(ids, c["angles"], c["hog"].astype(np.float32), edges)
  n_feat = (settings.size // 8) ** 2 * 36
  angles = np.zeros((len(ids), h, 3), np.float32)
  feats, edges = np.zeros((len(ids), h, n_feat), np.float32), np.zeros((len(ids), h, p), np.float32)
  for row, shape in each_shape(workdir, ids, "verify grid"):
    angles[row], feats[row], edges[row] = render_grid_shape(renderer, shape, settings)
  files.save_npz(
      path,
      ids=ids,
      key=np.array(grid_key(settings)),
      angles=angles,
      hog=feats.astype(np.float16),
      edge_bits=np.packbits(edges > 0, axis=-1),
  )
  return Grid(ids, angles, feats.astype(np.float16).astype(np.float32), edges)  # what reading it back gives
