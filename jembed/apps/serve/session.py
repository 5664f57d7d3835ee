"""What the browser demo computes, without any web framework: a trained workdir loaded once, and the answers of each
of the page's directions (photo -> shapes, shape -> images, image -> images, the shape map, the results table).

One `Demo` serves every request of the server: the network's variables, the shape points and the evaluation images'
points are loaded once, the jitted embed function (`query.embed_photos`) is compiled once at start and shared by the
server's worker threads (JAX dispatch is thread-safe); the renderer and the caches sit behind one lock.
"""

import dataclasses
import functools
import glob
import os
import tempfile
import threading
import uuid

import numpy as np
from PIL import Image
import trimesh

from jembed.api import embed
from jembed.api import index
from jembed.api import pose_overlay
from jembed.api import query
from jembed.apps.serve import pictures
from jembed.evaluation import image_sets
from jembed.evaluation import methods
from jembed.render import backend
from jembed.render import thumbnails
from jembed.shapes import manifest
from jembed.shapes import sources
from jembed.utils import images as images_lib
from jembed.workdir import paths

MAX_UPLOAD_BYTES = 20 * 2**20  # a phone photo is 2-8 MB; anything bigger is refused before decoding
MAX_PIXELS = 40_000_000  # decoded size limit (a 40 MP RGB image is 120 MB in memory)


class BadUpload(ValueError):
  """An upload that is not a usable photo; the message is meant for the page."""


@dataclasses.dataclass(frozen=True)
class EvalImages:
  """The evaluation's images of a workdir (every set of `workdir/eval/sets/`, concatenated).

  Attributes:
    images: uint8[Q, S, S, 3].
    sets: str[Q] the set of each image ('synthetic_clean', 'ikea', ...).
    labels: str[Q] the image's label within its set (shape id and view, or file name).
    shape_index: int32[Q] row of the image's true shape in the shape embedding.
    points: float32[Q, D] their points in the joint space.
  """

  images: np.ndarray
  sets: np.ndarray
  labels: np.ndarray
  shape_index: np.ndarray
  points: np.ndarray

  def caption(self, i: int) -> str:
    return f"{self.sets[i].replace('synthetic_', '')} #{i}: {self.labels[i]}"


@dataclasses.dataclass(frozen=True)
class Search:
  """One photo's answer.

  Attributes:
    matches: its nearest shapes, nearest first (`query.Match`).
    point: float32[D] the photo's point in the joint space.
    viewpoint: {'azimuth', 'elevation', 'tilt'} degrees, or None when the network has no viewpoint head.
    neighbours: [(index into `Demo.eval_images`, distance)] its nearest evaluation images.
  """

  matches: list[query.Match]
  point: np.ndarray
  viewpoint: dict[str, float] | None
  neighbours: list[tuple[int, float]]


def read_upload(path: str, name: str | None = None) -> Image.Image:
  """An uploaded file as an RGB image, or `BadUpload` naming the file and what is wrong (empty, too big, not an image).

  The size checks come before decoding, so a huge or hostile file costs no memory.
  """
  name = name or os.path.basename(path)
  if not path or not os.path.isfile(path):
    raise BadUpload(f"{name!r}: the upload did not arrive; try again")
  size = os.path.getsize(path)
  if size == 0:
    raise BadUpload(f"{name!r} is empty (0 bytes): upload a photo (JPEG, PNG, ...)")
  if size > MAX_UPLOAD_BYTES:
    raise BadUpload(f"{name!r} is {size / 2**20:.1f} MB; photos up to {MAX_UPLOAD_BYTES // 2**20} MB are accepted")
  try:
    with Image.open(path) as image:  # reads the header only
      width, height = image.size
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise BadUpload(
        f"{name!r} is not an image Pillow can read ({type(e).__name__}): upload a JPEG or PNG photo"
    ) from None
  if width * height > MAX_PIXELS:
    raise BadUpload(f"{name!r} is {width} x {height} pixels; at most {MAX_PIXELS // 10**6} megapixels are accepted")
  try:
    return images_lib.open_image(path)  # as a browser shows it: EXIF orientation, bit depth, transparency over white
  except ValueError:
    raise BadUpload(f"{name!r} is a broken image (it could not be decoded): upload another photo") from None


def load_eval_images(workdir: str, model: embed.TrainedModel) -> EvalImages | None:
  """Every cached evaluation set of `workdir` (None when launch/evaluate.py has not run) with its images' points."""
  images, sets, labels, shape_index = [], [], [], []
  for path in sorted(glob.glob(paths.eval_sets(workdir, "*.npz"))):
    with np.load(path) as data:
      names = [n for n in image_sets.SYNTHETIC if n in data] or (["images"] if "images" in data else [])
      for name in names:
        images.append(data[name])
        sets.append(np.full(len(data[name]), os.path.splitext(os.path.basename(path))[0] if name == "images" else name))
        labels.append(data["labels"].astype(str))
        shape_index.append(data["shape_index"].astype(np.int32))
  if not images:
    return None
  images = np.concatenate(images)
  return EvalImages(
      images=images,
      sets=np.concatenate(sets),
      labels=np.concatenate(labels),
      shape_index=np.concatenate(shape_index),
      points=methods.embed_all(model.params, images),
  )


class Demo:
  """A trained workdir, loaded once, answering the page's questions. Thread-safe.

  Raises (from the constructor):
    FileNotFoundError: the workdir lacks a stage; the message names the launcher to run.
  """

  def __init__(self, workdir: str):
    query.check_workdir(workdir)
    self.workdir = workdir
    self.model = embed.load(workdir)
    self.size = int(self.model.params.spec.image_size)
    self.has_viewpoint = bool(self.model.params.spec.viewpoint_bins)
    self._row = {str(s): i for i, s in enumerate(self.model.shape_ids)}
    self.eval_images = load_eval_images(workdir, self.model)
    # The shapes' and the evaluation images' points stay on the device: a search copies only the query.
    self.model.shape_index  # pylint: disable=pointless-statement  (made now, not by the first request)
    self._image_index = None if self.eval_images is None else index.ShapeIndex(self.eval_images.points)
    self._lock = threading.Lock()
    self._renderer = None
    self._dir = tempfile.mkdtemp(prefix="jembed_serve_")  # GLBs and PNGs handed to the page
    self._thumbs: dict[str, str] = {}
    self._map = None
    self.search(Image.new("RGB", (self.size, self.size)), 1)  # compiles the embed (and viewpoint) programs now

  @property
  def renderer(self):
    """The embree ray caster: an OpenGL context belongs to the thread that made it, the server's workers vary."""
    if self._renderer is None:
      self._renderer = backend.get_renderer("embree")
    return self._renderer

  def shape_label(self, shape_id: str) -> str:
    return f"{shape_id} ({self.model.shape_categories[self._row[shape_id]]})"

  def search(self, photo: Image.Image, top_k: int = 5, n_images: int = 8) -> Search:
    """A photo -> its `top_k` nearest shapes (launch/query.py's ranking), its pose and its nearest evaluation images."""
    top_k = int(np.clip(top_k, 1, len(self.model.shape_ids)))
    viewpoint = None
    if self.has_viewpoint:  # the point and the pose from one forward pass, as launch/query.py does
      point, poses = query.embed_photos_with_poses(self.model, [photo])
      viewpoint = dataclasses.asdict(poses[0])
    else:
      point = query.embed_photos(self.model, [photo])
    neighbours = self.nearest_images(point[0], n_images)
    return Search(query.rank_shapes(self.model, point, top_k)[0], point[0], viewpoint, neighbours)

  def nearest_images(self, point: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
    """[(evaluation image index, distance)] of the `k` images nearest to `point` (float32[D]), `exclude` left out."""
    if self.eval_images is None:
      return []
    k = min(k + (exclude is not None), len(self.eval_images.points))
    dist, rows = self._image_index.search(np.asarray(point, np.float32)[None], k)
    return [(int(i), float(d)) for d, i in zip(dist[0], rows[0]) if i != exclude][: k - (exclude is not None)]

  def shape_images(self, shape_id: str, k: int = 12) -> list[tuple[int, float]]:
    """Shape -> its nearest evaluation images in the joint space."""
    return self.nearest_images(self.model.shape_points[self._row[shape_id]], k)

  def image_images(self, index: int, k: int = 12) -> list[tuple[int, float]]:
    """Evaluation image -> its nearest other evaluation images."""
    return self.nearest_images(self.eval_images.points[index], k, exclude=index)

  @functools.lru_cache(maxsize=None)  # pylint: disable=method-cache-max-size-none  (one Demo per server)
  def mesh(self, shape_id: str):
    """The normalized mesh of a shape (as the workdir's shape side loaded it): `record.Shape`."""
    refs, up_axis, front = manifest.listed_shapes(self.workdir, [shape_id])
    shapes = list(sources.iter_shapes(refs, up_axis, front))
    if not shapes:
      raise FileNotFoundError(f"the mesh of {shape_id!r} no longer loads from {refs[0].path if refs else '?'}")
    return shapes[0]

  def shape_glb(self, shape_id: str) -> str:
    """Path of a GLB of the shape's normalized mesh (+Y up, as glTF), written once, for the 3D viewer."""
    path = os.path.join(self._dir, f"shape_{self._row[shape_id]}.glb")
    with self._lock:
      if not os.path.exists(path):
        shape = self.mesh(shape_id)
        mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=False)
        mesh.visual.face_colors = (176, 180, 192, 255)
        mesh.export(path + ".tmp", file_type="glb")
        os.replace(path + ".tmp", path)
    return path

  def png(self, image: np.ndarray, name: str | None = None) -> str:
    """Path of a PNG of `image` (uint8[H, W, 3]) in the server's folder: `name`.png, written once, or a new file.

    The page gets files, not arrays: Gradio rewrites the cached copy of an array on every request that returns the
    same pixels, so a second request can truncate a file while the first one's browser downloads it; files are copied
    into its cache once, atomically.
    """
    path = os.path.join(self._dir, f"{name or uuid.uuid4().hex}.png")
    if not os.path.exists(path):
      tmp = f"{path}.{uuid.uuid4().hex}.tmp"
      Image.fromarray(image).save(tmp, format="PNG")
      os.replace(tmp, path)  # concurrent writers of one name write the same pixels; readers never see a part
    return path

  def thumbnails(self, shape_ids: list[str], size: int = 128) -> list[str]:
    """PNG paths of the shapes' three-quarter views (evaluation/report.py's), rendered once."""
    with self._lock:
      missing = [s for s in shape_ids if s not in self._thumbs]
      if missing:
        rendered = thumbnails.workdir_thumbnails(self.workdir, missing, size, "embree")
        blank = np.full((size, size, 3), 255, np.uint8)
        self._thumbs.update({s: self.png(rendered.get(s, blank), f"thumb_{self._row[s]}") for s in missing})
      return [self._thumbs[s] for s in shape_ids]

  def eval_image(self, index: int) -> str:
    """PNG path of evaluation image `index`."""
    return self.png(self.eval_images.images[index], f"eval_{index}")

  def shape_map(self) -> pictures.ShapeMap:
    """The 2-D shape map, built on first use."""
    with self._lock:
      if self._map is None:
        self._map = pictures.build_map(self.workdir, self.model)
      return self._map

  def map_picture(self, point: np.ndarray | None = None, ringed: list[str] = ()) -> np.ndarray:
    """uint8[H, W, 3]: the shape map, the point (float32[D], e.g. a photo's) marked, the `ringed` shapes circled."""
    the_map = self.shape_map()
    xy = None if point is None else pictures.place_on_map(the_map, self.model, point)
    return pictures.draw_map(the_map, xy, np.array([self._row[s] for s in ringed], np.int64))

  def pose_picture(self, photo: Image.Image, shape_id: str, viewpoint: dict[str, float]) -> np.ndarray:
    """uint8[H, W, 3]: `shape_id` drawn over the photo at `viewpoint` (predicted by the network's viewpoint head)."""
    shape = self.mesh(shape_id)
    scale = 512 / max(photo.size)  # draws on a screen-sized copy: the overlay is for looking at
    if scale < 1:
      photo = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))), Image.LANCZOS)
    with self._lock:
      return pose_overlay.draw_pose_overlay(
          np.asarray(photo),
          shape.vertices,
          shape.faces,
          viewpoint["azimuth"],
          viewpoint["elevation"],
          viewpoint["tilt"],
          renderer=self.renderer,
      )

  def results_markdown(self) -> str:
    path = paths.eval_dir(self.workdir, paths.RESULTS_TABLE)
    if not os.path.exists(path):
      return f"No results yet: run `python -m launch.evaluate --workdir={self.workdir}`."
    with open(path) as f:
      return f.read()
