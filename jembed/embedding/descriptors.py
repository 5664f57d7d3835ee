"""LFD-HoG descriptors of a whole collection (paper section 1.2), streamed, cached in the workdir and resumable.

Each shape: 20 LFD views (renderer) -> tight gray crop -> stretched 120 x 120 -> HoG pyramid -> one 203,760-D row.
Shapes go through in batches of `config.lfd.batch_shapes`, so memory holds one batch of views, never the collection.
Rows are written to `workdir/lfd/descriptors.npy`, a memory-mapped float32[N_listed, 203760] file, in the order shapes
load successfully: the rows of the usable shapes are always the contiguous prefix `[:n_done]`, in sorted-id order.
`workdir/lfd/progress.json` records, after every batch (written atomically), how far the listing has been processed,
the ids and categories of the rows, the skipped shapes with their reasons, and the SHA-256 of each batch's rows. A
killed run restarts after the last finished batch; a run over a different listing (other shapes, other views, other
sizes) starts over, and so does one whose rows fail their checksums (a cache: made again, with a warning). Readers of
the finished store (`load_descriptors`) verify the rows too, once per process.
"""

import dataclasses
import json
import os
from typing import Callable

from absl import logging
import jax
import ml_collections
import numpy as np
import tqdm

from jembed.embedding import hog
from jembed.embedding import hog_input
from jembed.render import backend
from jembed.shapes import loading
from jembed.shapes import manifest
from jembed.shapes import sources
from jembed.workdir import checksums
from jembed.workdir import files
from jembed.workdir import paths


@dataclasses.dataclass(frozen=True)
class Descriptors:
  """The finished descriptors of a collection.

  Attributes:
    ids: str[N] shape ids (sorted, as listed), one per row.
    categories: str[N].
    features: float32[N, 203760], a read-only memory map (not in RAM).
    skipped: (id, reason) of the listed shapes that could not be used.
  """

  ids: list[str]
  categories: list[str]
  features: np.ndarray
  skipped: list[tuple[str, str]]


def fingerprint(config: ml_collections.ConfigDict, refs) -> dict:
  """What the cached rows depend on; any change invalidates the cache."""
  return dict(
      ids=[r.id for r in refs],
      paths=[r.path for r in refs],
      up_axis=config.shapes.up_axis,
      front=config.shapes.front,
      size=config.render.size,
      antialias=config.render.antialias,
      hog_size=config.lfd.hog_size,
      dim=hog.LFD_DIM,
      version=3,
  )  # 2: the rows' mesh fingerprints recorded; 3: their SHA-256 digests


def open_store(workdir: str, key: dict, n: int) -> tuple[np.ndarray, dict]:
  """Opens (or creates) the descriptor memmap and its progress record; resets both if the fingerprint changed."""
  folder = paths.lfd(workdir)
  os.makedirs(folder, exist_ok=True)
  array_path, progress_path = os.path.join(folder, paths.DESCRIPTORS), os.path.join(folder, paths.DESCRIPTOR_PROGRESS)
  progress, features = None, None
  if os.path.exists(progress_path) and os.path.exists(array_path):
    try:  # a cache: a damaged one (killed disk, truncated copy) starts over instead of failing
      with open(progress_path) as f:
        progress = json.load(f)
      if progress.get("fingerprint") != key:
        logging.info("LFD cache in %s is for other shapes or settings: starting over", folder)
        progress = None
      else:
        features = np.load(array_path, mmap_mode="r+")
        if features.shape != (max(n, 1), hog.LFD_DIM):
          raise ValueError(f"{array_path} holds {features.shape}, expected {(max(n, 1), hog.LFD_DIM)}")
        _check_once(features, progress, array_path)
    except (OSError, ValueError, AttributeError, KeyError) as e:
      logging.warning("LFD cache in %s is damaged (%s): starting over", folder, e)
      progress, features = None, None
  if progress is None:
    progress = dict(fingerprint=key, n_processed=0, ids=[], categories=[], meshes=[], skipped=[], digests=[])
    features = files.open_memmap(array_path, np.float32, (max(n, 1), hog.LFD_DIM))  # space reserved: no SIGBUS
    files.write_json(progress_path, progress)
  return features, progress


def record_rows(progress: dict, row0: int, rows: np.ndarray) -> None:
  """Adds the SHA-256 of `rows` (float32[k, 203760], just written at `row0`) to the progress record."""
  progress["digests"].append([row0, row0 + len(rows), checksums.digest_array(np.asarray(rows, np.float32))])


def check_rows(features: np.ndarray, progress: dict, path: str) -> None:
  """Raises `checksums.Mismatch` naming `path` when a batch of rows is not what was written (or is unrecorded)."""
  covered = 0
  for row0, row1, digest in progress["digests"]:
    if row0 != covered or checksums.digest_array(features[row0:row1]) != digest:
      raise checksums.Mismatch(f"{path} is damaged (rows {row0}-{row1 - 1} fail their SHA-256)")
    covered = row1
  if covered != len(progress["ids"]):
    raise checksums.Mismatch(f"{path} is damaged (rows from {covered} have no recorded SHA-256)")


@jax.jit
def batch_descriptors(views_120: jax.Array) -> jax.Array:
  """uint8[S, 20, 120, 120] -> float32[S, 203760]."""
  return hog.lfd_descriptor(views_120.astype(np.float32))


def compute_descriptors(
    config: ml_collections.ConfigDict, workdir: str, on_batch: Callable[[int], None] | None = None
) -> Descriptors:
  """Computes (or resumes, or reuses) the LFD-HoG descriptors of `config.shapes` in `workdir/lfd/`.

  Args:
    config: reads `shapes`, `render` (backend, size, antialias) and `lfd` (hog_size, batch_shapes).
    workdir: the run's folder.
    on_batch: called with the number of listed shapes processed so far after each finished batch (tests use it to
      interrupt a run).

  Returns:
    The finished `Descriptors`.
  """
  refs = sources.list_shapes(config.shapes)
  features, progress = open_store(workdir, fingerprint(config, refs), len(refs))
  progress_path = paths.lfd(workdir, paths.DESCRIPTOR_PROGRESS)
  start = progress["n_processed"]
  if start < len(refs):
    if start:
      logging.info("resuming LFD descriptors after %d of %d shapes", start, len(refs))
    renderer = backend.get_renderer(config.render.backend)
    batch = config.lfd.batch_shapes
    bar = tqdm.tqdm(total=len(refs), initial=start, desc="LFD-HoG descriptors", unit="shape")
    for lo in range(start, len(refs), batch):
      report = sources.LoadReport()
      chunk = refs[lo : lo + batch]
      views, ids, categories, meshes = [], [], [], []
      for shape in sources.iter_shapes(chunk, config.shapes.up_axis, config.shapes.front, report, summary=False):
        views.append(
            hog_input.lfd_images(
                renderer,
                shape.vertices,
                shape.faces,
                shape.category,
                size=config.render.size,
                antialias=config.render.antialias,
            )
        )
        ids.append(shape.id)
        categories.append(shape.category)
        meshes.append(loading.geometry_fingerprint(shape))
      if views:
        padded = np.zeros((batch,) + views[0].shape, np.uint8)  # One compiled shape for every batch.
        padded[: len(views)] = views
        rows = np.asarray(batch_descriptors(padded))[: len(views)]
        row0 = len(progress["ids"])
        features[row0 : row0 + len(rows)] = rows
        features.flush()
        record_rows(progress, row0, rows)
      progress["ids"] += ids
      progress["categories"] += categories
      progress["meshes"] += meshes
      progress["skipped"] += [[ref.id, why] for ref, why in report.skipped]
      progress["n_processed"] = lo + len(chunk)
      files.write_json(progress_path, progress)  # Only after the rows are on disk.
      bar.update(len(chunk))
      if on_batch is not None:
        on_batch(progress["n_processed"])
    bar.close()
  del features
  logging.info(
      "LFD descriptors: %d of the %d listed shapes usable, %d skipped in all (reasons in %s)",
      len(progress["ids"]),
      len(refs),
      len(progress["skipped"]),
      paths.skipped_shapes(workdir),
  )
  write_manifest(workdir, progress)
  return load_descriptors(workdir)


def write_manifest(workdir: str, progress: dict) -> None:
  """`workdir/shapes.json` from the finished progress record (what later stages read instead of this cache)."""
  fingerprint = progress["fingerprint"]
  source_of = dict(zip(fingerprint["ids"], fingerprint["paths"]))
  manifest.Manifest(
      ids=progress["ids"],
      categories=progress["categories"],
      sources=[source_of[i] for i in progress["ids"]],
      fingerprints=progress["meshes"],
      up_axis=fingerprint["up_axis"],
      front=fingerprint["front"],
      skipped=progress["skipped"],
  ).save(workdir)


def load_descriptors(workdir: str) -> Descriptors:
  """The descriptors cached in `workdir/lfd/` (as far as they were computed), memory-mapped read-only, their rows
  verified against the recorded SHA-256 (once per process and file version).

  Raises:
    FileNotFoundError: there are none.
    files.DamagedFile: they are damaged (the message names the launcher that computes them again).
  """
  progress_path = paths.lfd(workdir, paths.DESCRIPTOR_PROGRESS)
  if not os.path.exists(progress_path):
    raise FileNotFoundError(f"no LFD descriptors in {workdir!r}: run launch/embed_shapes.py with this workdir first")
  try:
    with open(progress_path) as f:
      progress = json.load(f)
    n = len(progress["ids"])
    path = paths.lfd(workdir, paths.DESCRIPTORS)
    features = np.load(path, mmap_mode="r")[:n]
    _check_once(features, progress, path)
  except (OSError, ValueError, KeyError) as e:
    raise files.DamagedFile(
        f"the LFD descriptors in {paths.lfd(workdir)} are damaged ({e}): run "
        f"`python -m launch.embed_shapes --workdir={workdir}` to compute them again"
    ) from None
  return Descriptors(
      ids=progress["ids"],
      categories=progress["categories"],
      features=features,
      skipped=[tuple(s) for s in progress["skipped"]],
  )


# (real path, size, mtime_ns, digests) of the descriptor files this process has verified.
_VERIFIED: set[tuple] = set()


def _check_once(features: np.ndarray, progress: dict, path: str) -> None:
  stat = os.stat(path)
  key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, json.dumps(progress.get("digests")))
  if key not in _VERIFIED:
    check_rows(features, progress, path)
    _VERIFIED.add(key)
