"""What the browser demo computes, without any web framework: a trained workdir loaded once, and the answers of each
of the page's directions (photo -> shapes, shape -> images, image -> images, the shape map, the results table).

One `Demo` serves every request of the server: the network's variables, the shape points and the evaluation images'
points are loaded once (the points stay on the device, `index.ShapeIndex`), the jitted embed function
(`query.embed_photos`) is compiled at start for every batch size the page sends (`search_batch`: concurrent uploads
go through one forward pass) and shared by the server's worker threads (JAX dispatch is thread-safe); the renderer
runs on a thread of its own (`RenderThread`) and the caches sit behind one lock.
"""

import concurrent.futures
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
from jembed.workdir import files
from jembed.workdir import paths

MAX_UPLOAD_BYTES = 20 * 2**20  # a phone photo is 2-8 MB; anything bigger is refused before decoding
MAX_PIXELS = images_lib.MAX_PIXELS  # decoded size limit, the same as every reader's (a 40 MP RGB image is 120 MB)
MAX_TOP_K = 20  # shapes a search ranks at least (the page lists up to 20): one compiled search whatever the slider


class BadUpload(ValueError):
  """An upload that is not a usable photo; the message is meant for the page."""


class RenderThread:
  """A renderer (`backend.get_renderer(name)`) that runs every call on one thread of its own.

  An OpenGL context belongs to the thread that made it and the server's workers vary, so the EGL rasterizer (a few
  milliseconds for the pose overlay's 512² samples on llvmpipe, against 50 ms for the embree ray caster) lives on
  its own thread; calls from any thread wait their turn there.
  """

  def __init__(self, name: str = "auto"):
    self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jembed-render")
    self._renderer = self._pool.submit(backend.get_renderer, name).result()
    self.name = self._renderer.name

  def render(self, *args, **kwargs):
    """`Renderer.render`, run on the render thread."""
    return self._pool.submit(self._renderer.render, *args, **kwargs).result()

  def run(self, fn, *args):
    """`fn(renderer, *args)` on the render thread (work that renders many times, e.g. verification)."""
    return self._pool.submit(fn, self._renderer, *args).result()


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
    refined: the verified ranking's refined pose (same keys) when the search was verified (`matches` are then the
      verified ranking, `jembed.api.verify`), else None.
  """

  matches: list[query.Match]
  point: np.ndarray
  viewpoint: dict[str, float] | None
  neighbours: list[tuple[int, float]]
  refined: dict[str, float] | None = None


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


# A catalogue up to this size gets all its thumbnails at the server's start: rendered at the first start on a workdir
# (~25 ms a shape on 2 cores), copied from the workdir after that; a larger one renders each shape when first shown.
PRERENDER_MAX_SHAPES = 1000


def _keep_copy(path: str, kept: str) -> None:
  """Copies `path` to `kept` (`files.copy_file`: concurrent servers of one workdir see whole files or none); a
  workdir that cannot be written keeps nothing."""
  try:
    os.makedirs(os.path.dirname(kept), exist_ok=True)
    files.copy_file(path, kept)
  except OSError:
    pass


class Demo:
  """A trained workdir, loaded once, answering the page's questions. Thread-safe.

  Raises (from the constructor):
    FileNotFoundError: the workdir lacks a stage; the message names the launcher to run.
  """

  def __init__(self, workdir: str, max_batch: int = 1):
    """Loads `workdir` and compiles what a search of up to `max_batch` photos at once runs."""
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
    blank = Image.new("RGB", (self.size, self.size))
    for batch in sorted({query.batch_bucket(b) for b in range(1, max_batch + 1)}):  # every program a batch needs, now
      found = self.search_batch([blank] * batch, [1] * batch)
    self.map_pictures(found[0].point[None], [[]])  # the map, and the placement of points on it
    if len(self.model.shape_ids) <= PRERENDER_MAX_SHAPES:  # every thumbnail now (later starts copy them)
      self.thumbnails([str(s) for s in self.model.shape_ids])

  @property
  def folder(self) -> str:
    """The server's folder of files handed to the page (PNGs, GLBs), each written once under its own name."""
    return self._dir

  @property
  def renderer(self) -> RenderThread:
    """The renderer of the pose overlays (EGL when it is there), on its own thread, made on first use."""
    with self._lock:
      if self._renderer is None:
        self._renderer = RenderThread("auto")
      return self._renderer

  def shape_label(self, shape_id: str) -> str:
    return f"{shape_id} ({self.model.shape_categories[self._row[shape_id]]})"

  def search(self, photo: Image.Image, top_k: int = 5, n_images: int = 8) -> Search:
    """A photo -> its `top_k` nearest shapes (launch/query.py's ranking), its pose and its nearest evaluation images."""
    return self.search_batch([photo], [top_k], n_images)[0]

  def search_batch(
      self, photos: list[Image.Image], top_ks: list[int], n_images: int = 8, verify: list[bool] | None = None
  ) -> list[Search]:
    """`search` of several photos (e.g. concurrent uploads) at once: one forward pass of the network, one search of
    the shape index and one of the evaluation images' index for all of them. `verify[i]`: re-rank photo i's
    shortlist by rendering and refine its pose (`query.verified_matches`, on the render thread)."""
    top_ks = [int(np.clip(k, 1, len(self.model.shape_ids))) for k in top_ks]
    viewpoints = [None] * len(photos)
    if self.has_viewpoint:  # the point and the pose from one forward pass, as launch/query.py does
      points, poses = query.embed_photos_with_poses(self.model, photos)
      viewpoints = [dataclasses.asdict(p) for p in poses]
    else:
      points = query.embed_photos(self.model, photos)
    ranked = query.rank_shapes(self.model, points, min(len(self.model.shape_ids), max(MAX_TOP_K, *top_ks)))
    neighbours = self._nearest_images(points, n_images)
    found = [Search(r[:k], p, v, n) for r, k, p, v, n in zip(ranked, top_ks, points, viewpoints, neighbours)]
    for i in [i for i, v in enumerate(verify or ()) if v]:
      pose = [query.Pose(**viewpoints[i])] if viewpoints[i] else None
      matches, refined = self.renderer.run(
          lambda r, i=i, pose=pose: query.verified_matches(
              self.workdir, self.model, [photos[i]], points[i : i + 1], pose, top_ks[i], r
          )
      )
      found[i] = dataclasses.replace(found[i], matches=matches[0], refined=dataclasses.asdict(refined[0]))
    return found

  def _nearest_images(self, points: np.ndarray, k: int, exclude: int | None = None) -> list[list[tuple[int, float]]]:
    """For each point (float32[B, D]), [(evaluation image index, distance)] of its `k` nearest images, `exclude`
    left out."""
    if self.eval_images is None:
      return [[] for _ in points]
    k = min(k + (exclude is not None), len(self.eval_images.points))
    dist, rows = self._image_index.search(np.asarray(points, np.float32), k)
    return [
        [(int(i), float(d)) for d, i in zip(ds, rs) if i != exclude][: k - (exclude is not None)]
        for ds, rs in zip(dist, rows)
    ]

  def nearest_images(self, point: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
    """[(evaluation image index, distance)] of the `k` images nearest to `point` (float32[D]), `exclude` left out."""
    return self._nearest_images(np.asarray(point, np.float32)[None], k, exclude)[0]

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
    same pixels, so a second request can truncate a file while the first one's browser downloads it. Files are
    written once, atomically, and served from this folder (one of Gradio's static paths, `app.demo_page`).
    """
    path = os.path.join(self._dir, f"{name or uuid.uuid4().hex}.png")
    if not os.path.exists(path):
      tmp = f"{path}.{uuid.uuid4().hex}.tmp"
      Image.fromarray(image).save(tmp, format="PNG", compress_level=1)  # a fast write: the file only travels locally
      os.replace(tmp, path)  # concurrent writers of one name write the same pixels; readers never see a part
    return path

  def thumbnails(self, shape_ids: list[str], size: int = 128) -> list[str]:
    """PNG paths of the shapes' three-quarter views (evaluation/report.py's), rendered once per workdir: kept in
    `pictures.thumbnail_folder` (a read-only workdir only loses that cache) and copied into the server's folder."""
    with self._lock:
      missing = [s for s in shape_ids if s not in self._thumbs]
      if missing:  # an answer's shapes are usually all known: no look at the workdir then
        folder = pictures.thumbnail_folder(self.workdir, size)
        kept = {s: os.path.join(folder, f"{self._row[s]}.png") for s in missing}
        render = [s for s in missing if not os.path.exists(kept[s])]
        rendered = thumbnails.workdir_thumbnails(self.workdir, render, size, "embree") if render else {}
        blank = np.full((size, size, 3), 255, np.uint8)
        for s in missing:
          name = f"thumb_{self._row[s]}"
          if s in render:  # a shape that no longer loads gets a blank tile, not kept
            self._thumbs[s] = self.png(rendered.get(s, blank), name)
            if s in rendered:
              _keep_copy(self._thumbs[s], kept[s])
          else:  # the page's files live in the server's own folder (Gradio's static path), not the workdir's
            self._thumbs[s] = os.path.join(self._dir, f"{name}.png")
            files.copy_file(kept[s], self._thumbs[s])
      return [self._thumbs[s] for s in shape_ids]

  def eval_image(self, index: int) -> str:
    """PNG path of evaluation image `index`."""
    return self.png(self.eval_images.images[index], f"eval_{index}")

  def shape_map(self) -> pictures.ShapeMap:
    """The 2-D shape map, drawn once (cached in the workdir), read on first use."""
    with self._lock:
      if self._map is None:
        self._map = pictures.build_map(self.workdir, self.model)
      return self._map

  def map_picture(self, point: np.ndarray | None = None, ringed: list[str] = ()) -> np.ndarray:
    """uint8[H, W, 3]: the shape map, the point (float32[D], e.g. a photo's) marked, the `ringed` shapes circled."""
    if point is None:
      return pictures.draw_map(self.shape_map())
    return self.map_pictures(np.asarray(point)[None], [ringed])[0]

  def map_pictures(self, points: np.ndarray, ringed: list[list[str]]) -> list[np.ndarray]:
    """`map_picture` of several points (float32[B, D]) at once: one out-of-sample placement for all."""
    the_map = self.shape_map()
    xy = pictures.place_on_map(the_map, self.model, np.asarray(points, np.float32).reshape(len(ringed), -1))
    return [
        pictures.draw_map(the_map, at, np.array([self._row[s] for s in ids], np.int64)) for at, ids in zip(xy, ringed)
    ]

  def pose_picture(self, photo: Image.Image, shape_id: str, viewpoint: dict[str, float]) -> np.ndarray:
    """uint8[H, W, 3]: `shape_id` drawn over the photo at `viewpoint` (predicted by the network's viewpoint head)."""
    shape = self.mesh(shape_id)
    scale = 512 / max(photo.size)  # draws on a screen-sized copy: the overlay is for looking at
    if scale < 1:
      photo = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))), Image.LANCZOS)
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
