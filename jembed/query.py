"""A user's photos -> their nearest shapes in a trained run (launch/query.py), with a gallery to look at.

Checks come first and name what is wrong: every path must be a readable image (before any model is loaded, so a typo
costs nothing), and the workdir must hold a shape embedding and a trained network (the message says which launcher
makes the missing one).
"""

import dataclasses
import os

import jax
import numpy as np
from PIL import Image

from jembed import paths
from jembed import provenance
from jembed import embed
from jembed.evaluation import image_sets
from jembed import retrieval
from jembed import viz


@dataclasses.dataclass(frozen=True)
class Match:
  """One retrieved shape: its rank (1 = nearest), id, category and L2 distance in the joint space."""
  rank: int
  shape_id: str
  category: str
  distance: float


def check_workdir(workdir: str) -> None:
  """Raises FileNotFoundError naming the step to run when `workdir` has no shape embedding or no trained network."""
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"workdir {workdir!r} does not exist: run `python -m launch.demo --workdir={workdir}` "
                            f"(or the stages one by one) first")
  if not os.path.exists(paths.shape_embedding(workdir)):
    raise FileNotFoundError(f"{workdir!r} has no shape embedding: run `python -m launch.embed_shapes "
                            f"--workdir={workdir}` first")
  if not provenance.has_checkpoints(workdir):
    raise FileNotFoundError(f"{workdir!r} has no trained network: run `python -m launch.build_dataset` and "
                            f"`python -m launch.train` with --workdir={workdir} first")


def query(workdir: str, paths: list[str], top_k: int = 5) -> tuple[list[list[Match]], np.ndarray]:
  """The `top_k` nearest shapes of each photo.

  Args:
    workdir: a trained run.
    paths: image files (anything Pillow reads: JPEG, PNG, ...), any size; each is stretched to the network's input
      as the training crops were.
    top_k: shapes per photo (at most the number of shapes).

  Returns:
    (one ranked list of `Match` per path, the photos as read: uint8[H, W, 3] each).

  Raises:
    ValueError: a path is not a readable image, or top_k is out of range.
    FileNotFoundError: the workdir lacks a stage (see `check_workdir`).
  """
  check_workdir(workdir)
  if top_k < 1:
    raise ValueError(f"--top_k must be at least 1, got {top_k}")
  opened = [image_sets.open_photo(p) for p in paths]  # every file checked before the model loads
  model = embed.load(workdir)
  if top_k > len(model.shape_ids):
    raise ValueError(f"--top_k={top_k} but the run has only {len(model.shape_ids)} shapes")
  return rank_shapes(model, embed_photos(model, opened), top_k), [np.asarray(image) for image in opened]


# One jitted wrapper for every caller (launch/query.py, the browser demo's threads): one compiled program per
# architecture and batch shape, shared.
_embed_images = jax.jit(embed.embed_images)


def embed_photos(model: embed.TrainedModel, photos: list[Image.Image]) -> np.ndarray:
  """Photos (any sizes) -> float32[B, D], each stretched to the network's input as the training crops were."""
  size = int(model.params.spec.image_size)
  return np.asarray(_embed_images(model.params, np.stack([image_sets.stretch_photo(p, size) for p in photos])))


def rank_shapes(model: embed.TrainedModel, points: np.ndarray, top_k: int) -> list[list[Match]]:
  """float32[B, D] points -> for each, its `top_k` nearest shapes (exact search, `retrieval.top_k`)."""
  dist, index = retrieval.top_k(np.asarray(points, np.float32), model.shape_points, top_k)
  return [[Match(r + 1, str(model.shape_ids[j]), str(model.shape_categories[j]), float(d))
           for r, (d, j) in enumerate(zip(drow, irow))] for drow, irow in zip(dist, index)]


def gallery_names(photos: list[str]) -> list[str]:
  """One gallery file name per photo, `<photo name>.png`, made unique: photos that share a name (a/chair.jpg,
  b/chair.png) get `chair.png`, `chair-2.png`, ... in the order given, so no gallery overwrites another."""
  names, seen = [], {}
  for photo in photos:
    stem = os.path.splitext(os.path.basename(photo))[0] or "photo"
    seen[stem] = seen.get(stem, 0) + 1
    names.append(f"{stem}.png" if seen[stem] == 1 else f"{stem}-{seen[stem]}.png")
  return names


def write_gallery(workdir: str, photo: np.ndarray, matches: list[Match], path: str, thumb: int = 160) -> str:
  """A PNG: the photo, then each match's three-quarter view with its rank, id, category and distance under it."""
  from jembed.evaluation import report  # pylint: disable=g-import-not-at-top  (matplotlib only when drawing)
  thumbs = report.shape_thumbnails(workdir, [m.shape_id for m in matches], thumb)
  blank = np.full((thumb, thumb, 3), 255, np.uint8)
  images = [photo] + [thumbs.get(m.shape_id, blank) for m in matches]
  captions = [["query"]] + [[f"{m.rank}. {m.shape_id}", m.category, f"distance {m.distance:.3f}"] for m in matches]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  viz.captioned_row(images, captions, thumb).save(path)
  return path
