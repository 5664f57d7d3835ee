"""A user's photos -> their nearest shapes in a trained run (launch/query.py), with a gallery to look at.

Each photo also gets its viewpoint (when the network has the viewpoint head): the pose is printed and the top-1
shape is drawn at it, beside the photo and as a silhouette over it (`pose_overlay.py`): photo -> aligned 3D model.
Several photos of one object (e.g. an image search's results for a text query) can be fused into one ranking
(`fusion.py`).

Checks come first and name what is wrong: every path must be a readable image (before any model is loaded, so a typo
costs nothing), and the workdir must hold a shape embedding and a trained network (the message says which launcher
makes the missing one).
"""

import dataclasses
import os

import jax
import numpy as np
from PIL import Image

from jembed.api import embed
from jembed.api import fusion
from jembed.api import pose_overlay
from jembed.api import verify as verify_lib
from jembed.api import verify_query
from jembed.embedding import hog_nn
from jembed.render import backend
from jembed.render import thumbnails
from jembed.shapes import manifest
from jembed.shapes import record
from jembed.shapes import sources
from jembed.utils import images
from jembed.utils import viz
from jembed.workdir import paths
from jembed.workdir import provenance

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class Match:
  """One retrieved shape: its rank (1 = nearest), id, category and L2 distance in the joint space (for a fused
  ranking: the fused distance, see `fusion.py`)."""

  rank: int
  shape_id: str
  category: str
  distance: float


@dataclasses.dataclass(frozen=True)
class Pose:
  """A predicted viewpoint in degrees: azimuth in [0, 360), elevation and tilt in [-180, 180)."""

  azimuth: float
  elevation: float
  tilt: float

  def __str__(self) -> str:
    return f"azimuth {self.azimuth:.0f}°, elevation {self.elevation:+.0f}°, tilt {self.tilt:+.0f}°"


@dataclasses.dataclass(frozen=True)
class QueryResult:
  """What `query` returns.

  Attributes:
    paths: the photo files, in the order given.
    photos: uint8[H, W, 3] each photo as read.
    matches: per photo, its ranked `Match`es.
    poses: per photo, its `Pose`; None when the network has no viewpoint head.
    fused: the photos' fused ranking (when `query(..., fuse=...)`), else None.
    fusion: how they were fused ('' when not).
    refined: per photo, the refined `Pose` of its verified first shape (`query(..., verify=True)`), else None; the
      matches are then the verified ranking, their `distance` the fused score (`verify.verify_candidates`).
  """

  paths: list[str]
  photos: list[np.ndarray]
  matches: list[list[Match]]
  poses: list[Pose] | None
  fused: list[Match] | None = None
  fusion: str = ""
  refined: list[Pose] | None = None


def photos_in(folder: str) -> list[str]:
  """The image files directly in `folder` (by extension, sorted by name).

  Raises:
    ValueError: `folder` is not a folder or holds no image file.
  """
  if not os.path.isdir(folder):
    raise ValueError(f"--images={folder!r} is not a folder")
  found = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
  if not found:
    raise ValueError(f"--images={folder!r} holds no image file ({', '.join(IMAGE_EXTENSIONS)})")
  return found


def check_workdir(workdir: str) -> None:
  """Raises FileNotFoundError naming the step to run when `workdir` has no shape embedding or no trained network."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise NotADirectoryError(f"--workdir={workdir} is a file, not a folder: give the folder of a trained run")
  if not os.path.isdir(workdir):
    raise FileNotFoundError(
        f"workdir {workdir!r} does not exist: run `python -m launch.demo --workdir={workdir}` "
        f"(or the stages one by one) first"
    )
  if not os.path.exists(paths.shape_embedding(workdir)):
    raise FileNotFoundError(
        f"{workdir!r} has no shape embedding: run `python -m launch.embed_shapes " f"--workdir={workdir}` first"
    )
  if not provenance.has_checkpoints(workdir):
    raise FileNotFoundError(
        f"{workdir!r} has no trained network: run `python -m launch.build_dataset` and "
        f"`python -m launch.train` with --workdir={workdir} first"
    )


def _matches(dist: np.ndarray, index: np.ndarray, model: embed.TrainedModel) -> list[Match]:
  return [
      Match(r + 1, str(model.shape_ids[j]), str(model.shape_categories[j]), float(d))
      for r, (d, j) in enumerate(zip(dist, index))
  ]


def query(
    workdir: str, paths: list[str], top_k: int = 5, fuse: str = "", verify: bool = False, renderer: str = "auto"
) -> QueryResult:
  """The `top_k` nearest shapes and the viewpoint of each photo, and optionally the photos' fused ranking.

  Args:
    workdir: a trained run.
    paths: image files (anything Pillow reads: JPEG, PNG, ...), any size; each is stretched to the network's input
      as the training crops were.
    top_k: shapes per photo (at most the number of shapes).
    fuse: '' (each photo on its own) or one of `fusion.FUSIONS`: the photos show one object; rank the shapes for
      all of them together.
    verify: re-rank each photo's K nearest shapes by rendering them at pose hypotheses and comparing the renders
      with the photo (`verify_query.verify_photos`; K = `config.verify.k`, at least top_k), and refine its pose.
    renderer: the renderer verification uses ('auto' | 'egl' | 'embree').

  Raises:
    ValueError: a path is not a readable image, top_k is out of range, or an unknown fusion.
    FileNotFoundError: the workdir lacks a stage (see `check_workdir`).
  """
  check_workdir(workdir)
  if top_k < 1:
    raise ValueError(f"--top_k must be at least 1, got {top_k}")
  if fuse and fuse not in fusion.FUSIONS:
    raise ValueError(f"--fusion={fuse!r} is not one of {fusion.FUSIONS}")
  opened = [images.open_image(p) for p in paths]  # every file checked before the model loads
  model = embed.load(workdir)
  if top_k > len(model.shape_ids):
    raise ValueError(f"--top_k={top_k} but the run has only {len(model.shape_ids)} shapes")
  if model.params.spec.viewpoint_bins:  # the point and the pose from one forward pass
    points, poses = embed_photos_with_poses(model, opened)
  else:
    points, poses = embed_photos(model, opened), None
  fused = None
  if fuse:
    scores = fusion.fused_distances(points, model.shape_index, fuse)
    order = np.argsort(scores, kind="stable")[:top_k]
    fused = _matches(scores[order], order, model)
  matches, refined = rank_shapes(model, points, top_k), None
  if verify:
    matches, refined = verified_matches(workdir, model, opened, points, poses, top_k, renderer)
  return QueryResult(list(paths), [np.asarray(image) for image in opened], matches, poses, fused, fuse, refined)


def verified_matches(
    workdir: str, model: embed.TrainedModel, photos: list, points: np.ndarray, poses, top_k: int, renderer
) -> tuple[list[list[Match]], list[Pose]]:
  """Each photo's verified ranking (its first `top_k`) and refined pose (`verify_query.verify_photos`); renderer: a
  name ('auto', ...) or a `Renderer` of the calling thread (an EGL context belongs to its thread)."""
  settings = verify_query.run_settings(workdir, k=max(verify_lib.Settings().k, top_k))
  head = None if poses is None else np.asarray([(p.azimuth, p.elevation, p.tilt) for p in poses], np.float32)
  stretched = _stretched(model, photos)[: len(photos)]
  render = backend.get_renderer(renderer) if isinstance(renderer, str) else renderer
  hog_images = None
  if settings.shortlist_hog > 0:  # HoG-NN in the shortlist sees the photos at the evaluation's size
    hog_images = np.stack([images.stretch_photo(p, hog_nn.PHOTO_SIZE) for p in photos])
  checked = verify_query.verify_photos(workdir, model, stretched, points, head, render, settings, hog_images)
  matches = [_matches(v.scores[:top_k], v.rows[:top_k], model) for v in checked]
  refined = [
      Pose(
          float(v.pose[0]) % 360.0,
          float(pose_overlay.signed_angle(v.pose[1])),
          float(pose_overlay.signed_angle(v.pose[2])),
      )
      for v in checked
  ]
  return matches, refined


# One jitted wrapper each for every caller (launch/query.py, the browser demo's threads): one compiled program per
# architecture and batch shape, shared.
_embed_images = jax.jit(embed.embed_images)
_embed_with_viewpoint = jax.jit(embed.embed_with_viewpoint)


def batch_bucket(n: int) -> int:
  """The batch a forward pass of n photos runs at: n rounded up to a power of two, so that any number of photos
  needs one of a few compiled programs (the web page compiles them all at start)."""
  return 1 << max(n - 1, 0).bit_length()


def _stretched(model: embed.TrainedModel, photos: list[Image.Image]) -> np.ndarray:
  """uint8[batch_bucket(B), S, S, 3]: each photo stretched to the network's input, as the training crops were (and
  black padding)."""
  size = int(model.params.spec.image_size)
  batch = np.zeros((batch_bucket(len(photos)), size, size, 3), np.uint8)
  for i, photo in enumerate(photos):
    batch[i] = images.stretch_photo(photo, size)
  return batch


def embed_photos(model: embed.TrainedModel, photos: list[Image.Image]) -> np.ndarray:
  """Photos (any sizes) -> float32[B, D]."""
  return np.asarray(_embed_images(model.params, _stretched(model, photos)))[: len(photos)]


def embed_photos_with_poses(model: embed.TrainedModel, photos: list[Image.Image]) -> tuple[np.ndarray, list[Pose]]:
  """Photos -> (float32[B, D] points, a `Pose` each), from one forward pass (needs the viewpoint head)."""
  points, angles = jax.device_get(_embed_with_viewpoint(model.params, _stretched(model, photos)))
  points, angles = points[: len(photos)], {k: v[: len(photos)] for k, v in angles.items()}
  poses = [
      Pose(float(a), float(pose_overlay.signed_angle(e)), float(pose_overlay.signed_angle(t)))
      for a, e, t in zip(angles["azimuth"], angles["elevation"], angles["tilt"])
  ]
  return np.asarray(points), poses


def rank_shapes(model: embed.TrainedModel, points: np.ndarray, top_k: int) -> list[list[Match]]:
  """float32[B, D] points -> for each, its `top_k` nearest shapes (exact search on the model's resident
  `shape_index`)."""
  dist, index = model.shape_index.search(np.asarray(points, np.float32), top_k)
  return [_matches(d, i, model) for d, i in zip(dist, index)]


def gallery_names(photos: list[str]) -> list[str]:
  """One gallery file name per photo, `<photo name>.png`, made unique: photos that share a name (a/chair.jpg,
  b/chair.png) get `chair.png`, `chair-2.png`, ... in the order given, so no gallery overwrites another."""
  names, seen = [], {}
  for photo in photos:
    stem = os.path.splitext(os.path.basename(photo))[0] or "photo"
    seen[stem] = seen.get(stem, 0) + 1
    names.append(f"{stem}.png" if seen[stem] == 1 else f"{stem}-{seen[stem]}.png")
  return names


def load_shape(workdir: str, shape_id: str) -> record.Shape:
  """The normalized mesh of one shape of `workdir` (found from the workdir's own list of its shapes).

  Raises:
    ValueError: the shape is not in the workdir or no longer loads.
  """
  refs, up_axis, front = manifest.listed_shapes(workdir, [shape_id])
  for shape in sources.iter_shapes(refs, up_axis, front):
    return shape
  raise ValueError(f"shape {shape_id!r} of {workdir!r} cannot be loaded (is its source still there?)")


def posed_top1(
    workdir: str, photo: np.ndarray, shape_id: str, pose: Pose, renderer: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
  """The shape rendered at the photo's predicted pose, and its silhouette drawn over the photo.

  Args:
    workdir: the run; photo: uint8[H, W, 3]; shape_id: the shape (e.g. the top-1 match); pose: the photo's pose.

  Returns:
    (uint8[h, w, 3] the shape at the pose, cropped to it, on white; uint8[H, W, 3] the overlay).
  """
  shape, render = load_shape(workdir, shape_id), backend.get_renderer(renderer)
  angles = (pose.azimuth, pose.elevation, pose.tilt)
  return (
      pose_overlay.render_posed(shape.vertices, shape.faces, *angles, renderer=render),
      pose_overlay.draw_pose_overlay(photo, shape.vertices, shape.faces, *angles, renderer=render),
  )


def _shape_tiles(workdir: str, matches: list[Match], thumb: int) -> tuple[list[np.ndarray], list[list[str]]]:
  """Each match's three-quarter view (blank when it no longer loads) and its caption lines."""
  thumbs = thumbnails.workdir_thumbnails(workdir, [m.shape_id for m in matches], thumb)
  blank = np.full((thumb, thumb, 3), 255, np.uint8)
  return (
      [thumbs.get(m.shape_id, blank) for m in matches],
      [[f"{m.rank}. {m.shape_id}", m.category, f"distance {m.distance:.3f}"] for m in matches],
  )


def _save(image, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  image.save(path)
  return path


def write_gallery(
    workdir: str,
    photo: np.ndarray,
    matches: list[Match],
    path: str,
    thumb: int = 160,
    pose: Pose | None = None,
    verified: bool = False,
) -> str:
  """A PNG: the photo, [with a pose: the top-1 shape's silhouette at that pose over the photo, and the top-1 shape
  rendered at the pose,] then each match's three-quarter view with its rank, id, category and distance under it.
  `verified`: the matches are a verified ranking and the pose its refined pose (captions say so)."""
  tiles, captions = _shape_tiles(workdir, matches, thumb)
  images, heads = [photo], [["query"]]
  if pose is not None and matches:
    posed, overlay = posed_top1(workdir, photo, matches[0].shape_id, pose)
    angles = [f"azimuth {pose.azimuth:.0f}°", f"elevation {pose.elevation:+.0f}°", f"tilt {pose.tilt:+.0f}°"]
    images += [overlay, posed]
    first = "verified top-1" if verified else "top-1"
    heads += [[f"{first} over the photo"] + angles, [f"{first} at that pose", matches[0].shape_id]]
  if verified:
    captions = [[c[0], c[1], f"fused score {m.distance:+.2f}"] for c, m in zip(captions, matches)]
  return _save(viz.captioned_row(images + tiles, heads + captions, thumb), path)


def write_fused_gallery(workdir: str, result: QueryResult, path: str, thumb: int = 160) -> str:
  """A PNG of a fused query: the photos it combined in the first row, the fused ranking's shapes in the second."""
  names = [[f"photo {i + 1}", os.path.basename(p)] for i, p in enumerate(result.paths)]
  tiles, captions = _shape_tiles(workdir, result.fused, thumb)
  heads = [f"fused: {len(result.photos)} photos"] + [""] * (len(tiles) - 1)
  return _save(
      viz.stack_rows(
          [
              viz.captioned_row(result.photos, names, thumb),
              viz.captioned_row(tiles, [[h] + c for h, c in zip(heads, captions)], thumb),
          ]
      ),
      path,
  )
