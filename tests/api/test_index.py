"""The resident shape index against float64 numpy brute force (stable argsort, scipy's cdist) as the oracle.

Tie tests use small integer coordinates, so every product and sum is exact in float32: equal distances are exactly
equal on both sides and the order among them is the tie-breaking rule alone.
"""

import jax
import numpy as np
import pytest
from scipy.spatial import distance as scipy_distance

from jembed.api import index as index_lib
from jembed.api import retrieval
from jembed.api import topk

from conftest import integer_points
from conftest import knn_reference


@pytest.fixture
def small_blocks(monkeypatch):
  """Chunks of at most 128 rows and prefilter blocks of 4 entries, so small databases take every path: several
  chunks per device, the block prefilter of `topk.select` (a chunk of c rows uses it for k <= c / 16) and the
  merges."""
  monkeypatch.setattr(retrieval, "_CHUNK_ROWS", 128)
  monkeypatch.setattr(topk, "SELECT_BLOCK", 4)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_select_prefilter_equals_top_k(monkeypatch, k):
  monkeypatch.setattr(topk, "SELECT_BLOCK", 4)
  rng = np.random.default_rng(0)
  values = rng.integers(-3, 3, (7, 96)).astype(np.float32)  # 24 blocks of 4, many equal values
  values[2, 40:] = -np.inf  # excluded entries, as padding rows get
  got = jax.jit(topk.select, static_argnums=1)(values, k)  # pylint: disable=protected-access
  order = np.argsort(-values, axis=1, kind="stable")[:, :k]  # largest first, ties by lower position
  np.testing.assert_array_equal(np.asarray(got[1]), order)
  np.testing.assert_array_equal(np.asarray(got[0]), np.take_along_axis(values, order, axis=1))


@pytest.mark.parametrize("k", [1, 4, 10])
def test_search_breaks_ties_by_lower_row(small_blocks, k):  # pylint: disable=unused-argument,redefined-outer-name
  queries, points = integer_points(21, 3, 0), integer_points(700, 3, 1)  # 125 distinct points: ties everywhere
  assert retrieval._chunk_rows(700) == 88  # pylint: disable=protected-access  (8 chunks; k = 1, 4 prefiltered)
  index = index_lib.ShapeIndex(points, sharded=False)
  dist, rows = index.search(queries, k)
  want_dist, want_rows = knn_reference(queries, points, k)
  np.testing.assert_array_equal(rows, want_rows)
  np.testing.assert_allclose(dist, want_dist, rtol=1e-6)
  assert dist.dtype == np.float32 and rows.dtype == np.int32


@pytest.mark.parametrize("n_queries", [1, 3, 13])  # up to 4 queries one batched product, then a loop over chunks
def test_sharded_index_equals_one_device_bit_for_bit(small_blocks, n_queries):  # pylint: disable=unused-argument,redefined-outer-name
  assert jax.device_count() == 4  # tests/conftest.py
  assert retrieval._chunk_rows(1001) == 128  # pylint: disable=protected-access  (2 chunks a device; k = 1, 7 prefiltered)
  rng = np.random.default_rng(2)
  for queries, points in (
      (integer_points(n_queries, 3, 3), integer_points(1001, 3, 4)),  # 1001 rows padded to 1024
      (rng.normal(size=(n_queries, 32)).astype(np.float32), rng.normal(size=(1001, 32)).astype(np.float32)),
  ):
    one = index_lib.ShapeIndex(points, sharded=False)
    many = index_lib.ShapeIndex(points, sharded=True)
    assert many.sharded and not one.sharded
    for k in (1, 7, 100):
      want, got = one.search(queries, k), many.search(queries, k)
      np.testing.assert_array_equal(got[1], want[1])
      np.testing.assert_array_equal(got[0], want[0])
  queries, points = integer_points(n_queries, 3, 3), integer_points(1001, 3, 4)
  np.testing.assert_array_equal(
      index_lib.ShapeIndex(points, sharded=True).search(queries, 9)[1], knn_reference(queries, points, 9)[1]
  )


def test_random_points_and_repeated_searches_match_brute_force():
  rng = np.random.default_rng(5)
  points = rng.normal(size=(3000, 64)).astype(np.float32)
  index = index_lib.ShapeIndex(points)
  for q in (1, 3, 64, 65):  # several batch sizes against the same resident points
    queries = rng.normal(size=(q, 64)).astype(np.float32)
    dist, rows = index.search(queries, 10)
    want_dist, want_rows = knn_reference(queries, points, 10)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-5, atol=1e-5)
    assert np.mean(rows == want_rows) > 0.99  # float32 near-ties may swap
    exact = scipy_distance.cdist(queries.astype(np.float64), points.astype(np.float64))
    np.testing.assert_allclose(np.take_along_axis(exact, rows, axis=1), dist, rtol=1e-5, atol=1e-5)


def test_one_query_alone_equals_it_in_a_batch():
  queries, points = integer_points(5, 4, 6), integer_points(300, 4, 7)
  index = index_lib.ShapeIndex(points)
  batch = index.search(queries, 6)
  for i in range(5):
    alone = index.search(queries[i : i + 1], 6)
    np.testing.assert_array_equal(alone[1][0], batch[1][i])
    np.testing.assert_array_equal(alone[0][0], batch[0][i])


def test_exclude_leaves_the_row_out():
  points = integer_points(50, 3, 8)
  points[9] = points[4]
  index = index_lib.ShapeIndex(points)
  dist, rows = index.search(points, 49, exclude=np.arange(50))
  assert not np.any(rows == np.arange(50)[:, None])
  assert rows[4, 0] == 9 and dist[4, 0] == 0.0
  np.testing.assert_array_equal(rows, knn_reference(points, points, 49, exclude=np.arange(50))[1])


def test_query_blocks_round_up_one_block():
  assert retrieval.query_blocks(1, 100) == (1, 1)
  assert retrieval.query_blocks(3, 100) == (4, 1)
  assert retrieval.query_blocks(33, 100) == (64, 1)
  assert retrieval.query_blocks(65, 100) == (128, 1)
  assert retrieval.query_blocks(23, 100, block=4) == (4, 6)  # several blocks: equal sizes, not rounded


def test_distances_match_cdist_and_pairwise_l2():
  rng = np.random.default_rng(9)
  points = 30.0 + rng.normal(size=(200, 16)).astype(np.float32)  # far from the origin: centring matters
  queries = np.concatenate([30.0 + rng.normal(size=(20, 16)), points[[3, 150]]]).astype(np.float32)
  for sharded in (False, True):
    got = index_lib.ShapeIndex(points, sharded=sharded).distances(queries)
    want = scipy_distance.cdist(queries.astype(np.float64), points.astype(np.float64))
    assert got.dtype == np.float32 and got.shape == (22, 200)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got[20, 3] == 0.0 and got[21, 150] == 0.0  # equal points exactly 0 (recomputed from differences)
    np.testing.assert_allclose(got, retrieval.pairwise_l2(queries, points), rtol=1e-5)
  assert index_lib.ShapeIndex(points).distances(np.zeros((0, 16), np.float32)).shape == (0, 200)


def test_errors():
  index = index_lib.ShapeIndex(np.zeros((5, 8), np.float32))
  assert index.shape == (5, 8) and len(index) == 5
  with pytest.raises(ValueError, match="k = 6"):
    index.search(np.zeros((2, 8), np.float32), 6)
  with pytest.raises(ValueError, match=r"\(2, 7\).*\(5, 8\)"):
    index.search(np.zeros((2, 7), np.float32), 2)
  with pytest.raises(ValueError, match=r"\(2, 7\).*\(5, 8\)"):
    index.distances(np.zeros((2, 7), np.float32))
  with pytest.raises(ValueError, match="N >= 1"):
    index_lib.ShapeIndex(np.zeros((0, 8), np.float32))
  assert index.search(np.zeros((0, 8), np.float32), 2)[1].shape == (0, 2)
