"""Point clouds sampled from each normalized mesh's surface: the input of the learned shape encoder.

Each shape gets `count` points drawn area-uniformly from its surface (trimesh), in the frame every stage works in
(+Y up, front +X, bounding box centred, bounding-sphere radius 1; see `loading.normalize`), optionally with the
sampled faces' unit normals. The draw is a function of (seed, shape id) only, so a shape's cloud is the same in every
run and whatever other shapes the collection holds.

Cached in `workdir/point_clouds/<key>/` where the key hashes everything the clouds depend on (ids, paths, orientation,
count, seed, normals): one `chunk_<i>.npz` per `CHUNK` listed shapes, written atomically, so a killed run resumes
after its last finished chunk and a run with other settings gets its own folder.
"""

import dataclasses
import os
import zlib

import numpy as np
import tqdm
import trimesh

from jembed.shapes import manifest
from jembed.shapes import record
from jembed.shapes import sources
from jembed.workdir import files
from jembed.workdir import paths

CHUNK = 256  # listed shapes per cache file


@dataclasses.dataclass(frozen=True)
class PointClouds:
  """Surface samples of a collection.

  Attributes:
    ids: str[N] shape ids (the listing's order, skipped shapes left out).
    categories: str[N].
    points: float32[N, P, 3] xyz in the normalized mesh frame.
    normals: float32[N, P, 3] unit face normals of the samples, or None.
    skipped: (id, reason) of the listed shapes that could not be loaded.
  """

  ids: np.ndarray
  categories: np.ndarray
  points: np.ndarray
  normals: np.ndarray | None
  skipped: list[tuple[str, str]]

  def rows_for(self, ids) -> np.ndarray:
    """int[M]: the row of each of `ids` (e.g. a shape embedding's, to align the two).

    Raises:
      ValueError: some ids have no cloud (the message names a few).
    """
    row_of = {str(i): r for r, i in enumerate(self.ids)}
    missing = [str(i) for i in ids if str(i) not in row_of]
    if missing:
      raise ValueError(
          f"{len(missing)} shapes have no point cloud (e.g. {', '.join(missing[:5])}): the clouds were "
          "sampled from another collection"
      )
    return np.array([row_of[str(i)] for i in ids], np.int64)


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, count: int, seed, normals: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
  """`count` points drawn area-uniformly from a triangle mesh's surface.

  Args:
    vertices: float[V, 3].
    faces: int[F, 3].
    count: P.
    seed: anything `np.random.default_rng` takes; the same seed gives the same points.
    normals: also return each sample's face normal.

  Returns:
    (float32[P, 3] points, float32[P, 3] unit normals or None).
  """
  mesh = trimesh.Trimesh(vertices=np.asarray(vertices, np.float64), faces=np.asarray(faces), process=False)
  points, face_index = trimesh.sample.sample_surface(mesh, int(count), seed=np.random.default_rng(seed))
  n = np.asarray(mesh.face_normals[face_index], np.float32) if normals else None
  return np.asarray(points, np.float32), n


def shape_seed(seed: int, shape_id: str) -> np.random.SeedSequence:
  """The seed of one shape's cloud: a function of (config seed, shape id) only."""
  return np.random.SeedSequence([int(seed) % 2**63, zlib.crc32(shape_id.encode("utf-8")), 7331])


def _key(refs: list[record.ShapeRef], up_axis: str, front: str, count: int, seed: int, normals: bool) -> str:
  settings = dict(
      ids=[r.id for r in refs],
      paths=[r.path for r in refs],
      up_axis=up_axis,
      front=front,
      count=int(count),
      seed=int(seed),
      normals=bool(normals),
  )
  return paths.cache_key(settings)


def _sample_chunk(refs, up_axis, front, count, seed, normals) -> dict[str, np.ndarray]:
  report = sources.LoadReport()
  ids, categories, points, normal_rows = [], [], [], []
  for shape in sources.iter_shapes(refs, up_axis, front, report):
    p, n = sample_surface(shape.vertices, shape.faces, count, shape_seed(seed, shape.id), normals)
    ids.append(shape.id)
    categories.append(shape.category)
    points.append(p)
    normal_rows.append(n if normals else np.zeros((0, 3), np.float32))
  empty = np.zeros((0, count, 3), np.float32)
  return dict(
      ids=np.array(ids, dtype=str),
      categories=np.array(categories, dtype=str),
      points=np.stack(points) if points else empty,
      normals=np.stack(normal_rows) if (normals and normal_rows) else empty,
      skipped=np.array([[r.id, why] for r, why in report.skipped], dtype=str).reshape(-1, 2),
  )


def sample_collection(
    refs: list[record.ShapeRef],
    up_axis: str,
    front: str,
    cache_dir: str,
    *,
    count: int,
    seed: int,
    normals: bool = False,
) -> PointClouds:
  """The clouds of `refs`, sampled (or resumed, or reused) in `cache_dir/<key>/`.

  Args:
    refs: the shapes, in the order the rows should have.
    up_axis, front: the source's orientation (as `config.shapes`).
    cache_dir: e.g. `workdir/point_clouds`.
    count: points per shape.
    seed: the config seed.
    normals: also sample the face normals.

  Returns:
    `PointClouds` of the shapes that loaded.
  """
  folder = os.path.join(cache_dir, _key(refs, up_axis, front, count, seed, normals))
  os.makedirs(folder, exist_ok=True)
  chunks = [refs[lo : lo + CHUNK] for lo in range(0, len(refs), CHUNK)]
  paths = [os.path.join(folder, f"chunk_{i:05d}.npz") for i in range(len(chunks))]
  todo = [i for i, path in enumerate(paths) if not os.path.exists(path)]
  with tqdm.tqdm(
      total=len(refs),
      initial=len(refs) - sum(len(chunks[i]) for i in todo),
      desc="point clouds",
      unit="shape",
      disable=not todo,
  ) as bar:
    for i in todo:
      files.save_npz(paths[i], **_sample_chunk(chunks[i], up_axis, front, count, seed, normals))
      bar.update(len(chunks[i]))
  parts = []
  for path in paths:
    with np.load(path) as f:
      parts.append({k: f[k] for k in f.files})
  cat = lambda k: np.concatenate([p[k] for p in parts]) if parts else np.zeros((0,))
  return PointClouds(
      ids=cat("ids"),
      categories=cat("categories"),
      points=np.concatenate([p["points"] for p in parts]).astype(np.float32),
      normals=np.concatenate([p["normals"] for p in parts]) if normals else None,
      skipped=[tuple(s) for p in parts for s in p["skipped"]],
  )


def workdir_clouds(workdir: str, *, count: int, seed: int, normals: bool = False, ids=None) -> PointClouds:
  """The clouds of the shapes `workdir`'s shape side embedded (only `ids`, when given), cached in the workdir.

  Args:
    workdir: a run with a finished shape side (its manifest of the shapes that loaded is the listing).
    count, seed, normals: as `sample_collection` (`config.shape_encoder.points`, `config.seed`, `...normals`).
  """
  refs, up_axis, front = manifest.listed_shapes(workdir, ids)
  return sample_collection(
      refs, up_axis, front, paths.point_clouds(workdir), count=int(count), seed=int(seed), normals=bool(normals)
  )
