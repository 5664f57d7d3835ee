"""Several photos of one object -> one ranking of shapes (text -> shape through images, the seed's slides).

The seed answered a text query by running a web image search and querying the joint space with its results; those
photos all show (roughly) one kind of object, so their evidence is pooled into one ranking. Three ways to pool M
photos' points p_1..p_M against N shape points s_n, each a fused distance (lower = better):

  * `points`:    ‖mean_i p_i − s_n‖, the shape nearest to the photos' centroid;
  * `distances`: mean_i ‖p_i − s_n‖, the mean distance;
  * `ranks`:     mean_i rank_i(s_n), Borda's rank fusion (1-based ranks, ties by the lower index as everywhere).

`evaluate.py` measures them by fusing the test images of each shape;
`DEFAULT` is the best there (see docs/evaluation.md, "Fused queries").
"""

from typing import Any

import numpy as np

from jembed.api import index

FUSIONS = ("points", "distances", "ranks")
DEFAULT = "points"


def _ranks(distances: np.ndarray) -> np.ndarray:
  """float[M, N] -> float64[M, N] 1-based rank of every candidate in each row (stable order)."""
  order = np.argsort(distances, axis=1, kind="stable")
  ranks = np.empty(distances.shape, np.float64)
  np.put_along_axis(ranks, order, np.arange(1, distances.shape[1] + 1, dtype=np.float64)[None], axis=1)
  return ranks


def _index(shapes: Any) -> index.ShapeIndex:
  return shapes if isinstance(shapes, index.ShapeIndex) else index.ShapeIndex(shapes)


def fused_distances(points: np.ndarray, shapes: Any, method: str = DEFAULT) -> np.ndarray:
  """One object's M photos -> float32[N] fused distances to the N shapes (lower = better; 'ranks' gives mean
  ranks, not L2 distances). With one photo every method ranks the shapes as that photo alone does.

  Args:
    points: float32[M, D] the photos' embedding points, M >= 1.
    shapes: the shapes' `index.ShapeIndex` (e.g. `TrainedModel.shape_index`), or their points float32[N, D].
    method: one of `FUSIONS`.
  """
  points = np.asarray(points, np.float32)
  if points.ndim != 2 or not len(points):
    raise ValueError(f"points must be [M, D] with M >= 1, got shape {points.shape}")
  return fused_groups(points, np.zeros(len(points), np.int64), shapes, method)[1][0]


def fused_groups(
    points: np.ndarray, groups: np.ndarray, shapes: Any, method: str = DEFAULT
) -> tuple[np.ndarray, np.ndarray]:
  """Fuses the photos of each group (e.g. each shape's test images) into one ranking per group.

  Args:
    points: float32[Q, D].
    groups: int[Q] group label per photo.
    shapes: the shapes' `index.ShapeIndex`, or their points float32[N, D].
    method: one of `FUSIONS`.

  Returns:
    (int[G] the sorted group labels, float32[G, N] each group's fused distances).
  """
  if method not in FUSIONS:
    raise ValueError(f"unknown fusion {method!r}; expected one of {FUSIONS}")
  points = np.asarray(points, np.float32)
  labels, member = np.unique(np.asarray(groups), return_inverse=True)
  one_hot = np.zeros((len(labels), len(points)), np.float64)
  one_hot[member, np.arange(len(points))] = 1.0
  mean = one_hot / one_hot.sum(axis=1, keepdims=True)  # [G, Q]: row g averages group g's photos
  shapes = _index(shapes)
  if method == "points":
    return labels, shapes.distances((mean @ points).astype(np.float32))
  distances = shapes.distances(points)
  per_photo = distances if method == "distances" else _ranks(distances)
  return labels, (mean @ per_photo).astype(np.float32)
