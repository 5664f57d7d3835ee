"""Sammon mapping, classical MDS and out-of-sample placement, against scipy/sklearn oracles and known configurations."""

import jax
import numpy as np
import pytest
from scipy.spatial import distance as scipy_distance
from scipy.spatial import procrustes
from sklearn.manifold import MDS

from jembed.embedding import lbfgs
from jembed.embedding import out_of_sample
from jembed.embedding import sammon
from jembed.embedding import sammon_kernel


def _dist(x: np.ndarray) -> np.ndarray:
  return scipy_distance.squareform(scipy_distance.pdist(np.asarray(x, np.float64))).astype(np.float32)


def _clusters(n: int, d: int, k: int, seed: int = 0, spread: float = 0.3) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return rng.standard_normal((k, d))[rng.integers(0, k, n)] + spread * rng.standard_normal((n, d))


def _brute_stress(dist: np.ndarray, points: np.ndarray) -> float:
  iu = np.triu_indices(len(dist), 1)
  target, got = dist[iu].astype(np.float64), scipy_distance.pdist(np.asarray(points, np.float64))
  keep = target > 0
  return float(np.sum((target[keep] - got[keep]) ** 2 / target[keep]) / target.sum())


def test_sammon_stress_matches_brute_force():
  x = _clusters(60, 5, 3)
  points = np.random.default_rng(1).standard_normal((60, 2))
  assert sammon.sammon_stress(_dist(x), points, block=16) == pytest.approx(_brute_stress(_dist(x), points), rel=1e-9)


def test_recovers_known_2d_configuration_from_a_random_start():
  truth = np.random.default_rng(0).uniform(-1, 1, (40, 2))
  dist = _dist(truth)
  init = truth + 0.3 * np.random.default_rng(1).standard_normal(truth.shape)  # far from the answer, same basin
  result = sammon.sammon(dist, 2, init=init, tol=0.0, tol_x=0.0)
  _, _, disparity = procrustes(truth, result.points)
  assert disparity < 1e-8
  assert result.stress < 1e-8
  assert result.stress == pytest.approx(_brute_stress(dist, result.points), abs=1e-9)


def test_classical_mds_recovers_euclidean_configurations():
  small = np.random.default_rng(2).standard_normal((60, 3)) * [3.0, 2.0, 1.0]
  assert procrustes(small, sammon.classical_mds(_dist(small), 3))[2] < 1e-10
  # Above 1500 points the randomized subspace iteration runs on the (4 forced CPU) devices.
  large = np.random.default_rng(3).standard_normal((1600, 3)) * [3.0, 2.0, 1.0]
  y = sammon.classical_mds(_dist(large), 5, sharded=True)
  assert y.shape == (1600, 5)
  assert procrustes(large, y[:, :3])[2] < 1e-8
  assert np.abs(y[:, 3:]).max() < 1e-2 * np.abs(y[:, :3]).max()  # rank 3: nothing left for the other columns
  # By default on one device (CPU devices share the cores): the same configuration.
  assert procrustes(large, sammon.classical_mds(_dist(large), 5)[:, :3])[2] < 1e-8


def test_reaches_sklearn_smacof_stress_or_lower():
  dist = _dist(_clusters(120, 12, 5, spread=0.5))
  ours = sammon.sammon(dist, 2)
  mds = MDS(n_components=2, metric="precomputed", init="classical_mds", random_state=0)
  theirs = sammon.sammon_stress(dist, mds.fit_transform(dist.astype(np.float64)))
  assert sammon.sammon_stress(dist, ours.points) <= theirs
  assert ours.stress == pytest.approx(sammon.sammon_stress(dist, ours.points), rel=1e-4)


def test_sharded_equals_unsharded():
  assert jax.device_count() == 4
  dist = _dist(_clusters(50, 6, 3))
  kwargs = dict(dim=2, max_iter=20, tol=0.0, tol_x=0.0)
  sharded = sammon.sammon(dist, sharded=True, **kwargs)
  single = sammon.sammon(dist, sharded=False, **kwargs)
  assert sharded.n_iter == single.n_iter == 20
  np.testing.assert_allclose(sharded.points, single.points, atol=1e-4 * np.abs(single.points).max())
  assert sharded.stress == pytest.approx(single.stress, rel=1e-4)


def test_symmetric_kernel_equals_brute_force():
  # 3 blocks of 20 rows, the last 5 rows padding (zero distances); a duplicate pair (d* = 0) across two blocks.
  x = _clusters(55, 6, 3)
  x[40] = x[3]
  dist = np.pad(_dist(x), ((0, 5), (0, 5)))
  y = np.pad(np.random.default_rng(4).standard_normal((55, 3)), ((0, 5), (0, 0))).astype(np.float32)
  y[40] = y[3]
  mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
  d_rows = jax.device_put(dist, jax.NamedSharding(mesh, jax.P("data", None)))  # as sammon's D* is placed
  e, g = jax.jit(sammon_kernel.symmetric_stress_kernel(mesh, 3))(d_rows, y, np.float32(1e-4))
  target, got = dist.astype(np.float64), _dist(y).astype(np.float64)
  w = np.divide(1.0, target, where=target > 0, out=np.zeros_like(target))
  assert float(e) == pytest.approx(np.sum(w * (target - got) ** 2), rel=1e-5)
  coeff = w - np.divide(1.0, np.maximum(got, 1e-4), where=w > 0, out=np.zeros_like(got))
  want = coeff.sum(axis=1)[:, None] * y - coeff @ y
  np.testing.assert_allclose(g, want, atol=1e-5 * np.abs(want).max())


def test_one_device_by_default_on_cpu_and_symmetric_blocks_equal_the_sharded_rows():
  assert not sammon_kernel.use_sharding(None)  # the 4 forced CPU devices share the same cores
  assert sammon_kernel.use_sharding(True) and not sammon_kernel.use_sharding(False)
  dist = _dist(_clusters(600, 6, 3))  # above 512 rows: 5 symmetric blocks of 120 on one device
  assert sammon._layout(600, 1, symmetric=True) == sammon._Layout(600, 600, 120, 5)  # pylint: disable=protected-access
  # The two kernels on the same points: the symmetric blocks on one device, the row blocks sharded over 4.
  y = np.random.default_rng(5).standard_normal((600, 2)).astype(np.float32)
  one_device, four = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1]), jax.make_mesh((4,), ("data",))
  out = {}
  for name, mesh, kernel in [
      ("blocks", one_device, sammon_kernel.symmetric_stress_kernel(one_device, 5)),
      ("rows", four, sammon_kernel.stress_kernel(four, 30)),
  ]:
    d_rows = jax.device_put(dist, jax.NamedSharding(mesh, jax.P("data", None)))
    out[name] = jax.jit(kernel)(d_rows, jax.device_put(y, jax.NamedSharding(mesh, jax.P())), np.float32(1e-4))
  assert float(out["blocks"][0]) == pytest.approx(float(out["rows"][0]), rel=1e-6)
  np.testing.assert_allclose(out["blocks"][1], out["rows"][1], atol=1e-5 * np.abs(out["rows"][1]).max())
  # Whole solves: L-BFGS amplifies the kernels' different rounding in the points, not in the stress they reach.
  kwargs = dict(dim=2, max_iter=10, tol=0.0, tol_x=0.0)
  one, rows = sammon.sammon(dist, **kwargs), sammon.sammon(dist, sharded=True, **kwargs)
  assert one.n_iter == rows.n_iter == 10
  assert one.stress == pytest.approx(rows.stress, rel=1e-4)


def test_exact_duplicates_give_no_nan_and_share_a_point():
  x = _clusters(40, 5, 3)
  x = np.concatenate([x, x[[3, 3, 7]]])  # rows 40 and 41 duplicate row 3, row 42 duplicates row 7
  dist = _dist(x)
  result = sammon.sammon(dist, 2)
  assert np.all(np.isfinite(result.points)) and np.isfinite(result.stress)
  np.testing.assert_array_equal(result.points[40], result.points[3])
  np.testing.assert_array_equal(result.points[41], result.points[3])
  np.testing.assert_array_equal(result.points[42], result.points[7])
  # Zero pairs weigh nothing, so the result is as good as on the de-duplicated set (stress differs only by weighting).
  unique = sammon.sammon(dist[:40, :40], 2)
  assert sammon.sammon_stress(dist[:40, :40], result.points[:40]) < 1.05 * unique.stress


def test_stopping_rule():
  dist = _dist(_clusters(80, 8, 4))
  early = sammon.sammon(dist, 2, tol=1e-2, max_iter=200, stop="change")
  assert early.stopped == "relative change in criterion less than TolFun"
  curve = early.stress_curve
  assert curve.shape == (201,) and 0 < early.n_iter < 200
  assert np.all(np.isfinite(curve[: early.n_iter + 1])) and np.all(np.isnan(curve[early.n_iter + 1 :]))
  change = (curve[:-1] - curve[1:])[: early.n_iter] / curve[1 : early.n_iter + 1]
  assert change[-1] <= 1e-2 and np.all(change[:-1] > 1e-2)  # stopped at the first small relative change
  assert np.all(np.diff(curve[: early.n_iter + 1]) <= 0)
  capped = sammon.sammon(dist, 2, tol=0.0, tol_x=0.0, max_iter=5)
  assert capped.n_iter == 5 and capped.stress_curve.shape == (6,) and np.all(np.isfinite(capped.stress_curve))
  assert capped.stopped == "iteration limit (MaxIter)"


def test_mdscale_stops_when_the_criterion_falls_below_tolfun():
  """MATLAB's mdscale tests the stress itself against TolFun first: the solve stops at the first iteration below it,
  which the 'change' rule runs past."""
  dist = _dist(_clusters(200, 24, 5, spread=0.5))  # 24-D clusters in 8-D: a stress of ~1e-3 is within reach
  full = sammon.sammon(dist, 8, tol=1e-4, tol_x=0.0, stop="change")
  level = float(full.stress_curve[9] + full.stress_curve[10]) / 2  # passed on the way down, at iteration 10
  mds = sammon.sammon(dist, 8, tol=level, tol_x=0.0)  # the same path (same program and data) up to its stop
  assert mds.stopped == "criterion less than TolFun"
  assert mds.n_iter == 10 < full.n_iter
  np.testing.assert_array_equal(mds.stress_curve[:11], full.stress_curve[:11])
  assert sammon.sammon_stress(dist, mds.points) == pytest.approx(mds.stress, rel=1e-4)


def test_mdscale_stops_on_a_short_step():
  """TolX: the first step shorter than TolX · ‖Y‖ ends the solve; the step lengths come from the iterates, which a
  solve capped at that iteration reproduces (every run is the same program on the same data)."""
  dist = _dist(_clusters(80, 8, 4))
  tol_x = 3e-3
  mds = sammon.sammon(dist, 2, tol=0.0, tol_x=tol_x, max_iter=300)
  assert mds.stopped == "norm of change in configuration less than TolX"
  k = mds.n_iter
  before = sammon.sammon(dist, 2, tol=0.0, tol_x=0.0, max_iter=k - 1).points
  at = sammon.sammon(dist, 2, tol=0.0, tol_x=0.0, max_iter=k).points
  np.testing.assert_array_equal(at, mds.points)
  assert np.linalg.norm(at - before) < tol_x * np.linalg.norm(at)
  # The step before was not short: capped there, the same rule does not fire.
  assert not sammon.sammon(dist, 2, tol=0.0, tol_x=tol_x, max_iter=k - 1).stopped.startswith("norm of change")


def test_bad_stop_rule_is_an_error():
  with pytest.raises(ValueError, match="stop must be"):
    sammon.sammon(_dist(_clusters(10, 3, 2)), 2, stop="gradient")
  assert len(sammon.STOPPED) == len(lbfgs.STOP_REASONS)  # one mdscale message per reason the loop can give


def test_majorize_rule_never_increases_the_stress():
  dist = _dist(_clusters(80, 8, 4))
  result = sammon.sammon(dist, 2, method="majorize", tol=0.0, tol_x=0.0, max_iter=5)
  assert np.all(np.diff(result.stress_curve) <= 1e-12)


def test_memmap_input(tmp_path):
  dist = _dist(_clusters(70, 4, 3))
  np.save(tmp_path / "d.npy", dist)
  from_disk = sammon.sammon(np.load(tmp_path / "d.npy", mmap_mode="r"), 2, max_iter=5, tol=0.0, tol_x=0.0)
  np.testing.assert_allclose(from_disk.points, sammon.sammon(dist, 2, max_iter=5, tol=0.0, tol_x=0.0).points, rtol=1e-6)


def _knn_recall(dist: np.ndarray, points: np.ndarray, rows: np.ndarray, k: int) -> float:
  """Mean fraction of each row's k nearest neighbours (by the target distances) that are also its k nearest in the
  embedding."""
  emb = _dist(points)
  hits = []
  for i in rows:
    want = set(np.argsort(np.where(np.arange(len(dist)) == i, np.inf, dist[i]))[:k])
    got = set(np.argsort(np.where(np.arange(len(dist)) == i, np.inf, emb[i]))[:k])
    hits.append(len(want & got) / k)
  return float(np.mean(hits))


@pytest.mark.slow
def test_out_of_sample_reinsertion_keeps_stress_and_neighbours():
  n, dim = 200, 4
  dist = _dist(_clusters(n, 12, 6, spread=0.4))
  held = np.sort(np.random.default_rng(0).choice(n, n // 10, replace=False))
  kept = np.setdiff1d(np.arange(n), held)
  full = sammon.sammon(dist, dim)
  part = sammon.sammon(dist[np.ix_(kept, kept)], dim)
  placed = out_of_sample.embed_out_of_sample(part.points, dist[np.ix_(held, kept)], dist[np.ix_(held, held)])
  points = np.zeros((n, dim), np.float32)
  points[kept], points[held] = part.points, placed
  # Measure 1: Sammon stress of the whole re-assembled embedding, against the full solve.
  assert sammon.sammon_stress(dist, points) <= 1.10 * full.stress
  # Measure 2: 10-NN recall of the held-out shapes, against the full solve's for the same shapes.
  assert _knn_recall(dist, points, held, 10) >= 0.9 * _knn_recall(dist, full.points, held, 10)
  # Without S each shape is placed from its anchors alone; still close.
  alone = points.copy()
  alone[held] = out_of_sample.embed_out_of_sample(part.points, dist[np.ix_(held, kept)])
  assert sammon.sammon_stress(dist, alone) <= 1.10 * full.stress


def test_out_of_sample_duplicate_of_an_anchor_sits_on_it():
  x = _clusters(30, 5, 3)
  anchors = sammon.sammon(_dist(x), 2)
  new = np.concatenate([x[[4]], x[:1] + 0.1])
  a = scipy_distance.cdist(new, x).astype(np.float32)
  placed = out_of_sample.embed_out_of_sample(anchors.points, a)
  np.testing.assert_array_equal(placed[0], anchors.points[4])
  assert np.all(np.isfinite(placed))


@pytest.mark.slow
def test_landmark_sammon_never_needs_all_pairs():
  x = _clusters(400, 10, 5, spread=0.4).astype(np.float32)
  result = out_of_sample.sammon_landmark(x, n_landmarks=120, dim=3, chunk=128)
  assert result.points.shape == (400, 3) and np.all(np.isfinite(result.points))
  assert len(result.landmarks) == 120
  estimate = out_of_sample.subset_stress(x, result.points, n_subset=200)
  exact = sammon.sammon(_dist(x), 3).stress
  assert estimate < 2.0 * exact
