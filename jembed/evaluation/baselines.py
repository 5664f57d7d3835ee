"""The baselines the paper compares the joint embedding with (reference §4.4), as image x shape distances.

Each baseline gives the distance from a query image to a shape as the minimum over that shape's "pure" views:

* `hog_nn`: the query's HoG pyramid against each of the shape's 20 LFD-view HoG pyramids, nearest view wins
  (`embedding.hog_nn`, which verification's shortlist reads too).
* `pixels`: raw gray pixels, stretched to `size` x `size` and scaled to [0, 1], against the same 20 views rendered on
  white (the LFD crops), nearest view wins: what "no purification at all" scores.

Image x image distances of a baseline are the plain L2 distances between the queries' features.
"""

import os

from absl import logging
import ml_collections
import numpy as np
import tqdm

from jembed.embedding import hog
from jembed.embedding import hog_input
from jembed.render import backend
from jembed.render import lfd
from jembed.shapes import manifest
from jembed.shapes import sources
from jembed.utils import resample
from jembed.workdir import files
from jembed.workdir import paths

PIXEL_SIZE = 32
_PIXEL_RENDER = 96  # the views for the pixel baseline only need to survive a shrink to 32 px


def pixel_features(gray_or_rgb: np.ndarray, size: int = PIXEL_SIZE) -> np.ndarray:
  """Images -> float32[Q, size * size]: gray, stretched to size x size (`resample.stretch`), in [0, 1]."""
  gray = hog_input.rgb2gray(gray_or_rgb) if gray_or_rgb.ndim == 4 else np.asarray(gray_or_rgb, np.uint8)
  small = [resample.stretch(g, size).astype(np.float32) for g in gray]
  return np.stack(small).reshape(len(gray), -1) / 255.0


def pixel_view_features(
    config: ml_collections.ConfigDict, workdir: str, shape_ids: np.ndarray, size: int = PIXEL_SIZE
) -> np.ndarray:
  """float32[N * 20, size * size] the LFD views of `shape_ids` as pixels, rendered once into `workdir/eval/`.

  A shape that cannot be loaded any more gets white views (it then never wins), with the reason in the log.
  """
  path = paths.eval_dir(workdir, paths.LFD_PIXELS.format(size=size))
  ids = np.asarray(shape_ids).astype(str)
  if os.path.exists(path):
    try:  # a cache: one of other shapes, of the old Pillow stretch (no 'kernel') or damaged is made again
      cached = files.load_npz(path)
      if np.array_equal(cached["ids"], ids) and str(cached.get("kernel")) == resample.KERNEL:
        return cached["features"].reshape(-1, size * size)
    except (files.DamagedFile, KeyError) as e:
      logging.warning("%s: rendering the pixel-baseline views again", e)
  wanted = {s: i for i, s in enumerate(ids)}
  refs, up_axis, front = manifest.listed_shapes(workdir, ids)
  renderer = backend.get_renderer(config.render.backend)
  features = np.full((len(ids), hog.LFD_VIEWS, size * size), 1.0, np.float32)
  shapes = sources.iter_shapes(refs, up_axis, front)
  for shape in tqdm.tqdm(shapes, total=len(refs), desc="rendering pixel-baseline views", unit="shape"):
    out = renderer.render(shape.vertices, shape.faces, lfd.lfd_views(shape.category), size=_PIXEL_RENDER, antialias=2)
    features[wanted[shape.id]] = pixel_features(np.stack([_square(hog_input.crop_gray(v)) for v in out.rgba]), size)
  files.save_npz(path, ids=ids, features=features, kernel=np.array(resample.KERNEL))
  return features.reshape(-1, size * size)


def _square(gray: np.ndarray, size: int = _PIXEL_RENDER) -> np.ndarray:
  """A crop stretched to a square, so every view stacks (the pixel features stretch it again anyway)."""
  return resample.stretch(gray, size)
