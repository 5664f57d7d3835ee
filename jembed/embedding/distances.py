"""All-pairs Euclidean distances between shape descriptors, blockwise, row blocks sharded over all devices.

The paper computes `pdist(X)` on the 203,760-D LFD-HoG descriptors (pipeline §1.3): plain Euclidean, no normalization.
Here it runs tile by tile on the GEMM identity ‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b, so the work is one matrix product per
tile, the thing accelerators (and BLAS) do best. Three details keep the float32 result within 1e-4 of a float64 `pdist`:

- Rows are centred on the mean descriptor (distances do not change) on the host, in the pass that reads them. HoG
  vectors are non-negative and share a large common part; without centring ‖a‖² + ‖b‖² dwarfs ‖a − b‖² and the
  subtraction cancels most float32 digits.
- Pairs whose squared distance is small next to ‖a‖² + ‖b‖² (below `refine_rtol`, where the identity loses digits)
  are recomputed on the host from the original rows' differences a − b (float64 sum of squares). Duplicate
  descriptors (duplicate meshes) thus come out as exact zeros, which the Sammon stage has a rule for, instead of
  float32 noise; at the default 1e-2 every other pair keeps ~1e-5 relative accuracy.
- The matrix product runs at `Precision.HIGHEST`: on GPUs the default float32 product is TF32 (~1e-3 relative error).

Layout: a tile is `rows × cols` with `rows` a block of `block_size` descriptors split evenly over a 1-D `('data',)`
mesh of all devices (`jax.shard_map`, each device one slice of the rows) and `cols` a block of the same size replicated.
Only tiles on and above the diagonal are computed; the lower triangle is their transpose. Memory is O(block_size · D)
for the inputs plus O(block_size²) per tile, plus the output, which may be a memory-mapped `.npy`
(`np.lib.format.open_memmap`) for large N. The input may be a memmap too (descriptors are cached on disk): it is only
ever read one block at a time.
"""

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import tqdm

from jembed.workdir import files

# Bytes of descriptor rows per block when `block_size` is not given: 20k-D descriptors give 3,276-row blocks, the
# paper's 203,760-D ones 329-row blocks (about 0.5 GB of device memory per tile, rows and columns).
_BLOCK_BYTES = 256 << 20
# Fewer, larger tiles waste the symmetric half of the diagonal tiles; more, smaller ones run the GEMM less efficiently.
_MIN_TILES_PER_SIDE = 4
_MIN_BLOCK = 256
# An in-memory input up to this size is centred once and kept (see _Blocks).
_CACHE_BYTES = 4 << 30
# The host-side recomputation of near-duplicate pairs works on at most this many descriptor entries at a time.
_REFINE_CHUNK = 1 << 24


def data_mesh(sharded: bool = True) -> jax.sharding.Mesh:
  """The 1-D `('data',)` mesh over this process's devices (all devices of a single-process run), or over the first
  one only when `sharded` is False. Several processes split the tiles among themselves instead (`part`)."""
  devices = jax.local_devices()
  return jax.make_mesh((len(devices) if sharded else 1,), ("data",), devices=devices if sharded else devices[:1])


def tile_distances(
    rows: jax.Array,
    row_sq: jax.Array,
    cols: jax.Array,
    col_sq: jax.Array,
    refine_rtol: float,
    precision: jax.lax.Precision = jax.lax.Precision.HIGHEST,
) -> tuple[jax.Array, jax.Array]:
  """One tile by the GEMM identity: (float32[R, C] distances, bool[R, C] pairs `refine` must recompute).

  Args:
    rows: float32[R, D] (centred) points; row_sq: float32[R] their squared norms.
    cols: float32[C, D] (centred on the same point); col_sq: float32[C].
    refine_rtol: flag pairs whose squared distance is at most this part of ‖a‖² + ‖b‖² (-1: none).
    precision: of the matrix product.
  """
  norms = row_sq[:, None] + col_sq[None, :]
  sq = norms - 2.0 * jnp.matmul(rows, cols.T, precision=precision)
  return jnp.sqrt(jnp.maximum(sq, 0.0)), sq <= refine_rtol * norms


@functools.lru_cache(maxsize=16)
def _tile_fn(mesh: jax.sharding.Mesh, refine_rtol: float, precision: jax.lax.Precision):
  """Jitted (rows[R, D], row_sq[R], cols[C, D], col_sq[C]) -> (dist[R, C], needs_refine bool[R, C]).

  Rows (centred descriptors and their squared norms) are sharded on 'data', columns replicated.
  """
  local = functools.partial(tile_distances, refine_rtol=refine_rtol, precision=precision)
  return jax.jit(
      jax.shard_map(local, mesh=mesh, in_specs=(P("data"), P("data"), P(), P()), out_specs=(P("data"), P("data")))
  )


def _compute_dtype(x: Any) -> np.dtype:
  # float64 in, float64 out only when JAX itself runs in 64 bit; otherwise everything is float32.
  if np.dtype(x.dtype) == np.float64 and jax.config.read("jax_enable_x64"):
    return np.dtype(np.float64)
  return np.dtype(np.float32)


def _centred_block(x: Any, start: int, size: int, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Rows [start, start + size) of x minus `centre`, zero-padded to `size` rows, and their squared norms.

  Centring happens here, in the one pass that reads the rows anyway (x may be a memmap), not on the device.
  """
  rows = x[start : start + size]
  block = np.zeros((size, x.shape[1]), centre.dtype)
  np.subtract(rows, centre, out=block[: rows.shape[0]], casting="unsafe")
  return block, np.einsum("ij,ij->i", block, block, dtype=np.float64).astype(centre.dtype)


class _Blocks:
  """Centred row blocks of x. An in-memory x of at most _CACHE_BYTES is centred once and then sliced (every column
  block is needed once per row block); a memmap or larger array is re-read and centred block by block."""

  def __init__(self, x: Any, centre: np.ndarray, size: int):
    self.x, self.centre, self.size, self.cached = x, centre, size, None
    if not isinstance(x, np.memmap) and x.shape[0] * x.shape[1] * centre.itemsize <= _CACHE_BYTES:
      n_pad = -(-x.shape[0] // size) * size
      self.cached = [np.zeros((n_pad, x.shape[1]), centre.dtype), np.zeros(n_pad, centre.dtype)]
      for s in range(0, x.shape[0], size):
        self.cached[0][s : s + size], self.cached[1][s : s + size] = _centred_block(x, s, size, centre)

  def __call__(self, start: int) -> tuple[np.ndarray, np.ndarray]:
    if self.cached is None:
      return _centred_block(self.x, start, self.size, self.centre)
    return self.cached[0][start : start + self.size], self.cached[1][start : start + self.size]


def mean_row(x: Any, block: int) -> np.ndarray:
  """float64[D] mean of the rows of x, read block by block (x may be a memmap)."""
  total = np.zeros(x.shape[1], np.float64)
  for start in range(0, x.shape[0], block):
    total += np.asarray(x[start : start + block], dtype=np.float64).sum(axis=0)
  return total / max(x.shape[0], 1)


def _block_rows(block_size: int | None, n: int, d: int, n_dev: int) -> int:
  """Rows per tile: given, or from the memory budget and a minimum tile count; a multiple of the device count."""
  if block_size is None:
    by_memory = max(_BLOCK_BYTES // (4 * max(d, 1)), 8)
    block_size = min(by_memory, max(_MIN_BLOCK, -(-n // _MIN_TILES_PER_SIDE)))
    block_size = -(-n // -(-n // block_size))  # even out the tiles so the last one is not mostly padding
  block_size = max(1, min(block_size, n))
  return -(-block_size // n_dev) * n_dev


def refine(tile: np.ndarray, flags: np.ndarray, a: Any, b: Any, i0: int, j0: int, skip_diagonal: bool) -> None:
  """Recomputes the flagged entries of tile = dist(a[i0:], b[j0:]) in place from the original rows' differences.

  The differences a − b need no cancellation-prone identity (and not the centred copies, whose rounding would show in
  the distance of near-duplicates), so float32 is enough for them; their squares are summed in float64. Duplicates
  come out as exact zeros. On a diagonal tile the diagonal itself (a row against itself) is skipped: it is set to 0.
  """
  ii, jj = np.nonzero(flags)
  if skip_diagonal:
    keep = ii != jj
    ii, jj = ii[keep], jj[keep]
  step = max(1, _REFINE_CHUNK // max(a.shape[1], 1))
  for s in range(0, ii.size, step):
    i, j = ii[s : s + step], jj[s : s + step]
    diff = np.asarray(a[i0 + i]) - np.asarray(b[j0 + j])
    tile[i, j] = np.sqrt(np.einsum("kd,kd->k", diff, diff, dtype=np.float64))


def _make_out(out: Any, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
  if out is None:
    return np.zeros(shape, dtype)  # zeros: a `part` leaves the other shares' entries as they are
  if isinstance(out, (str, os.PathLike)):
    return files.open_memmap(os.fspath(out), dtype, shape)  # its disk space reserved: a full disk is an error now
  if tuple(out.shape) != shape:
    raise ValueError(f"out has shape {tuple(out.shape)}, expected {shape}")
  return out


def _progress(total: int, progress: bool | None, desc: str):
  # None: a bar only for runs with many tiles (and tqdm itself stays quiet when stderr is not a terminal).
  disable = (not progress) if progress is not None else (None if total >= 64 else True)
  return tqdm.tqdm(total=total, desc=desc, disable=disable, unit="tile")


def _tiled(a, b, out, *, symmetric, block_size, sharded, refine_rtol, progress, precision, part=(0, 1)):
  """Fills out[n, m] with the distances between rows of a and rows of b (b is a when symmetric); with part=(i, k)
  only tiles i, i + k, i + 2k, ... (and their transposes): process i of k's share, the rest of out left as it is."""
  n, m = a.shape[0], b.shape[0]
  if n == 0 or m == 0:
    return out
  dtype = _compute_dtype(a)
  mesh = data_mesh(sharded)
  block = _block_rows(block_size, n, a.shape[1], mesh.size)
  col_block = block if symmetric else min(block, m)  # columns are replicated: no device multiple, no padding past m
  row_sharding = jax.NamedSharding(mesh, P("data"))
  replicated = jax.NamedSharding(mesh, P())
  # Distances are translation invariant; centring saves float32 digits (module docstring).
  centre = mean_row(b, col_block).astype(dtype)
  row_blocks = _Blocks(a, centre, block)
  col_blocks = row_blocks if symmetric else _Blocks(b, centre, col_block)
  fn = _tile_fn(mesh, float(refine_rtol or -1.0), precision)
  row_starts, col_starts = range(0, n, block), range(0, m, col_block)
  tiles = [(i, j) for i in row_starts for j in col_starts if not symmetric or j >= i][part[0] :: part[1]]
  pending = None  # one tile in flight: the device computes tile k + 1 while the host stores tile k

  def finish(item):
    (i, j), result = item
    dist, flags = (np.asarray(r) for r in result)
    dist = np.array(dist[: n - i, : m - j], dtype=dtype)
    if refine_rtol:
      refine(dist, flags[: n - i, : m - j], a, b, i, j, skip_diagonal=symmetric and i == j)
    if symmetric and i == j:
      dist = 0.5 * (dist + dist.T)  # the GEMM need not be exactly symmetric; the answer must be
      np.fill_diagonal(dist, 0.0)
    out[i : i + dist.shape[0], j : j + dist.shape[1]] = dist
    if symmetric and i != j:
      out[j : j + dist.shape[1], i : i + dist.shape[0]] = dist.T

  with _progress(len(tiles), progress, "distances") as bar:
    rows, row_i = None, None
    for i, j in tiles:
      if row_i != i:
        (rows, row_sq), row_i = row_blocks(i), i
        rows_dev = jax.device_put((rows, row_sq), row_sharding, may_alias=True)
      cols, col_sq = (rows, row_sq) if (symmetric and i == j) else col_blocks(j)
      item = ((i, j), fn(*rows_dev, *jax.device_put((cols, col_sq), replicated, may_alias=True)))
      if pending is not None:
        finish(pending)
        bar.update()
      pending = item
    if pending is not None:
      finish(pending)
      bar.update()
  if isinstance(out, np.memmap):
    out.flush()
  return out


def pairwise_distances(
    X: Any,
    *,
    block_size: int | None = None,
    out: Any = None,
    sharded: bool = True,
    refine_rtol: float = 1e-2,
    progress: bool | None = None,
    precision: jax.lax.Precision = jax.lax.Precision.HIGHEST,
    part: tuple[int, int] = (0, 1),
) -> np.ndarray:
  """All-pairs Euclidean distances between the rows of X, like `scipy.spatial.distance.squareform(pdist(X))`.

  Args:
    X: float32[N, D] descriptors: an array or a read-only `np.memmap` (read one row block at a time).
    block_size: rows per tile (rounded up to a multiple of the device count); by default from a 256 MB budget per
      block of descriptors and at least 4 tiles per side.
    out: None (a new array), a path (a new `.npy` memmap there), or a float32[N, N] array or memmap to fill.
    sharded: split each row block over all devices; False runs on the first device only.
    refine_rtol: pairs with ‖a − b‖² <= refine_rtol · (‖a‖² + ‖b‖²) (after centring) are recomputed in float64 on the
      host; 0 turns this off.
    progress: tqdm bar: True, False, or None for one on runs of 64 tiles or more.
    precision: precision of the tile GEMM.
    part: (i, k): only process i of k's share of the tiles is written (every entry belongs to exactly one share, so
      the k outputs, zero elsewhere, sum to the matrix; see `shape_embedding.cached_distances`).

  Returns:
    float32[N, N] (float64 when X is float64 and jax_enable_x64 is on): symmetric, exact zeros on the diagonal; `out`
    itself when it was given.
  """
  n = X.shape[0]
  out = _make_out(out, (n, n), _compute_dtype(X))
  return _tiled(
      X,
      X,
      out,
      symmetric=True,
      block_size=block_size,
      sharded=sharded,
      refine_rtol=refine_rtol,
      progress=progress,
      precision=precision,
      part=part,
  )


def cross_distances(
    A: Any,
    B: Any,
    *,
    block_size: int | None = None,
    out: Any = None,
    sharded: bool = True,
    refine_rtol: float = 1e-2,
    progress: bool | None = None,
    precision: jax.lax.Precision = jax.lax.Precision.HIGHEST,
) -> np.ndarray:
  """Euclidean distances between every row of A and every row of B, like `scipy.spatial.distance.cdist(A, B)`.

  For out-of-sample use: A holds the new shapes' descriptors, B the embedded shapes'.

  Args:
    A: float32[n, D], array or memmap.
    B: float32[m, D], array or memmap.
    block_size, out, sharded, refine_rtol, progress, precision: as in `pairwise_distances`.

  Returns:
    float32[n, m] (`out` itself when it was given).
  """
  if A.shape[1] != B.shape[1]:
    raise ValueError(f"descriptor sizes differ: {A.shape[1]} vs {B.shape[1]}")
  out = _make_out(out, (A.shape[0], B.shape[0]), _compute_dtype(A))
  return _tiled(
      A,
      B,
      out,
      symmetric=False,
      block_size=block_size,
      sharded=sharded,
      refine_rtol=refine_rtol,
      progress=progress,
      precision=precision,
  )
