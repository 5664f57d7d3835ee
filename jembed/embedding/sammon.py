"""Sammon mapping of the shape distance matrix: the paper's `mdscale(D, 128, 'criterion', 'sammon')` (pipeline §1.3).

Sammon's stress of points Y (rows y_i) against target distances d*_ij:

  E = (1 / Σ_{i<j} d*_ij) · Σ_{i<j} (d*_ij − d_ij)² / d*_ij,   d_ij = ‖y_i − y_j‖.

`sammon` starts from classical (Torgerson) MDS, as MATLAB's `mdscale` does, and runs the whole optimization inside one
jit (`lax.while_loop`). It stops where `mdscale` stops (the paper ran it with its defaults, TolFun = TolX = 1e-4; its
tests, in its order, on every iterate): the stress is below TolFun; the gradient's norm is below TolFun · stress; an
iteration lowered the stress by at most TolFun · stress; the step was shorter than TolX · ‖Y‖; or `max_iter`.
`SammonResult.stopped` says which, in mdscale's words. Until 2026-12-06 this module tested the relative change only
(`stop='change'`), which runs on below TolFun until an iteration gains too little: on the benchmark data (below) 65
iterations to a stress of 4.97e-5 and 0.87 s, where mdscale's rule stops after 5 at 9.76e-5 in 0.26 s (seeds 0–4:
65, 91, 64, 64, 86 against 5, 5, 5, 6, 5; a level crossing does not jump with rounding as the first small gain
does). The criterion test decides only where the stress can fall below 1e-4: on the demo's catalog, whose gain-only
solve ended at 3.3e-5 after 113 iterations, but not on IKEA's voxel models (1.1e-4 after 76; there TolX stopped it
after 70).

Update rule, chosen by measurement on the benchmark data (`tests/benchmarks/sammon.py`: N = 2000 points of 20
Gaussian clusters in 512-D → 128-D, classical-MDS start at stress 6.65e-3; CPU, 2 shared cores). All rules use the same
analytic gradient; the first four were measured in a prototype with 100 iterations each, the last two rows are this
module (run to its stopping rule):

  rule                                                 | stress @100 it | evals/it | notes
  L-BFGS (history 10, Armijo backtracking)             | 4.92e-5        | 1.02     | 9.5e-5 after 5 it, 6.6e-5 after 10
  majorization (SMACOF, Jacobi majorizer diag Σ_j w_ij)| 6.37e-5        | 1        | 1.4e-4 after 20 it
  Sammon pseudo-Newton (diag. Hessian, step halving)   | 3.68e-3        | ~1.5     | near-zero Hessian entries give huge
                                                       |                |          | steps that halving cannot rescue
                                                       |                |          | (MASS::sammon stops at its start)
  optax.adam (lr 0.05, no schedule)                    | 6.12e-5        | 1        | not monotone; lr needs tuning
  optax.lbfgs (zoom line search, autodiff)             | 4.92e-5        | ~2.8     | same path as ours, 3.5× the time
  this module, method='lbfgs', history 10: 4.94e-5 at its stop after 78 it (sklearn: 1.0e-4)
  this module, default (history 6, one device, symmetric tiles): 4.97e-5 after 65 it; warm 1.10 s against 1.86 s for
    the previous default (history 10, split over 2 CPU devices) in the same minute, 1.8–2.0 CPU-s against 3.6–3.8
    (a loaded 2-core machine; sklearn 4.6–5.7 s there)
  this module, method='majorize': 5.54e-5 at the 500-iteration cap, 12.0 s
  the same default with mdscale's stopping tests (stop='mdscale', the default since 2026-12-06): 9.76e-5 after 5 it,
    'criterion less than TolFun', 0.26 s (seeds 1–4: 5, 5, 6, 5 it, 0.25–0.27 s); the rows above ran the 'change' rule
  (minimum seen: 4.87e-5 after 400 L-BFGS iterations)

Tried on the L-BFGS default (iterations to the tol = 1e-4 stop; the count jumps with small changes, as the stop comes
at the first iteration that gains ≤ 1e-4, so variants were compared over the benchmark data with seeds 0–4):

  variant                                              | iterations (seeds 0–4)  | stress at the stop
  history 10 (the default until issue 24)              | 78, 83, 83, 85, 84      | 4.84–4.97e-5
  history 6 (default)                                  | 65, 91, 64, 64, 86      | 4.88–4.97e-5
  history 8                                            | 77, 65, 86, 94, 67      | 4.84–5.00e-5
  history 5 / 6 / 8 / 10 / 15 (row-block kernel, seeds | 5: 71, 85, 97, 85, 94   | all 4.82–5.06e-5
    0–4; the symmetric kernel rounds differently)      | 6: 44, 97, 68, 42, 64   |
                                                       | 8: 69, 80, 82, 79, 81   |
                                                       | 10: 78, 64, 98, 82, 85  |
                                                       | 15: –, 79, 94, 79, 77   |
  history 20 / 40                                      | 75 / 89 (seed 0)        | –
  Jacobi-preconditioned L-BFGS (z = y / √precond)      | 87 (seed 0)             | same
  classical-MDS start with 4 / 3 power steps (not 8)   | 81–107 / 71–121         | 4.84–5.05e-5
  classical-MDS start with 12 / 16 power steps         | 67–97 / 62–101          | 4.83–4.99e-5

History 6 took fewer iterations than 10 in 8 of the 10 paired runs (mean 68.5 against 82) and each is cheaper (the
history is read about seven times a trip), so it is the default; a cheaper start (fewer power steps) costs more
iterations than it saves.

Measured on 2026-12-06 and not kept (this CPU has AMX: a bfloat16 product with float32 sums, [2000, 2000] x
[2000, 128], takes 0.64 ms against 2.5 in float32). Each row: iterations for seeds 0–4 and the mean warm time,
against 65, 91, 64, 64, 86 and 0.93 s for the default in the same minutes:

  variant                                              | iterations (seeds 0–4)  | mean time | stress at the stop
  C @ y of the tiles' direct side in bfloat16          | 49, 96, 84, 85, 51      | 0.87 s    | 4.84–5.06e-5
  (transposed side float32; 9.2 ms a trip, not 10.2)   |                         |           |
  both sides in bfloat16                               | 82, 71, 84, –, –        | –         | 4.84–4.94e-5
  classical MDS with its power steps in bfloat16       | 64, 34, 75, 88, 94      | 0.85 s    | 4.86–5.22e-5
  (90 ms instead of 130; the Rayleigh-Ritz step f32)   |                         |           |
  one Cholesky-QR pass per power step (not two)        | 83, 71, 59, 68, 77      | 0.88 s    | 4.90–4.98e-5
  both of the last two                                 | 53, 80, 86, 85, 83      | 0.89 s    | 4.84–5.03e-5

Each saves 5–10 % of a trip or of the start, and each moves the stopping iteration by up to ±30: the mean time moves
by less than the spread between seeds, so none is worth its rounding. A multilevel start (Sammon on 500 random
points, the rest placed out of sample: stress 9.6e-5 before the full solve, under sklearn's final 1.0e-4) made the
full solve take 129 and 161 iterations (seeds 0, 1): from a good start the stress falls slowly, and the stopping rule
waits for that.

L-BFGS reaches every stress level with the fewest stress evaluations (each costs two N×N×dim products), so it is the
default; `method='majorize'` keeps the SMACOF step (monotone, with a halving safeguard) for comparison. The L-BFGS loop
(`minimize`) evaluates the stress once per `while_loop` trip (start, full step or halved step), keeps the history flat
so XLA updates it in place, and forms the direction from the compact representation with four matrix-vector products.
Its first step is the majorization step, whose scale comes from the data (plain −g would be ~1e-8 too short, the stress
being normalized by Σ d*).

Zero distances (duplicate shapes): a pair with d*_ij = 0 gets weight 0 — the term (0 − d)²/0 has no value, and the limit
of any ε-floor only says "put them on one point". Duplicates have equal rows in D, so classical MDS starts them on the
same point and they then receive the same gradient; after the solve each group of duplicates (connected by zero
distances) is placed exactly on its mean point, which removes float noise. Padding rows use the same rule.

Scale and sharding (`sammon_kernel`): the stress and its gradient, the O(N² · dim) part, run on one device unless
there are several chips or processes (CPU devices of one process share the same cores: split over 2 of them the
evaluation measured 17.7 ms instead of 11.6). On several devices a `jax.shard_map` over the `('data',)` mesh splits
the rows of D*, and inside each device a `lax.map` walks row sub-blocks so that only a `sub × N` tile of temporaries
(distances, weights, gradient coefficients) exists at a time. On one device D* is cut into 5 to 12 blocks per side and
only the tiles on and above the diagonal are computed, each off-diagonal tile serving both of its row blocks (9.4 ms
instead of 11.0 at N = 2000; beyond 12 blocks of 2048 rows the row-block walk). Device memory is D* itself (N² float32,
1.6 GB at N = 20k) plus O(tile + history · N · dim); the weights 1/d* are recomputed per tile rather than stored.
Beyond ~20k shapes use `out_of_sample.sammon_landmark`, which never forms the full matrix.
"""

import functools
from typing import Any, Callable, NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph

from jembed.embedding import distances
from jembed.embedding import sammon_kernel
from jembed.embedding.lbfgs import minimize  # pylint: disable=unused-import (re-exported)

_TILE_BYTES = 16 << 20  # per-device sub × N temporaries in the stress kernel
# One device: at least 5 symmetric blocks per side (4 and 5 measured best at N = 2000), blocks up to 2048 rows, and at
# most 12 (78 unrolled tiles; larger N uses the row-block kernel, which compiles to one loop).
_MIN_BLOCKS, _BLOCK_ROWS, _MAX_BLOCKS = 5, 2048, 12
_EXACT_EIG_MAX_N = 1500  # classical MDS by a full eigendecomposition up to here, randomized subspace iteration above
# One device: classical MDS squares D once when D∘D fits in this many float32 (256 MB, N <= 8192), else tiles.
_SQUARED_MAX_ELEMENTS = 1 << 26
_HOST_ROWS = 1024  # rows of D read at a time on the host
_BUCKET, _BUCKET_MAX_ROWS = 32, 512  # rows per device are padded to a multiple of 32 up to 512


class SammonResult(NamedTuple):
  """Result of `sammon`.

  Attributes:
    points: float32[N, dim] embedding points.
    stress: Sammon's stress of `points`.
    stress_curve: float32[max_iter + 1]: [0] the start's stress, [t] after iteration t, NaN past `n_iter`.
    n_iter: iterations run.
    stopped: why the iterations ended, one of `lbfgs.STOP_REASONS` in mdscale's words (`STOPPED`).
  """

  points: np.ndarray
  stress: float
  stress_curve: np.ndarray
  n_iter: int
  stopped: str = ""


# `lbfgs.STOP_REASONS` as MATLAB's mdscale words them (its Display 'iter' messages), for the stage's record.
STOPPED = (
    "running",
    "criterion less than TolFun",
    "relative norm of gradient less than TolFun",
    "relative change in criterion less than TolFun",
    "norm of change in configuration less than TolX",
    "iteration limit (MaxIter)",
    "no descent step (step halved 30 times)",
)


class _Layout(NamedTuple):
  """How N rows are padded and split: n_pad = devices · sub-blocks per device · sub.

  blocks > 0 (one device only): the symmetric kernel's row blocks per side, n_pad a multiple of blocks · sub.
  """

  n: int
  n_pad: int
  sub: int
  blocks: int = 0


def _layout(n: int, n_dev: int, symmetric: bool = False) -> _Layout:
  per_dev = -(-n // n_dev)
  if per_dev <= _BUCKET_MAX_ROWS:  # small problems: compile time dominates, so nearby N share one program
    per_dev = -(-per_dev // _BUCKET) * _BUCKET
  blocks = max(_MIN_BLOCKS, -(-per_dev // _BLOCK_ROWS)) if symmetric and n_dev == 1 else 0
  if per_dev <= _BUCKET_MAX_ROWS or blocks > _MAX_BLOCKS:
    blocks = 0  # tiny: one tile is the whole problem; huge: too many tiles to unroll
  parts = max(blocks, 1)  # the row-block walk (classical MDS, the row kernel) splits each symmetric block evenly
  n_sub = max(1, -(-per_dev * per_dev * n_dev * 4 // (_TILE_BYTES * parts)))
  sub = -(-per_dev // (n_sub * parts))
  return _Layout(n, n_dev * parts * n_sub * sub, sub, blocks)


def _kernel(mesh: jax.sharding.Mesh, lay: _Layout) -> Callable:
  if lay.blocks:
    return sammon_kernel.symmetric_stress_kernel(mesh, lay.blocks)
  return sammon_kernel.stress_kernel(mesh, lay.sub)


class _Prepared(NamedTuple):
  d: jax.Array  # float32[n_pad, n_pad], rows sharded on 'data', zero padding
  total: float  # Σ_{i<j} d*_ij, the stress normalizer
  weight_sums: np.ndarray  # float32[n_pad], Σ_j 1/d*_ij (the majorization diagonal)
  zero_pairs: np.ndarray  # int[K, 2], off-diagonal pairs i < j with d*_ij == 0


def _prepare(dist: Any, lay: _Layout, mesh: jax.sharding.Mesh) -> _Prepared:
  """Streams D (array or memmap) to the devices row block by row block, collecting the statistics on the way."""
  n, n_pad = lay.n, lay.n_pad
  sharding = jax.NamedSharding(mesh, P("data", None))
  total, weight_sums, zeros, shards = 0.0, np.zeros(n_pad, np.float32), [], []
  for device, index in sharding.addressable_devices_indices_map((n_pad, n_pad)).items():
    r0, r1 = index[0].indices(n_pad)[:2]
    block = np.zeros((r1 - r0, n_pad), np.float32)
    for s in range(r0, min(r1, n), _HOST_ROWS):
      rows = np.asarray(dist[s : min(s + _HOST_ROWS, r1, n)], dtype=np.float32)
      if not np.all(np.isfinite(rows)) or np.any(rows < 0):
        raise ValueError("distances must be finite and non-negative")
      block[s - r0 : s - r0 + rows.shape[0], :n] = rows
      total += float(rows.sum(dtype=np.float64))
      positive = rows > 0
      weight_sums[s : s + rows.shape[0]] = np.sum(np.divide(1.0, rows, where=positive, out=np.zeros_like(rows)), axis=1)
      ii, jj = np.nonzero(~positive)
      keep = ii + s < jj
      zeros.append(np.stack([ii[keep] + s, jj[keep]], axis=1))
    shards.append(jax.device_put(block, device))
  d = jax.make_array_from_single_device_arrays((n_pad, n_pad), sharding, shards)
  return _Prepared(d, total / 2, weight_sums, np.concatenate(zeros) if zeros else np.zeros((0, 2), int))


def _orthonormalize(z: jax.Array) -> jax.Array:
  """Orthonormal basis of the columns of z by shifted Cholesky-QR, twice (GEMMs only; LAPACK QR is slower on CPU).

  The shift (1e-5 of the Gram trace) keeps the Cholesky factorization defined when power steps have made the columns
  nearly dependent; the second pass restores orthogonality to float32 accuracy.
  """
  for _ in range(2):
    g = z.T @ z
    g = g + 1e-5 * jnp.trace(g) / g.shape[0] * jnp.eye(g.shape[0], dtype=g.dtype)
    chol = jnp.linalg.cholesky(g)
    z = jax.scipy.linalg.solve_triangular(chol, z.T, lower=True).T
  return z


@functools.partial(jax.jit, static_argnames=("kernel", "n", "dim", "n_iter"))
def _randomized_cmds(d, key, *, kernel, n, dim, n_iter):
  """Top-`dim` classical MDS by subspace iteration on B = −½ J (D∘D) J (float32[Np, dim], zero padding rows)."""
  mask = (jnp.arange(d.shape[0]) < n)[:, None]

  def centre(z):
    return jnp.where(mask, z - jnp.sum(jnp.where(mask, z, 0.0), axis=0) / n, 0.0)

  def b_times(q):
    return -0.5 * centre(kernel(d, centre(q)))

  width = min(dim + max(dim // 2, 10), n)  # oversampling: the top `dim` converge at the rate of the gap to `width`
  q = _orthonormalize(centre(jax.random.normal(key, (d.shape[0], width), jnp.float32)))
  q = lax.fori_loop(0, n_iter, lambda _, q: _orthonormalize(b_times(q)), q)
  t = q.T @ b_times(q)
  lam, u = jnp.linalg.eigh(0.5 * (t + t.T))
  lam, u = lam[::-1][:dim], u[:, ::-1][:, :dim]
  return (q @ u) * jnp.sqrt(jnp.maximum(lam, 0.0))


def _exact_cmds(dist: Any, dim: int) -> np.ndarray:
  d2 = np.square(np.asarray(dist, np.float64))
  b = -0.5 * (d2 - d2.mean(axis=0)[None] - d2.mean(axis=1)[:, None] + d2.mean())
  n = b.shape[0]
  k = min(dim, n)
  lam, vec = scipy.linalg.eigh(b, subset_by_index=[n - k, n - 1])
  lam, vec = lam[::-1], vec[:, ::-1]
  out = np.zeros((n, dim), np.float32)
  out[:, :k] = vec * np.sqrt(np.maximum(lam, 0.0))  # non-Euclidean D: negative eigenvalues give zero columns
  return out


def classical_mds(D: Any, dim: int, *, sharded: bool | None = None, n_iter: int = 8, seed: int = 0) -> np.ndarray:
  """Classical (Torgerson) MDS, MATLAB's `cmdscale` truncated to `dim` columns.

  Exact eigendecomposition for N <= 1500; above, randomized subspace iteration on the devices (n_iter power steps with
  dim/2 oversampling), which never forms the centred matrix B and is only as exact as a start needs.

  Args:
    D: float32[N, N] symmetric distances, array or memmap.
    dim: number of coordinates.
    sharded: spread the products over all devices; default: unless they are CPU devices of one process
      (`sammon_kernel.use_sharding`).
    n_iter: subspace iterations (randomized path only).
    seed: seed of the random start subspace (randomized path only).

  Returns:
    float32[N, dim] centred coordinates, columns by decreasing eigenvalue (zero columns for non-positive ones).
  """
  n = D.shape[0]
  if n <= _EXACT_EIG_MAX_N:
    return _exact_cmds(D, dim)
  mesh = distances.data_mesh(sammon_kernel.use_sharding(sharded))
  lay = _layout(n, mesh.size)
  prep = _prepare(D, lay, mesh)
  return _cmds_on_device(prep.d, lay, mesh, dim, n_iter, seed)


def _squared_product(d2: jax.Array, q: jax.Array) -> jax.Array:
  """(D∘D) @ q with D∘D formed once: one GEMM (4.4 ms against 6.6 for the tiled kernel at N = 2000, width 192)."""
  return jnp.matmul(d2, q, precision=lax.Precision.HIGHEST)


def _cmds_on_device(d, lay, mesh, dim, n_iter, seed):
  if mesh.size == 1 and lay.n_pad**2 <= _SQUARED_MAX_ELEMENTS:  # room for D∘D beside D
    # Replicated (on one device, no copy): the rows' 'data' sharding would follow D∘D into the products.
    d, kernel = jnp.square(jax.device_put(d, jax.NamedSharding(mesh, P()))), _squared_product
  else:
    kernel = sammon_kernel.squared_product_kernel(mesh, lay.sub)
  y = _randomized_cmds(d, jax.random.key(seed), kernel=kernel, n=lay.n, dim=dim, n_iter=n_iter)
  return np.asarray(y)[: lay.n]


# ----------------------------------------------------------------------------------------------------------------------
# The optimizer: L-BFGS (or the majorization step) as one while_loop that evaluates the stress once per trip.


@functools.partial(jax.jit, static_argnames=("kernel", "max_iter", "history", "method", "stop"))
def _solve(d, y0, weight_sums, total, floor, tol, tol_x, *, kernel, max_iter, history, method, stop):
  """The jitted Sammon solve on prepared (padded, sharded) D*; `stop` 'mdscale' or 'change' (see `sammon`)."""

  def value_and_grad(y):
    e, g = kernel(d, y, floor)
    return e / (2.0 * total), (2.0 / total) * g

  # The majorization step: for raw stress Σ w (d* − d)² the Jacobi majorizer is diag(Σ_j w_ij), so the step is
  # −(total / 2) · grad / Σ_j w_ij. Rows with no weight (padding) do not move.
  precond = jnp.where(weight_sums > 0, 0.5 * total / jnp.where(weight_sums > 0, weight_sums, 1.0), 0.0)[:, None]
  # mdscale's TolFun serves three of its tests (the stress itself, the gradient relative to it, the change), TolX the
  # step relative to the configuration.
  extra = dict(value_tol=tol, grad_tol=tol, step_tol=tol_x) if stop == "mdscale" else {}
  return minimize(value_and_grad, y0, precond, max_iter=max_iter, tol=tol, history=history, method=method, **extra)


def _snap_duplicates(points: np.ndarray, zero_pairs: np.ndarray) -> np.ndarray:
  """Places every group of shapes joined by zero distances on its mean point (the zero-distance rule)."""
  if zero_pairs.size == 0:
    return points
  n = points.shape[0]
  graph = scipy.sparse.coo_matrix((np.ones(len(zero_pairs)), (zero_pairs[:, 0], zero_pairs[:, 1])), shape=(n, n))
  _, label = scipy.sparse.csgraph.connected_components(graph, directed=False)
  sums = np.zeros((label.max() + 1, points.shape[1]), np.float64)
  np.add.at(sums, label, points)
  return (sums / np.bincount(label)[:, None])[label].astype(np.float32)


def sammon(
    D: Any,
    dim: int = 128,
    *,
    max_iter: int = 500,
    tol: float = 1e-4,
    tol_x: float = 1e-4,
    stop: str = "mdscale",
    init: Any = None,
    method: str = "lbfgs",
    history: int = 6,
    sharded: bool | None = None,
    seed: int = 0,
) -> SammonResult:
  """Sammon mapping of a distance matrix (the paper's `mdscale(D, 128, 'criterion', 'sammon')`).

  Args:
    D: float32[N, N] symmetric target distances d*, zero diagonal, array or memmap (read once, row block by row block).
    dim: embedding dimension.
    max_iter: iteration cap (MATLAB's MaxIter; the paper set 128).
    tol: MATLAB's TolFun: stop when the stress is below tol, its gradient's norm below tol · stress, or an iteration
      lowers it by at most tol · stress.
    tol_x: MATLAB's TolX: stop after a step shorter than tol_x · ‖Y‖ (Frobenius norms).
    stop: 'mdscale' (default): all four of mdscale's tests, in its order; 'change': only the relative change (the
      rule of this module until 2026-12-06, which runs on below tol to the first iteration that gains ≤ tol).
    init: float[N, dim] start; default classical MDS (`classical_mds`).
    method: 'lbfgs' (default) or 'majorize'; see the module docstring for the measurements.
    history: L-BFGS memory (6: fewest iterations to the stop, see the module docstring).
    sharded: split the rows of D over all devices; False runs on the first device only (the symmetric kernel);
      default: split unless the devices are CPU devices of one process (`sammon_kernel.use_sharding`).
    seed: seed of the randomized classical MDS (N > 1500).

  Returns:
    SammonResult(points float32[N, dim], stress, stress_curve float32[max_iter + 1], n_iter, stopped).
  """
  n = D.shape[0]
  if D.ndim != 2 or D.shape[1] != n:
    raise ValueError(f"D must be square, got {D.shape}")
  if stop not in ("mdscale", "change"):
    raise ValueError(f"stop must be 'mdscale' or 'change', got {stop!r}")
  mesh = distances.data_mesh(sammon_kernel.use_sharding(sharded))
  lay = _layout(n, mesh.size, symmetric=True)
  prep = _prepare(D, lay, mesh)
  if init is not None:
    y0 = np.asarray(init, np.float32)
  elif n <= _EXACT_EIG_MAX_N:
    y0 = _exact_cmds(D, dim)
  else:
    y0 = _cmds_on_device(prep.d, lay, mesh, dim, 8, seed)
  if y0.shape != (n, dim):
    raise ValueError(f"init must have shape {(n, dim)}, got {y0.shape}")
  if prep.total == 0:  # N <= 1 or all shapes identical: nothing to fit
    curve = np.full(max_iter + 1, np.nan, np.float32)
    curve[0] = 0.0
    return SammonResult(_snap_duplicates(y0, prep.zero_pairs), 0.0, curve, 0, STOPPED[1])
  y0 = np.pad(y0, ((0, lay.n_pad - n), (0, 0)))
  replicated = jax.NamedSharding(mesh, P())
  floor = 1e-4 * prep.total / max(n * (n - 1) / 2, 1)  # 1e-4 of the mean target distance
  res = _solve(
      prep.d,
      jax.device_put(y0, replicated),
      jax.device_put(prep.weight_sums, replicated),
      np.float32(prep.total),
      np.float32(floor),
      np.float32(tol),
      np.float32(tol_x),
      kernel=_kernel(mesh, lay),
      max_iter=max_iter,
      history=history,
      method=method,
      stop=stop,
  )
  points = _snap_duplicates(np.asarray(res.x)[:n], prep.zero_pairs)
  return SammonResult(points, float(res.value), np.asarray(res.curve), int(res.it), STOPPED[int(res.stop)])


def sammon_stress(D: Any, points: Any, *, block: int = 1024) -> float:
  """Sammon's stress of `points` against D, in float64 on the host (pairs with d* = 0 count zero).

  An oracle independent of the jitted kernel: benchmarks score every method with it.

  Args:
    D: float[N, N] target distances, array or memmap.
    points: float[N, dim].
    block: rows per step.

  Returns:
    E = Σ_{i<j} (d*_ij − d_ij)² / d*_ij / Σ_{i<j} d*_ij.
  """
  y = np.asarray(points, np.float64)
  sq = np.sum(y * y, axis=1)
  num = den = 0.0
  for s in range(0, y.shape[0], block):
    t = np.asarray(D[s : s + block], np.float64)
    d = np.sqrt(np.maximum(sq[s : s + block, None] + sq[None] - 2.0 * y[s : s + block] @ y.T, 0.0))
    positive = t > 0
    num += float(np.sum(np.divide((t - d) ** 2, t, where=positive, out=np.zeros_like(t))))
    den += float(t.sum())
  return num / den if den > 0 else 0.0
