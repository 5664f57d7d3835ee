"""A resident shape index: the shapes' points copied to the devices once, then exact nearest neighbours of any number
of query points by one jitted program per block of queries.

`retrieval.top_k(queries, shapes, k)` copies the shapes to the device on every call; for one photo against 10,000
shapes that copy is most of the time (docs/benchmarks.md, "Query"). A `ShapeIndex` pays it once, with the shapes'
squared norms, so a search reads each shape row once per block of queries. The web page, `launch/query.py`, fusion
and the evaluation hold one index per set of points (`embed.TrainedModel.shape_index` for a run's shapes).

Exact, with `retrieval`'s rules: ascending distance, ties by ascending row (the order of a stable argsort), the rows
split over a 1-D ('data',) mesh of all devices from `retrieval.SHARD_MIN_ROWS` rows on (a catalogue of millions of
shapes), with the same answer, bit for bit, as on one device. Any set of points can be indexed (the web page also
indexes its evaluation images).

    index = ShapeIndex(shape_points)               # float32[N, D], copied to the devices here
    dist, rows = index.search(photo_points, k=10)  # float32[Q, 10], int32[Q, 10] numpy
    full = index.distances(photo_points)           # float32[Q, N], like scipy's cdist (for protocols that rank all)
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jembed.api import retrieval
from jembed.embedding import distances as distances_lib

# Pairs recomputed from their differences on the host when the identity may have lost digits: `pairwise_l2`'s rule.
_REFINE_RTOL = 1e-2


@functools.partial(jax.jit, static_argnames=("refine_rtol",))
def _all_distances(queries, points, centre, *, refine_rtol: float):
  """(float32[Q, n_pad] distances, bool[Q, n_pad] pairs to refine) of queries against every placed row, both sides
  centred on `centre` first (the identity keeps more digits near the origin)."""
  q, d = queries - centre, points - centre
  return distances_lib.tile_distances(q, jnp.sum(q * q, axis=1), d, jnp.sum(d * d, axis=1), refine_rtol)


class ShapeIndex:
  """Points held on the devices for exact k-nearest-neighbour search. Thread-safe (searches only read it).

  Attributes:
    points: float32[N, D] the indexed points (the host array given, not a copy when it is float32 numpy already).
    sharded: whether the rows are split over all devices.
  """

  def __init__(self, points: Any, *, sharded: bool | None = None):
    """Copies `points` float[N, D] to the devices.

    Args:
      points: float[N, D] (numpy or jax; cast to float32), N >= 1.
      sharded: split the rows over all devices; None: from `retrieval.SHARD_MIN_ROWS` rows on when there are several.

    Raises:
      ValueError: points not [N, D] with N >= 1.
    """
    self.points = np.asarray(points, np.float32)
    if self.points.ndim != 2 or not len(self.points):
      raise ValueError(f"an index needs points float[N, D] with N >= 1; got shape {self.points.shape}")
    self._placed = retrieval.place(self.points, sharded)
    self.sharded = self._placed.sharded

  @property
  def shape(self) -> tuple[int, int]:
    """(N, D)."""
    return self._placed.shape

  def __len__(self) -> int:
    return self.shape[0]

  def search(
      self, queries: Any, k: int, *, exclude: Any = None, block: int | None = None
  ) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest indexed rows of every query, exactly (`retrieval.top_k`'s answer without the copy).

    Args:
      queries: float[Q, D] (numpy or jax).
      k: neighbours per query, 1 <= k <= N (N − 1 when a query excludes a row).
      exclude: optional int[Q], a row per query never returned (-1: none), e.g. the query itself.
      block: queries per program (see `retrieval.top_k`).

    Returns:
      (float32[Q, k] distances ascending, int32[Q, k] rows), numpy; ties by ascending row.

    Raises:
      ValueError: queries not [Q, D], or k out of range.
    """
    return retrieval.search(self._placed, queries, k, block=block, exclude=exclude)

  @functools.cached_property
  def _centre(self) -> np.ndarray:
    return distances_lib.mean_row(self.points, 4096).astype(np.float32)

  def distances(self, queries: Any) -> np.ndarray:
    """Every query's distance to every indexed row, float32[Q, N], like `scipy.spatial.distance.cdist` in float32:
    `retrieval.pairwise_l2(queries, points)`'s values (both centred on the points' mean, pairs where the identity
    cancels recomputed from their differences: equal points at exactly 0), from the resident rows.

    For the protocols that rank every shape (evaluation, fused rankings); `search` when only the nearest k matter.
    """
    queries = np.asarray(queries, np.float32)
    retrieval.check_shapes(queries, self, None)
    n, out = len(self), np.zeros((len(queries), len(self)), np.float32)
    if not len(queries):
      return out
    size, count = retrieval.query_blocks(len(queries), self._placed.points.shape[0])
    padded = np.zeros((size * count, queries.shape[1]), np.float32)
    padded[: len(queries)] = queries
    starts = range(0, size * count, size)
    # Every block is dispatched before the first is read back (the host refines one while the device computes).
    pending = [
        _all_distances(padded[i : i + size], self._placed.points, self._centre, refine_rtol=_REFINE_RTOL)
        for i in starts
    ]
    for i, (dist, flags) in zip(starts, pending):
      rows = min(size, len(queries) - i)
      tile = np.array(np.asarray(dist)[:rows, :n])
      distances_lib.refine(tile, np.asarray(flags)[:rows, :n], queries, self.points, i, 0, skip_diagonal=False)
      out[i : i + rows] = tile
    return out
