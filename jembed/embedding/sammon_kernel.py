"""The O(N² · dim) part of Sammon's mapping: stress and gradient over all pairs, and (D∘D) @ q for classical MDS.

Two layouts of the same sums:

- `stress_kernel` (several devices): rows of D* split over the `('data',)` mesh (`jax.shard_map`), each device walking
  its rows in `sub × N` tiles (`lax.map`) against all points; every pair is computed twice, once from each side.
- `symmetric_stress_kernel` (one device): D* cut into `b × b` tiles and only the tiles on and above the diagonal
  computed; an off-diagonal tile serves both of its row blocks (its row sums and C @ y_j for block i, its column sums
  and Cᵀ @ y_i for block j). That skips the lower triangle's y_i @ y_jᵀ products and elementwise work (with 5 blocks
  15 of 25 tiles); the C @ y products stay. N = 2000, dim 128, 2-core CPU: 9.4 ms instead of 11.0 per evaluation (in
  one run; another, busier, 17.8 instead of 23.3).

`use_sharding` picks between them: split over devices only where they are separate chips (not the CPU "devices" of
`--xla_force_host_platform_device_count`, which share the same cores: there the split measured 17.7 ms per evaluation
against 11.6 on one device) or separate processes.
"""

import functools
from typing import Callable

import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

_HIGHEST = lax.Precision.HIGHEST


def use_sharding(sharded: bool | None) -> bool:
  """`sharded` if given, else True unless this is one process on CPU devices (which share the same cores)."""
  if sharded is not None:
    return sharded
  return jax.process_count() > 1 or jax.local_devices()[0].platform != "cpu"


def stress_tile(
    d_rows: jax.Array, x_rows: jax.Array, others: jax.Array, others_sq: jax.Array, floor: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Sammon terms of some points against others, and their gradient: the O(rows · m · dim) inner work.

  Args:
    d_rows: float32[r, m] target distances d*; pairs with d* = 0 get weight 0 (the zero-distance rule).
    x_rows: float32[r, dim] the points whose terms these are.
    others: float32[m, dim] the points they are measured against.
    others_sq: float32[m] squared norms of `others`.
    floor: smallest embedded distance divided by (keeps coincident points finite).

  Returns:
    float32[r] Σ_j (d*_ij − d_ij)² / d*_ij per row (unnormalized), and float32[r, dim] its gradient / 2 w.r.t. x_rows.
  """
  row_stress, coeff = _terms(d_rows, x_rows, jnp.sum(x_rows * x_rows, axis=1), others, others_sq, floor)
  grad = jnp.sum(coeff, axis=1)[:, None] * x_rows - jnp.matmul(coeff, others, precision=_HIGHEST)
  return row_stress, grad


def _terms(d_t, y_i, sq_i, y_j, sq_j, floor):
  """(float32[r] Σ_j (d*_ij − d_ij)² / d*_ij, float32[r, m] K_ij = 1/d*_ij − 1/d_ij, 0 where d* = 0) of one tile."""
  sq = sq_i[:, None] + sq_j[None, :] - 2.0 * jnp.matmul(y_i, y_j.T, precision=_HIGHEST)
  d = jnp.sqrt(jnp.maximum(sq, 0.0))
  positive = d_t > 0
  w = jnp.where(positive, 1.0 / jnp.where(positive, d_t, 1.0), 0.0)
  # Every mask from w (exactly 0 where d* = 0) and none on the residual: the same values, bit for bit, but XLA:CPU
  # fuses the tile into fewer passes (26 ms instead of 42 for a 2000² tile, measured).
  resid = d_t - d
  coeff = w - jnp.where(w > 0, 1.0 / jnp.maximum(d, floor), 0.0)
  return jnp.sum(w * resid * resid, axis=1), coeff


@functools.lru_cache(maxsize=16)
def stress_kernel(mesh: jax.sharding.Mesh, sub: int) -> Callable:
  """(d float32[Np, Np] rows on 'data', y float32[Np, k], floor) -> (Σ_{i≠j} (d*−d)²/d*, G float32[Np, k]).

  G_i = Σ_j K_ij (y_i − y_j) with K_ij = (d_ij − d*_ij) / (d*_ij d_ij) = 1/d*_ij − 1/d_ij; the stress gradient is
  (2 / Σ_{i<j} d*) · G and the stress (1 / (2 Σ_{i<j} d*)) · the first output. `floor` bounds 1/d_ij for points that
  coincide while their targets differ.
  """

  def local(d_rows, y, floor):
    rows = d_rows.shape[0]
    y_rows = lax.dynamic_slice_in_dim(y, lax.axis_index("data") * rows, rows)
    sq_norms = jnp.sum(y * y, axis=1)

    def tile(args):
      row_stress, grad = stress_tile(*args, y, sq_norms, floor)
      return jnp.sum(row_stress), grad

    n_sub = rows // sub
    e, g = lax.map(tile, (d_rows.reshape(n_sub, sub, -1), y_rows.reshape(n_sub, sub, -1)))
    return lax.psum(jnp.sum(e), "data"), lax.all_gather(g.reshape(rows, -1), "data", tiled=True, to="invarying")

  return jax.shard_map(local, mesh=mesh, in_specs=(P("data", None), P(), P()), out_specs=(P(), P()))


@functools.lru_cache(maxsize=16)
def symmetric_stress_kernel(mesh: jax.sharding.Mesh, blocks: int) -> Callable:
  """(d float32[Np, Np], y float32[Np, k], floor) -> `stress_kernel`'s sums on a one-device mesh, Np a multiple of
  `blocks`.

  D* is cut into blocks × blocks tiles and only those on and above the diagonal are computed: diagonal tiles as in
  `stress_kernel`; each off-diagonal tile (i, j) adds its stress twice, Σ_j K_ij (y_i − y_j) to row block i and
  Σ_i K_ij (y_j − y_i) to row block j (K is symmetric). The tiles are unrolled: as a `fori_loop` over tiles the same
  sums took 14.8 ms instead of 9.4 (N = 2000, 5 blocks; XLA:CPU then neither overlaps independent tiles nor fuses the
  dynamic slices), so `blocks` stays small (the caller bounds it).
  """

  def kernel(d, y, floor):
    b = d.shape[0] // blocks
    ys = [y[i * b : (i + 1) * b] for i in range(blocks)]
    sqs = [jnp.sum(v * v, axis=1) for v in ys]
    e, g = jnp.zeros((), y.dtype), [jnp.zeros_like(v) for v in ys]
    for i in range(blocks):
      for j in range(i, blocks):
        row_stress, coeff = _terms(d[i * b : (i + 1) * b, j * b : (j + 1) * b], ys[i], sqs[i], ys[j], sqs[j], floor)
        e = e + (1.0 if i == j else 2.0) * jnp.sum(row_stress)
        g[i] = g[i] + jnp.sum(coeff, axis=1)[:, None] * ys[i] - jnp.matmul(coeff, ys[j], precision=_HIGHEST)
        if i != j:
          g[j] = g[j] + jnp.sum(coeff, axis=0)[:, None] * ys[j] - jnp.matmul(coeff.T, ys[i], precision=_HIGHEST)
    return e, jnp.concatenate(g)

  if mesh.size != 1:
    raise ValueError(f"the symmetric kernel runs on one device, got a mesh of {mesh.size}")
  # Inside shard_map (trivially, one device) D*'s row sharding on 'data' is not part of the arrays' types; outside,
  # the transposed product would contract over a sharded dimension. One device: every output is replicated.
  return jax.shard_map(kernel, mesh=mesh, in_specs=(P("data", None), P(), P()), out_specs=(P(), P()), check_vma=False)


@functools.lru_cache(maxsize=16)
def squared_product_kernel(mesh: jax.sharding.Mesh, sub: int) -> Callable:
  """(d float32[Np, Np] rows on 'data', q float32[Np, m]) -> (d ∘ d) @ q, for classical MDS without forming B."""

  def local(d_rows, q):
    rows = d_rows.shape[0]
    out = lax.map(lambda dk: jnp.matmul(dk * dk, q, precision=_HIGHEST), d_rows.reshape(rows // sub, sub, -1))
    return lax.all_gather(out.reshape(rows, -1), "data", tiled=True, to="invarying")

  return jax.shard_map(local, mesh=mesh, in_specs=(P("data", None), P()), out_specs=P())
