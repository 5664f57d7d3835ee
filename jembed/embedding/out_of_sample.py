"""New shapes into an existing Sammon embedding, and the landmark Sammon mapping for collections too big for D*.

Out of sample (pipeline §1.4, `GPS.m` done right). New shapes x_i are placed by minimizing the same Sammon-weighted
stress the embedding was built with, the embedded points p_j held fixed:

  E(X) = [Σ_ij (A_ij − ‖x_i − p_j‖)² / A_ij + Σ_{i<k} (S_ik − ‖x_i − x_k‖)² / S_ik] / [Σ_ij A_ij + Σ_{i<k} S_ik],

A = distances of the new shapes to the embedded ones, S = among the new shapes (optional). One weight per pair, 1/d*,
and one normalizer: the new shapes' own terms of the Sammon stress of the union. `GPS.m` instead normalized wA and wS
one after the other (so their balance depended on the order), started from `rand` (its weighted-mean start was
computed and then overwritten) and added 1e-6 to every distance. Here the start is the weighted mean of the k nearest
embedded points (weights 1/distance) and the optimizer is L-BFGS in one jit: `sammon.minimize` over all new shapes when
S couples them, else one L-BFGS per shape (`_minimize_rows`: own history, step and stopping test per row). The first
step is the SMACOF update, which for a point among fixed anchors is the exact majorization step.

Zero distances: a new shape at distance 0 from an embedded one is a duplicate of it and is placed on that point (the
limit of the 1/d* weight) and held there; zero distances among new shapes get weight 0 and their groups end on one
point, as in `sammon`.

Landmark Sammon (`sammon_landmark`): for N beyond the exact solver (D* of 50k shapes is 10 GB), Sammon-map a random
subset of landmarks exactly, then place every other shape out of sample from its distances to the landmarks alone
(computed blockwise from the descriptors by `distances.cross_distances`, never all pairs). Memory is O(L² + N · L) with
L landmarks; `subset_stress` estimates the Sammon stress of the result on the pairs among a random subset of shapes.
"""

import functools
import logging
from typing import Any, Callable, NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import PartitionSpec
import numpy as np

from jembed.embedding import distances
from jembed.embedding import sammon as sammon_lib
from jembed.embedding import sammon_kernel

# Not `P`: embed_out_of_sample's first argument keeps the paper's name for the embedded points.
_ROWS, _REPLICATED = PartitionSpec("data", None), PartitionSpec()


@functools.lru_cache(maxsize=16)
def _anchor_kernel(mesh: jax.sharding.Mesh) -> Callable:
  """(a float32[n, m] rows on 'data', x float32[n, k], p float32[m, k], floor) -> (e float32[n], G float32[n, k]).

  e_i = Σ_j (a_ij − d_ij)² / a_ij and G_i = Σ_j K_ij (x_i − p_j) with K_ij = 1/a_ij − 1/d_ij, so ∇_i e_i = 2 G_i.
  """

  def local(a_rows, x, p, floor):
    rows = a_rows.shape[0]
    x_rows = lax.dynamic_slice_in_dim(x, lax.axis_index("data") * rows, rows)
    row_stress, grad = sammon_kernel.stress_tile(a_rows, x_rows, p, jnp.sum(p * p, axis=1), floor)
    gather = functools.partial(lax.all_gather, axis_name="data", tiled=True, to="invarying")
    return gather(row_stress), gather(grad)

  return jax.shard_map(
      local, mesh=mesh, in_specs=(_ROWS, _REPLICATED, _REPLICATED, _REPLICATED), out_specs=(_REPLICATED, _REPLICATED)
  )


@functools.partial(jax.jit, static_argnames=("anchor_kernel", "new_kernel", "max_iter", "history", "method"))
def _solve(a, s, p, x0, free, precond, total, floor, tol, *, anchor_kernel, new_kernel, max_iter, history, method):
  """Joint solve: the new shapes are coupled through S, one L-BFGS over all of them."""

  def value_and_grad(x):
    e, g = anchor_kernel(a, x, p, floor)
    e = jnp.sum(e)
    if new_kernel is not None:  # pairs among the new shapes: the Sammon kernel counts each pair twice
      e_new, g_new = new_kernel(s, x, floor)
      e, g = e + 0.5 * e_new, g + g_new
    return e / total, (2.0 / total) * g * free

  return sammon_lib.minimize(value_and_grad, x0, precond, max_iter=max_iter, tol=tol, history=history, method=method)


class _RowState(NamedTuple):
  trips: jax.Array
  k: jax.Array  # int[n] pairs stored per row
  x: jax.Array  # float[n, d]
  e: jax.Array  # float[n]
  g: jax.Array
  p: jax.Array
  slope: jax.Array  # float[n]
  step: jax.Array  # float[n]; 0 once a row is done
  halvings: jax.Array
  s_hist: jax.Array  # float[m, n, d]
  y_hist: jax.Array
  rho: jax.Array  # float[m, n]
  started: jax.Array
  done: jax.Array  # bool[n]


def _rows_direction(g, s_hist, y_hist, rho, k, precond):
  """The two-loop recursion run independently for every row (each row its own history length k_i)."""
  m, n = rho.shape
  rows, used = jnp.arange(n), jnp.minimum(k, m)

  def newest_first(i, carry):
    q, alpha = carry
    j = (k - 1 - i) % m
    a = jnp.where(i < used, rho[j, rows] * jnp.sum(s_hist[j, rows] * q, axis=1), 0.0)
    return q - a[:, None] * y_hist[j, rows], alpha.at[i].set(a)

  q, alpha = lax.fori_loop(0, m, newest_first, (g, jnp.zeros((m, n), g.dtype)))
  last = (k - 1) % m
  s_last, y_last = s_hist[last, rows], y_hist[last, rows]
  gamma = jnp.sum(s_last * y_last, axis=1) / jnp.maximum(jnp.sum(y_last * y_last, axis=1), 1e-30)
  r = jnp.where((k > 0)[:, None], gamma[:, None] * q, precond * q)

  def oldest_first(t, r):
    i = m - 1 - t
    j = (k - 1 - i) % m
    b = rho[j, rows] * jnp.sum(y_hist[j, rows] * r, axis=1)
    return jnp.where((i < used)[:, None], r + (alpha[i] - b)[:, None] * s_hist[j, rows], r)

  return -lax.fori_loop(0, m, oldest_first, r)


def _minimize_rows(value_and_grad, x0, precond, *, max_iter, tol, history, max_halvings=30):
  """`sammon.minimize` for a separable objective: every row of x is its own problem with its own L-BFGS history,
  Armijo step and stopping test, all advanced together in one `lax.while_loop` (one evaluation per trip).

  value_and_grad: x float[n, d] -> (values float[n], gradients float[n, d]). Returns (x, iterations of the slowest row).
  """
  n = x0.shape[0]
  rows = jnp.arange(n)
  hist = jnp.zeros((history,) + x0.shape, x0.dtype)
  vec = jnp.zeros(n, x0.dtype)
  st = _RowState(
      jnp.int32(0),
      jnp.zeros(n, jnp.int32),
      x0,
      jnp.full(n, jnp.inf, x0.dtype),
      jnp.zeros_like(x0),
      jnp.zeros_like(x0),
      vec,
      vec,
      jnp.zeros(n, jnp.int32),
      hist,
      hist,
      jnp.zeros((history, n), x0.dtype),
      jnp.bool_(False),
      jnp.zeros(n, bool),
  )

  def body(st: _RowState) -> _RowState:
    e_t, g_t = value_and_grad(st.x + st.step[:, None] * st.p)
    accept = ~st.started | ((e_t <= st.e + 1e-4 * st.step * st.slope) & ~st.done)
    s, yv = st.step[:, None] * st.p, g_t - st.g
    sy = jnp.sum(s * yv, axis=1)
    store = accept & st.started & (sy > 1e-10 * jnp.sum(yv * yv, axis=1))
    j = st.k % history
    s_hist = st.s_hist.at[j, rows].set(jnp.where(store[:, None], s, st.s_hist[j, rows]))
    y_hist = st.y_hist.at[j, rows].set(jnp.where(store[:, None], yv, st.y_hist[j, rows]))
    rho = st.rho.at[j, rows].set(jnp.where(store, 1.0 / jnp.where(store, sy, 1.0), st.rho[j, rows]))
    k = st.k + store.astype(jnp.int32)
    p = _rows_direction(g_t, s_hist, y_hist, rho, k, precond)
    slope = jnp.sum(g_t * p, axis=1)
    descent = slope < 0
    p = jnp.where(descent[:, None], p, -precond * g_t)
    slope = jnp.where(descent, slope, -jnp.sum(g_t * precond * g_t, axis=1))
    converged = accept & st.started & (st.e - e_t <= tol * e_t)
    stuck = ~accept & ~st.done & (st.halvings + 1 >= max_halvings)
    done = st.done | converged | stuck

    def pick(new, old):
      return jnp.where(accept.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

    step = jnp.where(done, 0.0, pick(jnp.ones_like(st.step), 0.5 * st.step))
    return _RowState(
        st.trips + 1,
        pick(jnp.where(descent, k, 0), st.k),
        pick(st.x + s, st.x),
        pick(e_t, st.e),
        pick(g_t, st.g),
        pick(p, st.p),
        pick(slope, st.slope),
        step,
        pick(0 * st.halvings, st.halvings + 1),
        s_hist,
        y_hist,
        rho,
        jnp.bool_(True),
        done,
    )

  st = lax.while_loop(lambda st: ~jnp.all(st.done) & (st.trips <= max_iter), body, st)
  return st.x, st.trips


@functools.partial(jax.jit, static_argnames=("anchor_kernel", "max_iter", "history"))
def _solve_rows(a, p, x0, free, precond, totals, floor, tol, *, anchor_kernel, max_iter, history):
  """Independent solves (no S): row i minimizes its own normalized stress e_i / Σ_j a_ij."""

  def value_and_grad(x):
    e, g = anchor_kernel(a, x, p, floor)
    return e / totals, (2.0 / totals)[:, None] * g * free

  return _minimize_rows(value_and_grad, x0, precond, max_iter=max_iter, tol=tol, history=history)


def _weighted_start(points: np.ndarray, a: np.ndarray, k: int) -> np.ndarray:
  """float32[n, dim]: mean of each row's k nearest embedded points, weighted by 1/distance."""
  k = min(k, a.shape[1])
  nearest = np.argpartition(a, k - 1, axis=1)[:, :k]
  w = 1.0 / np.maximum(np.take_along_axis(a, nearest, axis=1), 1e-12)
  return (np.einsum("nk,nkd->nd", w, points[nearest]) / w.sum(axis=1, keepdims=True)).astype(np.float32)


def _pad_rows(x: np.ndarray, rows: int, cols: int | None = None) -> np.ndarray:
  out = np.zeros((rows, x.shape[1] if cols is None else cols), np.float32)
  out[: x.shape[0], : x.shape[1]] = x
  return out


def embed_out_of_sample(
    P: Any,  # pylint: disable=invalid-name
    A: Any,
    S: Any = None,
    *,
    k_start: int = 5,
    max_iter: int = 200,
    tol: float = 1e-5,
    history: int = 10,
    sharded: bool = True,
) -> np.ndarray:
  """Places new shapes into an embedding by minimizing their Sammon stress with the embedded points held fixed.

  Without S the problem separates: every new shape runs its own L-BFGS (own history, step and stopping test) on its
  own normalized stress, all in one jitted loop; with S one L-BFGS runs over all new shapes jointly.

  Args:
    P: float32[m, dim] embedded points (e.g. `sammon(...).points`).
    A: float32[n, m] distances from each new shape to each embedded shape (`distances.cross_distances`).
    S: optional float32[n, n] distances among the new shapes; without it each new shape is placed independently.
    k_start: embedded neighbours averaged (weights 1/distance) for the start.
    max_iter: iteration cap.
    tol: stop when an iteration lowers the stress by at most tol · stress (per shape without S).
    history: L-BFGS memory.
    sharded: split the new shapes over all devices.

  Returns:
    float32[n, dim] points of the new shapes.
  """
  p, a = np.asarray(P, np.float32), np.asarray(A, np.float32)
  n, m = a.shape
  if p.shape[0] != m:
    raise ValueError(f"A has {m} columns but there are {p.shape[0]} embedded points")
  if not np.all(np.isfinite(a)) or np.any(a < 0):
    raise ValueError("distances must be finite and non-negative")
  x0 = _weighted_start(p, a, k_start)
  dup_row, dup_col = np.nonzero(a == 0)
  free = np.ones(n, np.float32)
  x0[dup_row] = p[dup_col]  # duplicates of embedded shapes sit on them (later zeros win; any one is right)
  free[dup_row] = 0.0
  mesh = distances.data_mesh(sharded)
  lay = sammon_lib._layout(n, mesh.size)  # pylint: disable=protected-access
  weight_sums = np.sum(np.divide(1.0, a, where=a > 0, out=np.zeros_like(a)), axis=1)
  totals = a.sum(axis=1, dtype=np.float64)
  replicated = jax.NamedSharding(mesh, _REPLICATED)
  put = lambda v: jax.device_put(np.asarray(v, np.float32), replicated)  # pylint: disable=unnecessary-lambda-assignment
  a_dev = jax.device_put(_pad_rows(a, lay.n_pad), jax.NamedSharding(mesh, _ROWS))
  floor = np.float32(1e-4 * totals.sum() / max(a.size, 1))
  if S is None:
    # The SMACOF step of a point among fixed ones: x ← x − (c_i/2) ∇E_i / Σ_j w_ij (see sammon._solve).
    precond = np.where(weight_sums > 0, 0.5 * totals / np.maximum(weight_sums, 1e-30), 0.0)
    x, n_iter = _solve_rows(
        a_dev,
        put(p),
        put(_pad_rows(x0, lay.n_pad)),
        put(_pad_rows(free[:, None], lay.n_pad)),
        put(_pad_rows(precond[:, None], lay.n_pad)),
        put(np.pad(np.maximum(totals, 1e-30), (0, lay.n_pad - n), constant_values=1.0)),
        floor,
        np.float32(tol),
        anchor_kernel=_anchor_kernel(mesh),
        max_iter=max_iter,
        history=history,
    )
    logging.debug("out of sample: %d shapes placed in at most %d iterations", n, int(n_iter))
    return np.asarray(x)[:n]
  prep = sammon_lib._prepare(S, lay, mesh)  # pylint: disable=protected-access
  total = float(totals.sum() + prep.total)
  weight_sums = weight_sums + prep.weight_sums[:n]
  precond = np.where(weight_sums > 0, 0.5 * total / np.maximum(weight_sums, 1e-30), 0.0)
  x, _, _, n_iter, _ = _solve(
      a_dev,
      prep.d,
      put(p),
      put(_pad_rows(x0, lay.n_pad)),
      put(_pad_rows(free[:, None], lay.n_pad)),
      put(_pad_rows(precond[:, None], lay.n_pad)),
      np.float32(max(total, 1e-30)),
      floor,
      np.float32(tol),
      anchor_kernel=_anchor_kernel(mesh),
      new_kernel=sammon_kernel.stress_kernel(mesh, lay.sub),
      max_iter=max_iter,
      history=history,
      method="lbfgs",
  )
  logging.debug("out of sample: %d shapes placed jointly in %d iterations", n, int(n_iter))
  return sammon_lib._snap_duplicates(np.asarray(x)[:n], prep.zero_pairs)  # pylint: disable=protected-access


class LandmarkResult(NamedTuple):
  """Result of `sammon_landmark`.

  Attributes:
    points: float32[N, dim] embedding points of all shapes.
    landmarks: int[L] sorted indices of the landmark shapes.
    landmark_result: the exact `sammon` result on the landmarks (its stress is among landmarks only).
  """

  points: np.ndarray
  landmarks: np.ndarray
  landmark_result: sammon_lib.SammonResult


def sammon_landmark(
    X: Any,
    n_landmarks: int = 2000,
    dim: int = 128,
    *,
    seed: int = 0,
    chunk: int = 8192,
    max_iter: int = 500,
    tol: float = 1e-4,
    tol_x: float = 1e-4,
    stop: str = "mdscale",
    oos_max_iter: int = 100,
    sharded: bool = True,
    progress: bool | None = None,
) -> LandmarkResult:
  """Landmark Sammon mapping from descriptors: exact Sammon on random landmarks, every other shape out of sample.

  Never forms the N × N matrix: distances are landmark × landmark (L²) and shape × landmark (N · L), both computed
  blockwise from X by `distances`. The non-landmarks are placed in chunks of `chunk` shapes, each shape by its
  distances to the landmarks only (S = None), so the chunks are independent.

  Args:
    X: float32[N, D] descriptors, array or memmap (streamed in row blocks; the landmark rows are read once).
    n_landmarks: L, shapes embedded exactly (clipped to N).
    dim: embedding dimension.
    seed: seed of the landmark draw (uniform without replacement).
    chunk: new shapes per out-of-sample solve.
    max_iter, tol, tol_x, stop: of the landmark `sammon`.
    oos_max_iter: iteration cap of each out-of-sample solve (its tol is `tol` too).
    sharded: split the work over all devices.
    progress: tqdm bars of the distance stages (see `distances.pairwise_distances`).

  Returns:
    LandmarkResult(points float32[N, dim], landmarks int[L], landmark_result).
  """
  n = X.shape[0]
  landmarks = np.sort(np.random.default_rng(seed).choice(n, size=min(n_landmarks, n), replace=False))
  x_land = np.asarray(X[landmarks], np.float32)
  result = sammon_lib.sammon(
      distances.pairwise_distances(x_land, sharded=sharded, progress=progress),
      dim,
      max_iter=max_iter,
      tol=tol,
      tol_x=tol_x,
      stop=stop,
      sharded=sharded,
      seed=seed,
  )
  to_landmarks = distances.cross_distances(X, x_land, sharded=sharded, progress=progress)  # float32[N, L]
  points = np.zeros((n, dim), np.float32)
  points[landmarks] = result.points
  rest = np.setdiff1d(np.arange(n), landmarks)
  for s in range(0, rest.size, chunk):
    rows = rest[s : s + chunk]
    a = to_landmarks[rows]
    if rows.size < chunk and rest.size > chunk:  # keep one compiled shape: pad the last chunk with weightless rows
      a = np.concatenate([a, np.zeros((chunk - rows.size, a.shape[1]), np.float32)])
    points[rows] = embed_out_of_sample(result.points, a, max_iter=oos_max_iter, tol=tol, sharded=sharded)[: rows.size]
  return LandmarkResult(points, landmarks, result)


def subset_stress(X: Any, points: Any, *, n_subset: int = 2000, seed: int = 0, sharded: bool = True) -> float:
  """Sammon's stress over all pairs among a random subset of shapes: an estimate of the stress when N² is too big.

  Args:
    X: float32[N, D] descriptors, array or memmap.
    points: float[N, dim] their embedding.
    n_subset: shapes drawn (uniformly, without replacement).
    seed: seed of the draw.
    sharded: split the distance computation over all devices.

  Returns:
    `sammon.sammon_stress` of the subset's points against the subset's descriptor distances.
  """
  # A seed sequence of its own, so the subset is not `sammon_landmark`'s landmark draw for the same seed.
  subset = np.sort(np.random.default_rng([seed, 7]).choice(X.shape[0], size=min(n_subset, X.shape[0]), replace=False))
  dist = distances.pairwise_distances(np.asarray(X[subset], np.float32), sharded=sharded)
  return sammon_lib.sammon_stress(dist, np.asarray(points)[subset])
