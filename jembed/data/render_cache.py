"""Rendering every shape's synthetic images in worker processes, into a per-shape cache the dataset is written from.

Workers own shapes: each task is one shape (load the mesh, render all its views in one call, crop, composite,
encode PNGs) and ends in one file `shape_<index>.pkl` written atomically (temporary name, then rename). So

* a killed build keeps every finished shape and the next run renders only the missing ones (resume);
* the images do not depend on the number of workers: every image draws from its own seeded generator.

Workers are started with the 'spawn' method so each one opens its own renderer (an EGL context does not survive a
fork) and imports no JAX.
"""

import contextlib
import dataclasses
import functools
import multiprocessing
import os
import pickle
import time

from absl import logging
import numpy as np
import tqdm

from jembed.data import appearance
from jembed.data import backgrounds as backgrounds_lib
from jembed.data import synthesis
from jembed.data import viewpoints
from jembed.render import backend
from jembed.render import base
from jembed.shapes import loading
from jembed.shapes import record


@dataclasses.dataclass(frozen=True)
class RenderJob:
  """What a worker needs to render any shape (picklable).

  Attributes:
    settings: image synthesis settings.
    seed: the config seed; image i of shape s draws from `synthesis.example_rng(seed, s.id, i)`.
    images_per_shape: images per shape.
    renderer: renderer name ('auto' | 'egl' | 'embree').
    up_axis, front: orientation of the source meshes (`config.shapes`).
    views_dir: folder of per-category view files ('' = the paper's histograms).
    distance: camera distance.
    photos: usable background photo paths; empty = procedural backgrounds.
    background_scale: photo working scale (see `backgrounds.PhotoBackgrounds`).
    clutter_ratio: share of non-gray backgrounds.
    procedural_share: share of those that are procedural although there are photos.
    cache_dir: where `shape_<index>.pkl` files go.
    procedural_share: share of cluttered backgrounds that are procedural although there are photos.
    background_jitter: probability that a photo background is cropped at a random scale, flipped and colour-jittered.
    pool_refs: the shapes distractors are drawn from (empty = no distractors; `JembedImages.distractor_refs`).
    pool_size: other shapes in each shape's distractor pool.
  """

  settings: synthesis.SynthesisSettings
  seed: int
  images_per_shape: int
  renderer: str
  up_axis: str
  front: str
  views_dir: str
  distance: float
  photos: tuple[str, ...]
  background_scale: float
  clutter_ratio: float
  cache_dir: str
  procedural_share: float = 0.0
  background_jitter: float = 0.0
  pool_refs: tuple = ()
  pool_size: int = 3


def cache_path(cache_dir: str, shape_index: int) -> str:
  return os.path.join(cache_dir, f"shape_{shape_index:06d}.pkl")


def make_backgrounds(job: RenderJob) -> backgrounds_lib.Backgrounds:
  photos = (
      backgrounds_lib.PhotoBackgrounds(list(job.photos), job.settings.render_size, job.background_scale)
      if job.photos
      else None
  )
  return backgrounds_lib.Backgrounds(photos, job.clutter_ratio, job.procedural_share, job.background_jitter)


@functools.lru_cache(maxsize=64)  # holds every shape of `pool_refs` (24 by default): each is loaded once
def _pool_mesh(ref: record.ShapeRef, up_axis: str, front: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
  """(vertices, faces, parts) of a distractor shape, loaded once per worker; None when it cannot be loaded."""
  try:
    shape = loading.load_mesh(ref, up_axis, front)
  except loading.MeshError:
    return None
  return shape.vertices, shape.faces, appearance.mesh_parts(shape.vertices, shape.faces)


def distractor_pool(job: RenderJob, shape_id: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """The meshes of `job.pool_size` other shapes of `job.pool_refs`, a function of (seed, shape id) only."""
  if not job.settings.distractors or not job.pool_refs:
    return []
  others = [r for r in job.pool_refs if r.id != shape_id]
  rng = synthesis.example_rng(job.seed, shape_id, 2**31 - 1)  # an index no image uses
  picks = rng.choice(len(others), size=min(job.pool_size, len(others)), replace=False) if others else []
  meshes = [_pool_mesh(others[int(i)], job.up_axis, job.front) for i in picks]
  return [m for m in meshes if m is not None]


def shape_examples(
    renderer: base.Renderer,
    shape: record.Shape,
    shape_index: int,
    job: RenderJob,
    backgrounds: backgrounds_lib.Backgrounds,
) -> list[dict]:
  """The dataset examples of one shape (feature dicts as `builder.features` describes; image as PNG bytes)."""
  distribution = viewpoints.distribution_for(shape.category, job.views_dir, job.distance)
  rngs = [synthesis.example_rng(job.seed, shape.id, i) for i in range(job.images_per_shape)]
  pool = distractor_pool(job, shape.id)
  params = [synthesis.sample_params(rng, distribution, job.settings, len(pool)) for rng in rngs]
  parts = None
  if job.settings.appearance != "tint":
    parts = appearance.shape_parts(shape.vertices, shape.faces, shape.face_groups)
  images = synthesis.synthesize(
      renderer,
      shape.vertices,
      shape.faces,
      params,
      rngs,
      backgrounds,
      job.settings,
      parts=parts,
      pool=pool,
      corner_colors=shape.corner_colors,
  )
  return [
      dict(
          image=synthesis.encode_png(image),
          image_index=i,
          shape_index=shape_index,
          shape_id=shape.id,
          category=shape.category,
          azimuth=np.float32(p.azimuth),
          elevation=np.float32(p.elevation),
          tilt=np.float32(p.tilt),
          distance=np.float32(p.distance),
          clutter=bool(info["clutter"]),
          background=info["background"],
      )
      for i, (p, (image, info)) in enumerate(zip(params, images))
  ]


def _write_atomic(path: str, header: dict, examples: list[dict]) -> None:
  """Two pickles, the small header first (so reports need not load the images), then renamed into place."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    pickle.dump(header, f, protocol=pickle.HIGHEST_PROTOCOL)
    pickle.dump(examples, f, protocol=pickle.HIGHEST_PROTOCOL)
  os.replace(tmp, path)


_WORKER: dict = {}  # per process: the job, its renderer and backgrounds


def init_worker(job: RenderJob) -> None:
  """Opens this process's renderer and backgrounds for `job` (once per worker process)."""
  _WORKER.update(job=job, renderer=backend.get_renderer(job.renderer), backgrounds=make_backgrounds(job))


def render_worker_shape(shape_index: int, ref: record.ShapeRef) -> tuple[dict, list[dict]]:
  """`render_shape` with this worker's renderer, backgrounds and job (after `init_worker`)."""
  return render_shape(_WORKER["renderer"], _WORKER["backgrounds"], _WORKER["job"], shape_index, ref)


def render_shape(
    renderer: base.Renderer,
    backgrounds: backgrounds_lib.Backgrounds,
    job: RenderJob,
    shape_index: int,
    ref: record.ShapeRef,
) -> tuple[dict, list[dict]]:
  """One shape's (header, examples): header {'id', 'skipped' (reason or None), 'renderer'}; no examples when the
  mesh could not be used. What a cache worker and a Beam worker (`beam_build`) each do per shape."""
  try:
    shape = loading.load_mesh(ref, job.up_axis, job.front, appearance=job.settings.appearance in ("own", "mixed"))
  except loading.MeshError as e:
    return dict(id=ref.id, skipped=str(e), renderer=None), []
  examples = shape_examples(renderer, shape, shape_index, job, backgrounds)
  return dict(id=ref.id, skipped=None, renderer=renderer.name), examples


def _render_one(task: tuple[int, record.ShapeRef]) -> tuple[int, int, str | None]:
  """Renders one shape into the cache: (shape index, images written, reason it was skipped or None)."""
  shape_index, ref = task
  header, examples = render_worker_shape(shape_index, ref)
  _write_atomic(cache_path(_WORKER["job"].cache_dir, shape_index), header, examples)
  return shape_index, len(examples), header["skipped"]


def read_header(cache_dir: str, shape_index: int) -> dict:
  """{'id', 'skipped' (reason or None), 'renderer'} of one rendered shape."""
  with open(cache_path(cache_dir, shape_index), "rb") as f:
    return pickle.load(f)


def read_examples(cache_dir: str, shape_index: int) -> list[dict]:
  """The feature dicts of one rendered shape (empty when it was skipped)."""
  with open(cache_path(cache_dir, shape_index), "rb") as f:
    pickle.load(f)
    return pickle.load(f)


def missing(cache_dir: str, tasks: list[tuple[int, record.ShapeRef]]) -> list[tuple[int, record.ShapeRef]]:
  return [t for t in tasks if not os.path.exists(cache_path(cache_dir, t[0]))]


def render_to_cache(tasks: list[tuple[int, record.ShapeRef]], job: RenderJob, workers: int = 1) -> dict:
  """Renders the shapes of `tasks` (shape index, ref) that are not cached yet.

  Args:
    tasks: the shapes this run is responsible for.
    job: the render settings.
    workers: processes; 1 renders in this process.

  Returns:
    {'rendered': shapes rendered now, 'cached': shapes found done, 'images': images rendered now,
     'skipped': [(id, reason)] of the shapes rendered now, 'seconds': wall time}.
  """
  os.makedirs(job.cache_dir, exist_ok=True)
  todo = missing(job.cache_dir, tasks)
  stats = dict(rendered=len(todo), cached=len(tasks) - len(todo), images=0, skipped=[], seconds=0.0)
  if not todo:
    return stats
  if stats["cached"]:
    logging.info("resuming: %d of %d shapes already rendered in %s", stats["cached"], len(tasks), job.cache_dir)
  start = time.time()
  ids = {index: ref.id for index, ref in todo}
  bar = tqdm.tqdm(total=len(todo) * job.images_per_shape, desc="rendering images", unit="img", smoothing=0.1)
  workers = max(1, min(int(workers), len(todo)))
  with contextlib.ExitStack() as stack:
    stack.callback(bar.close)
    if workers == 1:
      init_worker(job)
      results = map(_render_one, todo)
    else:  # the pool's exit terminates the workers, also when a task raised
      pool = stack.enter_context(
          multiprocessing.get_context("spawn").Pool(workers, initializer=init_worker, initargs=(job,))
      )
      results = pool.imap_unordered(_render_one, todo, chunksize=1)
    for shape_index, n_images, reason in results:
      stats["images"] += n_images
      if reason is not None:
        logging.warning("skipped %s: %s", ids[shape_index], reason)
        stats["skipped"].append((ids[shape_index], reason))
      bar.update(job.images_per_shape)
  stats["seconds"] = time.time() - start
  logging.info(
      "rendered %d images of %d shapes in %.1f s (%.1f images/s, %d workers)",
      stats["images"],
      len(todo),
      stats["seconds"],
      stats["images"] / max(stats["seconds"], 1e-9),
      workers,
  )
  return stats
