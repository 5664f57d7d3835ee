"""Exact k-NN in the joint space against a float64 numpy brute force (stable argsort) as the oracle.

Tie tests use small integer coordinates: every product and sum is then exact in float32, so equal distances are
exactly equal on both sides and the order among them is the tie-breaking rule alone.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import distance as scipy_distance

from jembed.api import retrieval

from conftest import integer_points
from conftest import knn_reference


@pytest.mark.parametrize("k", [1, 7, 203])
def test_ties_break_by_lower_index(k):
  queries, database = integer_points(29, 6, 0), integer_points(203, 6, 1)
  database[150] = database[3]  # a duplicate row on top of the many equal distances
  want_dist, want_idx = knn_reference(queries, database, k)
  dist, idx = retrieval.top_k(queries, database, k, sharded=False)
  assert dist.dtype == np.float32 and idx.dtype == np.int32 and idx.shape == (29, k)
  np.testing.assert_array_equal(idx, want_idx)
  np.testing.assert_allclose(dist, want_dist, rtol=1e-6)
  if k > 1:
    assert np.sum(want_dist[:, 1:] == want_dist[:, :-1]) > 29  # the case really has ties


def test_random_points_match_brute_force():
  rng = np.random.default_rng(2)
  queries = rng.normal(size=(40, 32)).astype(np.float32)
  database = rng.normal(size=(500, 32)).astype(np.float32)
  database[17] = database[400]
  want_dist, want_idx = knn_reference(queries, database, 10)
  dist, idx = retrieval.top_k(queries, database, 10)
  np.testing.assert_allclose(dist, want_dist, rtol=1e-5, atol=1e-5)
  # Index by index up to float32 near-ties: each returned row really lies at the returned distance.
  full = scipy_distance.cdist(queries.astype(np.float64), database.astype(np.float64))
  np.testing.assert_allclose(np.take_along_axis(full, idx, axis=1), dist, rtol=1e-5, atol=1e-5)
  assert np.mean(idx == want_idx) > 0.99


@pytest.mark.parametrize("k", [1, 10, 120, 203])  # 120 > the 52 rows a device holds
def test_sharded_equals_unsharded_bit_for_bit(k):
  assert jax.device_count() == 4  # tests/conftest.py; 203 rows do not divide by 4
  rng = np.random.default_rng(5)
  cases = {
      "ties": (integer_points(37, 5, 3), integer_points(203, 5, 4)),
      "random": (rng.normal(size=(37, 64)).astype(np.float32), rng.normal(size=(203, 64)).astype(np.float32)),
  }
  for name, (queries, database) in cases.items():
    want = retrieval.top_k(queries, database, k, sharded=False)
    got = retrieval.top_k(queries, database, k, sharded=True)
    np.testing.assert_array_equal(got[1], want[1], err_msg=name)
    np.testing.assert_array_equal(got[0], want[0], err_msg=name)  # the same products: the same bits
  queries, database = cases["ties"]
  np.testing.assert_array_equal(
      retrieval.top_k(queries, database, k, sharded=True)[1], knn_reference(queries, database, k)[1]
  )


def test_sharded_with_several_chunks_per_device(monkeypatch):
  # 5 chunks of 8 rows over 4 devices: the chunk merge on a device and the merge across devices, with ties.
  monkeypatch.setattr(retrieval, "_CHUNK_ROWS", 8)
  queries, database = integer_points(11, 3, 7), integer_points(37, 3, 8)
  want_idx = knn_reference(queries, database, 20)[1]
  for sharded in (False, True):
    np.testing.assert_array_equal(retrieval.top_k(queries, database, 20, sharded=sharded)[1], want_idx)


def test_auto_shards_large_databases_only(monkeypatch):
  calls = []
  sharded_knn = retrieval._sharded_knn  # pylint: disable=protected-access
  monkeypatch.setattr(retrieval, "_sharded_knn", lambda *a, **kw: calls.append(1) or sharded_knn(*a, **kw))
  monkeypatch.setattr(retrieval, "SHARD_MIN_ROWS", 100)
  queries = integer_points(3, 4, 17)
  retrieval.top_k(queries, integer_points(99, 4, 18), 3)
  assert not calls
  retrieval.top_k(queries, integer_points(100, 4, 18), 3)
  assert calls


def test_query_blocks_and_jax_inputs():
  queries, database = integer_points(23, 4, 9), integer_points(60, 4, 10)
  want = retrieval.top_k(queries, database, 5)
  got = retrieval.top_k(jnp.asarray(queries), jnp.asarray(database), 5, block=4)  # 6 blocks, the last one padded
  np.testing.assert_array_equal(got[1], want[1])
  np.testing.assert_array_equal(got[0], want[0])  # integer points: exact whatever the product shapes
  assert isinstance(got[0], np.ndarray)


def test_errors():
  queries, database = np.zeros((3, 8), np.float32), np.zeros((5, 8), np.float32)
  with pytest.raises(ValueError, match="k = 6"):
    retrieval.top_k(queries, database, 6)
  with pytest.raises(ValueError, match="k = 0"):
    retrieval.top_k(queries, database, 0)
  with pytest.raises(ValueError, match=r"\(3, 8\).*\(5, 7\)"):
    retrieval.top_k(queries, np.zeros((5, 7), np.float32), 2)
  with pytest.raises(ValueError, match=r"\(8,\)"):
    retrieval.top_k(np.zeros(8, np.float32), database, 2)
  with pytest.raises(ValueError, match="excluding"):
    retrieval.image_to_image(database, 5, exclude_self=True)
  assert retrieval.top_k(np.zeros((0, 8), np.float32), database, 2)[1].shape == (0, 2)


def test_exclude_self_never_returns_the_query():
  points = integer_points(40, 6, 11)
  points[7] = points[2]  # a duplicate: distance 0 to row 2, tied with row 2's own distance
  dist, idx = retrieval.image_to_image(points, 39, exclude_self=True)
  assert not np.any(idx == np.arange(40)[:, None])
  assert idx[2, 0] == 7 and idx[7, 0] == 2 and dist[2, 0] == 0.0
  full = scipy_distance.cdist(points, points)
  np.fill_diagonal(full, np.inf)
  np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :39])
  with_self = retrieval.image_to_image(points, 2)[1]
  np.testing.assert_array_equal(with_self, knn_reference(points, points, 2)[1])
  assert with_self[7, 0] == 2  # row 7 ties with row 2 at distance 0: the lower index first, itself second


def test_directions_are_thin_wrappers():
  images, shapes = integer_points(9, 4, 12), integer_points(30, 4, 13)
  np.testing.assert_array_equal(retrieval.image_to_shape(images, shapes, 3)[1], knn_reference(images, shapes, 3)[1])
  np.testing.assert_array_equal(retrieval.shape_to_image(shapes, images, 3)[1], knn_reference(shapes, images, 3)[1])


def test_knn_jits_inside_user_code():
  queries, database = integer_points(6, 4, 14), integer_points(50, 4, 15)

  @jax.jit
  def user_fn(q, d):
    dist, idx = retrieval.knn(q * 1.0, d, 4)
    return dist.sum(axis=1), idx

  total, idx = user_fn(queries, database)
  want_dist, want_idx = knn_reference(queries, database, 4)
  np.testing.assert_array_equal(np.asarray(idx), want_idx)
  np.testing.assert_allclose(np.asarray(total), want_dist.sum(axis=1), rtol=1e-6)
  vmapped = jax.vmap(lambda q: retrieval.knn(q[None], database, 4)[1][0])(queries)  # one query at a time
  np.testing.assert_array_equal(np.asarray(vmapped), want_idx)
  chunked = retrieval.knn(queries, database, 4, chunk=16)  # 4 chunks, the last one padded
  np.testing.assert_array_equal(np.asarray(chunked[1]), want_idx)


def test_pairwise_l2_matches_cdist():
  rng = np.random.default_rng(16)
  a, b = rng.normal(size=(37, 20)).astype(np.float32), rng.normal(size=(53, 20)).astype(np.float32)
  want = scipy_distance.cdist(a.astype(np.float64), b.astype(np.float64))
  for block in (None, 8):
    got = retrieval.pairwise_l2(a, b, block=block)
    assert got.dtype == np.float32 and got.shape == (37, 53)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_pairwise_l2_of_one_array_has_a_zero_diagonal():
  x = 50.0 + np.random.default_rng(17).normal(size=(30, 16)).astype(np.float32)  # far from 0: the identity rounds
  got = retrieval.pairwise_l2(x, x)
  np.testing.assert_array_equal(np.diag(got), 0.0)
  np.testing.assert_allclose(got, scipy_distance.cdist(x.astype(np.float64), x.astype(np.float64)), rtol=1e-3)
