"""The baselines the paper compares the joint embedding with (reference §4.4), as image x shape distances.

Each baseline gives the distance from a query image to a shape as the minimum over that shape's "pure" views:

* `hog_nn`: the query's HoG pyramid (the shape side's own descriptor, `embedding/hog.py`: gray, stretched to
  120 x 120, 10,188-D) against each of the shape's 20 LFD-view HoG pyramids, already computed by the shape stage
  (`workdir/lfd/descriptors.npy`), nearest view wins. The paper's baseline used one 60 x 60 level against 100 views;
  this one reuses the 20 views and the three levels the shape side was built from, so it costs no extra rendering.
* `pixels`: raw gray pixels, stretched to `size` x `size` and scaled to [0, 1], against the same 20 views rendered on
  white (the LFD crops), nearest view wins: what "no purification at all" scores.

Image x image distances of a baseline are the plain L2 distances between the queries' features.
"""

import os

from absl import logging
import ml_collections
import numpy as np
import tqdm

from jembed.embedding import descriptors
from jembed.embedding import distances
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


def hog_features(images: np.ndarray, batch: int = 256) -> np.ndarray:
  """Query images -> their HoG pyramids, computed as the shape side's views are (gray, `imresize` to 120, pyramid).

  Args:
    images: uint8[Q, H, W, 3].
    batch: images per jitted call (the last one is padded, so one compiled shape serves every call).

  Returns:
    float32[Q, 10188].
  """
  gray = hog_input.rgb2gray(images)
  out = np.empty((len(gray), hog.PYRAMID_DIM), np.float32)
  for lo in range(0, len(gray), batch):
    chunk = np.zeros((batch, hog_input.HOG_SIZE, hog_input.HOG_SIZE), np.float32)
    part = [hog_input.hog_input(g) for g in gray[lo : lo + batch]]
    chunk[: len(part)] = part
    out[lo : lo + len(part)] = np.asarray(hog.hog_pyramid(chunk))[: len(part)]
  return out


def pixel_features(gray_or_rgb: np.ndarray, size: int = PIXEL_SIZE) -> np.ndarray:
  """Images -> float32[Q, size * size]: gray, stretched to size x size (`resample.stretch`), in [0, 1]."""
  gray = hog_input.rgb2gray(gray_or_rgb) if gray_or_rgb.ndim == 4 else np.asarray(gray_or_rgb, np.uint8)
  small = [resample.stretch(g, size).astype(np.float32) for g in gray]
  return np.stack(small).reshape(len(gray), -1) / 255.0


def nearest_view(query: np.ndarray, views: np.ndarray, n_views: int) -> tuple[np.ndarray, np.ndarray]:
  """float32[Q, F] queries x float32[N * n_views, F] views (each shape's views adjacent) -> (float32[Q, N], the
  minimum over each shape's views; int64[Q], the index of each query's nearest view among all N * n_views, whose
  angles are a viewpoint estimate: `evaluation.viewpoint.nearest_lfd_views`)."""
  d = distances.cross_distances(query, views, refine_rtol=0.0)
  return d.reshape(len(query), -1, n_views).min(axis=-1), np.argmin(d, axis=1)


def hog_view_features(workdir: str, shape_ids: np.ndarray) -> np.ndarray:
  """float32[N * 20, 10188] the LFD views' HoG pyramids of `shape_ids`, in that order (a memory map when possible).

  Raises:
    ValueError: a shape of the embedding has no descriptor (the embedding and the LFD cache disagree).
  """
  desc = descriptors.load_descriptors(workdir)
  row = {s: i for i, s in enumerate(desc.ids)}
  missing = [str(s) for s in shape_ids if str(s) not in row]
  if missing:
    raise ValueError(
        f"{len(missing)} embedded shapes have no LFD descriptor in {workdir}/lfd (e.g. {missing[0]}): "
        f"rerun launch/embed_shapes.py"
    )
  order = np.asarray([row[str(s)] for s in shape_ids])
  features = desc.features if np.array_equal(order, np.arange(len(desc.ids))) else desc.features[order]
  return features.reshape(-1, hog.PYRAMID_DIM)


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
