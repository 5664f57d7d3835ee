"""The shape side end to end: LFD-HoG descriptors -> pairwise distances -> Sammon MDS -> one point per shape.

Writes into the workdir (each step reuses what a previous run finished):
  lfd/descriptors.npy, lfd/progress.json   the descriptors (resumable, see `descriptors.py`)
  lfd/distances.npy, lfd/distances.json    float32[N, N] distances of those rows (memory-mapped for large N), and
                                           their SHA-256 (a damaged matrix is computed again)
  shape_embedding.npz                      ids, categories, points float32[N, D], stress, stress_curve
  shape_embedding.png                      a 2-D map of the space (2-D Sammon), category colours and thumbnails
  shape_embedding.json                     N, dims, stress, iterations and why they stopped, seconds per stage

Up to `config.mds.exact_max_n` shapes the Sammon solve is exact on the full matrix; beyond (or with
`config.mds.method='landmark'`) it is the landmark variant, which never forms the N x N matrix.

Several JAX processes (`launch/embed_shapes.py --coordinator_address=...`): process 0 computes the descriptors (or
Beam does), every process computes its share of the distance tiles, process 0 solves Sammon and writes the outputs.
  skipped_shapes.txt                       every listed shape that could not be used, with its reason
"""

import json
import os
import time

from absl import logging
import jax
import ml_collections
import numpy as np

from jembed.embedding import beam_descriptors
from jembed.embedding import descriptors
from jembed.embedding import distances
from jembed.embedding import out_of_sample
from jembed.embedding import sammon
from jembed.embedding import shape_map
from jembed.shapes import sources
from jembed.utils import config_checks as checks
from jembed.utils import distributed
from jembed.workdir import checksums
from jembed.workdir import files
from jembed.workdir import paths
from jembed.workdir import records
from jembed.workdir import stage_checks

# Above this many shapes the distance matrix lives in a memory-mapped file instead of RAM.
_MEMMAP_N = 4096


def cached_distances(desc: descriptors.Descriptors, workdir: str) -> np.ndarray:
  """float32[N, N] distances between descriptor rows, reused from `workdir/lfd/` when they are for the same rows.

  With several JAX processes (`jembed.utils.distributed`), each computes its share of the tiles on its own devices
  into its own (sparse, zero elsewhere) file `distances.npy.part<i>.npy`; process 0 sums the shares (each entry is
  in exactly one) into the matrix. Every process returns the finished matrix.
  """
  folder = paths.lfd(workdir)
  path, meta_path = os.path.join(folder, paths.DISTANCES), os.path.join(folder, paths.DISTANCES_META)
  key = paths.cache_key("\n".join(desc.ids), digits=40)
  n, mmap = len(desc.ids), "r" if len(desc.ids) > _MEMMAP_N else None
  if os.path.exists(meta_path) and os.path.exists(path):
    try:
      with open(meta_path) as f:
        meta = json.load(f)
      if meta.get("ids_sha1") == key:
        checksums.check_file(path, meta.get("sha256", "(none: made before checksums)"), "computing them again")
        logging.info("reusing distances in %s", path)
        d = np.load(path, mmap_mode=mmap)
        if d.shape == (n, n):
          return d
        logging.warning("cached distances %s are %s, not %d x %d: computing them again", path, d.shape, n, n)
    except (OSError, ValueError) as e:  # a cache: a damaged one is made again
      logging.warning("cached distances in %s are damaged (%s): computing them again", folder, e)
  distributed.barrier("distances: every process has looked for a cached matrix")  # before process 0 replaces it
  index, count = jax.process_index(), jax.process_count()
  tmp = path + ".tmp.npy"
  if count > 1:
    part = f"{path}.part{index}.npy"
    distances.pairwise_distances(desc.features, out=part, progress=distributed.is_main(), part=(index, count)).flush()
    distributed.barrier("distances: every share written")
    if distributed.is_main():
      _sum_shares([f"{path}.part{i}.npy" for i in range(count)], tmp, n)
  elif n > _MEMMAP_N:
    distances.pairwise_distances(desc.features, out=tmp, progress=True).flush()
  else:
    np.save(tmp, distances.pairwise_distances(desc.features, progress=True))
  if distributed.is_main():
    digest = checksums.digest_file(tmp)
    os.replace(tmp, path)
    files.write_json(meta_path, {"ids_sha1": key, "n": n, "sha256": digest})
  distributed.barrier("distances: the matrix is in place")
  if count > 1:
    os.remove(f"{path}.part{index}.npy")
  return np.load(path, mmap_mode=mmap)


def _sum_shares(parts: list[str], out_path: str, n: int, rows: int = 1024) -> None:
  """out = the sum of the processes' share files (each entry is nonzero in at most one), row block by row block."""
  out = files.open_memmap(out_path, np.float32, (n, n))
  shares = [np.load(p, mmap_mode="r") for p in parts]
  for lo in range(0, n, rows):
    out[lo : lo + rows] = sum(np.asarray(s[lo : lo + rows]) for s in shares)
  out.flush()


def duplicate_groups(d: np.ndarray, ids: list[str], block: int = 4096) -> list[list[str]]:
  """Groups of shapes at distance exactly 0 from each other (identical descriptors), scanned in row blocks."""
  parent = list(range(len(ids)))

  def find(i):
    while parent[i] != i:
      parent[i] = parent[parent[i]]
      i = parent[i]
    return i

  for lo in range(0, len(ids), block):
    rows, cols = np.nonzero(np.asarray(d[lo : lo + block]) == 0)
    for i, j in zip(rows + lo, cols):
      if i != j:
        parent[find(i)] = find(j)
  groups = {}
  for i in range(len(ids)):
    groups.setdefault(find(i), []).append(ids[i])
  return [g for g in groups.values() if len(g) > 1]


def listing_key(config: ml_collections.ConfigDict) -> str:
  """The key of the shapes `config.shapes` lists (ids and source paths; no mesh is read)."""
  return paths.cache_key([[r.id, r.path] for r in sources.list_shapes(config.shapes)])


def embed_shapes(
    config: ml_collections.ConfigDict,
    workdir: str,
    force: bool = False,
    *,
    beam_runner: str = "",
    beam_pipeline_options: str = "",
) -> records.ShapeEmbedding:
  """Runs the shape side on `config.shapes` and writes the files listed in the module docstring.

  An embedding already made with this config's settings and shapes is reused. One made otherwise is replaced, except
  when a network in `workdir/checkpoints` was trained on it: then this is a `provenance.Mismatch` unless `force`.

  With `beam_runner` the per-shape work (load, normalize, LFD views, HoG) runs on Apache Beam
  (`beam_descriptors`); the rest is the same.

  Returns:
    The `records.ShapeEmbedding` (also in `workdir/shape_embedding.npz`).
  """
  listing = listing_key(config)
  reuse = stage_checks.check_shape_embedding_write(config, workdir, listing, force)
  if reuse and os.path.exists(paths.shape_map(workdir)) and os.path.exists(paths.shape_embedding_summary(workdir)):
    logging.info("reusing %s (made with this config's settings and shapes)", paths.shape_embedding(workdir))
    return records.ShapeEmbedding.load(paths.shape_embedding(workdir))
  os.makedirs(workdir, exist_ok=True)
  seconds = {}
  t = time.time()
  desc = _descriptors(config, workdir, beam_runner, beam_pipeline_options)
  seconds["descriptors"] = time.time() - t
  if len(desc.ids) < 3:
    raise ValueError(f"only {len(desc.ids)} usable shapes in {config.shapes.source!r} source: need at least 3")
  n = len(desc.ids)
  dim = min(config.mds.dim, n - 1)
  landmark = config.mds.method == "landmark" or (config.mds.method == "auto" and n > config.mds.exact_max_n)
  t = time.time()
  d = None if landmark else cached_distances(desc, workdir)  # the stage every process takes a share of
  seconds["distances"] = time.time() - t
  if not distributed.is_main():  # process 0 solves Sammon and writes; the others wait for its file
    distributed.barrier("shape embedding written")
    return records.load_shape_embedding(workdir)
  write_skipped(workdir, desc.skipped)
  t = time.time()
  if landmark:  # Never forms the N x N matrix: exact Sammon on landmarks, every other shape out of sample.
    lm = out_of_sample.sammon_landmark(
        desc.features,
        n_landmarks=config.mds.landmarks,
        dim=dim,
        max_iter=config.mds.max_iter,
        tol=config.mds.tol,
        tol_x=config.mds.tol_x,
        stop=config.mds.stop,
        progress=True,
    )
    points, n_iter, curve = lm.points, lm.landmark_result.n_iter, lm.landmark_result.stress_curve
    stopped = lm.landmark_result.stopped
    stress = out_of_sample.subset_stress(desc.features, points)  # Estimated on a random subset of pairs.
  else:
    for group in duplicate_groups(d, desc.ids):
      logging.warning("identical LFD descriptors (zero distance; placed on one point): %s", ", ".join(group))
    result = sammon.sammon(
        d, dim=dim, max_iter=config.mds.max_iter, tol=config.mds.tol, tol_x=config.mds.tol_x, stop=config.mds.stop
    )
    points, stress, curve, n_iter, stopped = result
  seconds["sammon"] = time.time() - t
  embedding = records.ShapeEmbedding(
      ids=np.array(desc.ids),
      categories=np.array(desc.categories),
      points=np.asarray(points, np.float32),
      stress=float(stress),
      stress_curve=np.asarray(curve, np.float32),
  )
  embedding.save(paths.shape_embedding(workdir))
  stage_checks.record_shape_embedding(config, workdir, listing, embedding)
  t = time.time()
  shape_map.write_map(config, desc.features, embedding, paths.shape_map(workdir))
  seconds["map"] = time.time() - t
  logging.info(
      "shape embedding: N=%d, dim=%d, stress=%.4g after %d iterations (%s)%s; seconds %s; %d skipped",
      n,
      dim,
      embedding.stress,
      int(n_iter),
      stopped,
      " (landmark)" if landmark else "",
      {k: round(v, 1) for k, v in seconds.items()},
      len(desc.skipped),
  )
  _write_summary(workdir, embedding, int(n_iter), stopped, seconds, desc.skipped)
  distributed.barrier("shape embedding written")
  return embedding


def _descriptors(config, workdir, beam_runner: str, beam_pipeline_options: str) -> descriptors.Descriptors:
  """The descriptor store, computed by process 0 (on Beam with `beam_runner`), read by every process."""
  if distributed.is_main():
    if beam_runner:
      beam_descriptors.compute_descriptors(config, workdir, beam_runner, beam_pipeline_options)
    else:
      descriptors.compute_descriptors(config, workdir)
  distributed.barrier("descriptors written")
  return descriptors.load_descriptors(workdir)


def add_shapes(config: ml_collections.ConfigDict, workdir: str, base_workdir: str) -> records.ShapeEmbedding:
  """Places the shapes of `config.shapes` into the finished embedding in `base_workdir`, which stays as it is.

  The paper's GPS.m idea done right: each new shape's LFD-HoG distances to the embedded shapes (and to the other new
  shapes) are fitted with the embedded points held fixed (`out_of_sample.embed_out_of_sample`, started from the
  weighted mean of its nearest embedded shapes). The descriptors must be computed with the base run's settings.

  Returns:
    The new shapes' `records.ShapeEmbedding` (also in `workdir/shape_embedding.npz`); its stress is that of the new
    rows.
  """
  stage_checks.check_same_views(config, workdir, base_workdir)
  base = records.ShapeEmbedding.load(paths.shape_embedding(base_workdir))
  base_desc = descriptors.load_descriptors(base_workdir)
  if list(base_desc.ids) != list(base.ids):
    raise ValueError(
        f"{base_workdir!r}: its descriptors are not those of its shape embedding; " "rerun embed_shapes there"
    )
  os.makedirs(workdir, exist_ok=True)
  desc = descriptors.compute_descriptors(config, workdir)
  write_skipped(workdir, desc.skipped)
  if not desc.ids:
    raise ValueError(f"no usable shapes in {config.shapes.source!r} source to add")
  a = distances.cross_distances(desc.features, base_desc.features, progress=True)
  s = distances.pairwise_distances(desc.features) if len(desc.ids) > 1 else None
  points = out_of_sample.embed_out_of_sample(base.points, a, s)
  # The stress of the new rows against the embedded shapes, in Sammon's normalization.
  d_new = np.linalg.norm(points[:, None, :] - base.points[None], axis=-1)
  a = np.asarray(a, np.float64)
  keep = a > 0
  stress = float(((a - d_new)[keep] ** 2 / a[keep]).sum() / a.sum())
  added = records.ShapeEmbedding(
      ids=np.array(desc.ids),
      categories=np.array(desc.categories),
      points=np.asarray(points, np.float32),
      stress=stress,
      stress_curve=np.zeros(0, np.float32),
  )
  added.save(paths.shape_embedding(workdir))
  stage_checks.record_shape_embedding(config, workdir, listing_key(config), added, into=base_workdir)
  logging.info("placed %d new shapes into %s (stress of their rows %.4g)", len(desc.ids), base_workdir, stress)
  return added


def write_skipped(workdir: str, skipped: list[tuple[str, str]]) -> None:
  files.write_text(paths.skipped_shapes(workdir), "".join(f"{shape_id}\t{reason}\n" for shape_id, reason in skipped))


def _write_summary(workdir, embedding, n_iter, stopped, seconds, skipped) -> None:
  summary = dict(
      n_shapes=len(embedding.ids),
      dim=int(embedding.points.shape[1]),
      stress=embedding.stress,
      iterations=n_iter,
      stopped=stopped,
      seconds={k: round(v, 2) for k, v in seconds.items()},
      n_skipped=len(skipped),
      categories={c: int(n) for c, n in zip(*np.unique(embedding.categories, return_counts=True))},
  )
  files.write_json(paths.shape_embedding_summary(workdir), summary, indent=1)


# The checks `launch` runs on this stage's config fields before any work (`jembed.utils.config_checks`).
CONFIG_RULES = {
    "lfd.hog_size": checks.integer(8),
    "lfd.batch_shapes": checks.integer(1),
    "mds.dim": checks.integer(1),
    "mds.max_iter": checks.integer(1),
    "mds.tol": checks.number(0.0, lo_open=True),
    "mds.tol_x": checks.number(0.0),
    "mds.stop": checks.choice(("mdscale", "change")),
    "mds.method": checks.choice(("auto", "exact", "landmark")),
    "mds.exact_max_n": checks.integer(3),
    "mds.landmarks": checks.integer(3),
}
