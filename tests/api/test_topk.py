"""The bfloat16 screen of exact k-NN (`jembed.api.screen`, its fallback in `jembed.api.topk`) against float64 brute
force (scipy's cdist, a stable argsort).

The screen is on for chunks of at least `screen.MIN_ROWS` rows and more than `_BATCHED_QUERIES` queries; these tests
lower the threshold so that small databases take it, and check the three things it rests on: its bounds hold for
every pair, its fast path returns the exact top k, and where the bounds cannot decide (ties, duplicates) its fallback
does.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import distance as scipy_distance

from jembed.api import index as index_lib
from jembed.api import placed
from jembed.api import retrieval
from jembed.api import screen
from jembed.api import topk

from conftest import integer_points
from conftest import knn_reference


@pytest.fixture
def screen_small(monkeypatch):
  """Every chunk of at least 256 rows screened (blocks of 4 rows, 6 blocks kept beyond k), whatever the CPU (the
  screen is exact everywhere; it is only fast with bfloat16 hardware)."""
  monkeypatch.setattr(screen, "bf16_products_are_fast", lambda platform: True)
  monkeypatch.setattr(screen, "MIN_ROWS", 256)
  monkeypatch.setattr(screen, "BLOCK", 4)
  monkeypatch.setattr(screen, "MARGIN", 6)


@pytest.mark.parametrize("offset, scale", [(0.0, 1.0), (40.0, 1.0), (0.0, 1e-3), (5.0, 300.0)])
def test_bounds_hold_for_every_pair(offset, scale):
  """lower <= the float32 difference-form distance, and the float64 distance, <= upper, for all pairs: the bound is
  what makes the screen exact, so it is checked against both."""
  rng = np.random.default_rng(0)
  points = (offset + scale * rng.normal(size=(700, 48))).astype(np.float32)
  queries = (offset + scale * rng.normal(size=(9, 48))).astype(np.float32)
  queries[3] = points[5]  # an equal point: distance exactly 0
  centre = jnp.asarray(points.mean(axis=0))
  rows = placed.rows_of(jnp.asarray(points), 700, centre)
  centred = jnp.asarray(queries) - centre
  terms = screen.screen_terms(centred)
  dots = jnp.einsum("qd,rd->qr", centred.astype(jnp.bfloat16), placed.low_of(rows), preferred_element_type=jnp.float32)
  lower = np.asarray(screen.bound(dots, *terms, rows.csq, rows.norm, rows.err))
  q_sq, a, b, c = (np.asarray(t) for t in terms)
  upper = lower + 2.0 * (a * np.asarray(rows.norm) + b * np.asarray(rows.err) + c * (q_sq + np.asarray(rows.csq)))
  exact64 = scipy_distance.cdist(queries.astype(np.float64), points.astype(np.float64), "sqeuclidean")
  diff32 = np.sum(np.square(queries[:, None, :] - points[None]), axis=2, dtype=np.float32)
  for value in (exact64, diff32):
    assert np.all(lower <= value) and np.all(value <= upper)
  assert np.median((upper - lower) / np.maximum(exact64, 1e-30)) < 0.05  # and tight enough to screen


def test_fast_path_is_sure_on_random_points_and_not_on_ties():
  """Random points: the screen alone decides the top k of nearly every query; integer points, where most distances
  tie: of most it cannot, and says so. Every query it is sure of is right."""
  rng = np.random.default_rng(6)
  cases = {
      "random": (rng.normal(size=(64, 32)), 3.0 + rng.normal(size=(4096, 32))),
      "ties": (integer_points(64, 4, 7), integer_points(4096, 4, 8)),
  }
  for name, (queries, points) in cases.items():
    queries, points = queries.astype(np.float32), points.astype(np.float32)
    centre = jnp.asarray(points.mean(axis=0))
    rows = placed.rows_of(jnp.asarray(points), 4096, centre)
    values, pos, sure = jax.jit(screen.screen_chunk, static_argnums=6)(
        queries, jnp.asarray(queries) - centre, rows, rows.points, 0, placed.Keep(jnp.ones(4096, bool), None), 10
    )
    sure = np.asarray(sure)
    want_dist, want_rows = knn_reference(queries, points, 10)
    np.testing.assert_array_equal(np.asarray(pos)[sure], want_rows[sure])
    np.testing.assert_allclose(np.sqrt(-np.asarray(values))[sure], want_dist[sure], rtol=1e-6)
    if name == "random":
      assert sure.mean() >= 0.9
    else:
      assert sure.mean() < 0.5


@pytest.mark.parametrize("k", [1, 5, 10])
def test_screened_search_equals_brute_force(screen_small, k):  # pylint: disable=unused-argument,redefined-outer-name
  rng = np.random.default_rng(1)
  points = rng.normal(size=(2500, 32)).astype(np.float32)
  queries = rng.normal(size=(40, 32)).astype(np.float32)
  queries[7] = points[1234]
  index = index_lib.ShapeIndex(points, sharded=False)
  assert screen.screened(index._placed.chunk, k)  # pylint: disable=protected-access
  dist, rows = index.search(queries, k)
  want_dist, want_rows = knn_reference(queries, points, k)
  np.testing.assert_array_equal(rows, want_rows)
  np.testing.assert_allclose(dist, want_dist, rtol=1e-6, atol=1e-6)
  assert rows[7, 0] == 1234 and dist[7, 0] == 0.0  # the difference form: an equal point at exactly 0


def test_screened_search_excludes_rows(screen_small):  # pylint: disable=unused-argument,redefined-outer-name
  """Each query excluded from its own result on the screened path (its row at distance 0 would come first)."""
  rng = np.random.default_rng(2)
  points = rng.normal(size=(2500, 32)).astype(np.float32)
  index = index_lib.ShapeIndex(points, sharded=False)
  assert screen.screened(index._placed.chunk, 5)  # pylint: disable=protected-access
  dist, rows = index.search(points[:40], 5, exclude=np.arange(40))
  want_dist, want_rows = knn_reference(points[:40], points, 5, exclude=np.arange(40))
  np.testing.assert_array_equal(rows, want_rows)
  np.testing.assert_allclose(dist, want_dist, rtol=1e-6)


def test_a_few_unsure_queries_are_redone_alone(monkeypatch, screen_small):  # pylint: disable=unused-argument,redefined-outer-name
  """Two queries among 40 sit in a crowd of equal distances, where the screen cannot decide: they take the float32
  product alone (no chunk leaves more than `topk.UNSURE_QUERIES` = 4), and every answer is the brute force's."""
  monkeypatch.setattr(topk, "UNSURE_QUERIES", 4)
  rng = np.random.default_rng(3)
  points = rng.normal(size=(2500, 32)).astype(np.float32)
  points[1000:1040] = points[5]  # 41 equal rows
  queries = rng.normal(size=(40, 32)).astype(np.float32)
  queries[[3, 17]] = points[5] + 1e-3
  index = index_lib.ShapeIndex(points, sharded=False)
  database = index._placed  # pylint: disable=protected-access
  chunk = database.chunk
  assert screen.screened(chunk, 6)
  screen_fn = jax.jit(screen.screen_chunk, static_argnums=6)
  unsure = []
  for start in range(0, database.points.shape[0], chunk):
    part = placed.Rows(*(field[start : start + chunk] for field in database.rows))
    keep = topk._keep(chunk, None, start, len(points))  # pylint: disable=protected-access
    _, _, sure = screen_fn(queries, jnp.asarray(queries) - database.centre, part, database.points, start, keep, 6)
    unsure.append(set(np.flatnonzero(~np.asarray(sure))))
  # The crowd's chunk (rows 1000-1040) cannot decide those two; no chunk leaves more than 4 to redo.
  assert {3, 17} <= unsure[1000 // chunk] and max(map(len, unsure)) <= 4
  dist, rows = index.search(queries, 6)
  want_dist, want_rows = knn_reference(queries, points, 6)
  np.testing.assert_array_equal(rows, want_rows)
  np.testing.assert_allclose(dist, want_dist, rtol=1e-5, atol=1e-6)


def test_crowded_data_turns_the_screen_off(screen_small):  # pylint: disable=unused-argument,redefined-outer-name
  """Tight clusters: the bound cannot separate most queries' k-th neighbour from the next, so the first batch leaves
  most of them to the float32 product, and the index stops screening; both answers are the brute force's."""
  rng = np.random.default_rng(4)
  centres = rng.normal(size=(50, 32))
  points = (centres[rng.integers(0, 50, 2500)] + 0.05 * rng.normal(size=(2500, 32))).astype(np.float32)
  queries = (centres[rng.integers(0, 50, 40)] + 0.05 * rng.normal(size=(40, 32))).astype(np.float32)
  index = index_lib.ShapeIndex(points, sharded=False)
  memo = index._placed.memo  # pylint: disable=protected-access
  assert screen.screened(index._placed.chunk, 5) and memo.on  # pylint: disable=protected-access
  for query in queries[:10]:  # one query is never screened: it tells the memo nothing
    index.search(query[None], 5)
  assert memo.on and memo.checks_left == retrieval._SCREEN_CHECKS  # pylint: disable=protected-access
  want_dist, want_rows = knn_reference(queries, points, 5)
  dist, rows = index.search(queries, 5)  # screened; the unsure queries re-measured by their differences
  assert not memo.on
  np.testing.assert_array_equal(rows, want_rows)
  np.testing.assert_allclose(dist, want_dist, rtol=1e-6)
  dist, rows = index.search(queries, 5)  # the float32 product alone, by the identity |q|^2 + |p|^2 - 2 q.p
  np.testing.assert_array_equal(rows, want_rows)
  norms = np.sum(queries**2, axis=1)[:, None] + np.sum(points**2, axis=1)[rows]
  assert np.all(np.abs(dist**2 - want_dist**2) <= 34 * 2.0**-24 * norms)  # (D + 2) eps (|q|^2 + |p|^2)
  assert not memo.on
  random_index = index_lib.ShapeIndex(rng.normal(size=(2500, 32)).astype(np.float32), sharded=False)
  random_index.search(rng.normal(size=(40, 32)).astype(np.float32), 5)
  assert random_index._placed.memo.on  # pylint: disable=protected-access


@pytest.mark.parametrize("k", [1, 4, 9])
def test_ties_and_duplicates_fall_back_exactly(screen_small, k):  # pylint: disable=unused-argument,redefined-outer-name
  """Integer points: most distances tie, so the bounds cannot separate the k-th row from the rest and chunks fall
  back; the order is still the stable argsort's."""
  queries, points = integer_points(37, 4, 2), integer_points(1500, 4, 3)
  points[900:960] = points[11]  # a group of 61 duplicates, more than the margin
  index = index_lib.ShapeIndex(points, sharded=False)
  assert screen.screened(index._placed.chunk, k)  # pylint: disable=protected-access
  dist, rows = index.search(queries, k)
  want_dist, want_rows = knn_reference(queries, points, k)
  np.testing.assert_array_equal(rows, want_rows)
  np.testing.assert_allclose(dist, want_dist, rtol=1e-6)
  dist, rows = index.search(points[:20], k + 1, exclude=np.arange(20))
  np.testing.assert_array_equal(rows, knn_reference(points[:20], points, k + 1, exclude=np.arange(20))[1])


def test_screened_sharded_equals_one_device_bit_for_bit(monkeypatch, screen_small):  # pylint: disable=unused-argument,redefined-outer-name
  assert jax.device_count() == 4  # tests/conftest.py
  monkeypatch.setattr(retrieval, "_CHUNK_ROWS", 512)  # 8 chunks of 504 rows, 2 a device
  rng = np.random.default_rng(3)
  points = rng.normal(size=(4001, 24)).astype(np.float32)
  queries = rng.normal(size=(13, 24)).astype(np.float32)
  one = index_lib.ShapeIndex(points, sharded=False)
  many = index_lib.ShapeIndex(points, sharded=True)
  assert screen.screened(one._placed.chunk, 7)  # pylint: disable=protected-access
  for k in (1, 7, 30):
    want, got = one.search(queries, k), many.search(queries, k)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
  np.testing.assert_array_equal(many.search(queries, 7)[1], knn_reference(queries, points, 7)[1])


def test_knn_inside_user_jit_takes_the_screen(screen_small):  # pylint: disable=unused-argument,redefined-outer-name
  rng = np.random.default_rng(4)
  database = jnp.asarray(rng.normal(size=(1024, 16)).astype(np.float32))
  queries = jnp.asarray(rng.normal(size=(8, 16)).astype(np.float32))
  assert screen.screened(1024, 3)
  dist, idx = jax.jit(lambda q: retrieval.knn(q, database, 3))(queries)
  want_dist, want_idx = knn_reference(np.asarray(queries), np.asarray(database), 3)
  np.testing.assert_array_equal(np.asarray(idx), want_idx)
  np.testing.assert_allclose(np.asarray(dist), want_dist, rtol=1e-6)
