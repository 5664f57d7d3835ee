"""The jitted kernels of exact k-NN (`retrieval`): the top k of one chunk of database rows, the merges, and the
bfloat16 screen that lets a large chunk skip most of its float32 work.

Values are negated squared distances (larger is nearer), so `jax.lax.top_k` selects and puts the lower position
first among equal values: ties go to the lower database index wherever candidates are concatenated in ascending index
order. Padding rows and a query's excluded row get -inf.

Screening (chunks of at least `_SCREEN_MIN_ROWS` rows). On CPUs with AMX or AVX512-BF16, and on every GPU and TPU, a
bfloat16 product with float32 accumulation runs 3-4x faster than the float32 one (64 queries x 10,048 rows x 128:
0.27 ms against 0.92 on this project's 2-core Sapphire Rapids), and the product is most of a search. So a screened
chunk takes the product of the bfloat16 roundings q_b = q + dq and d_b = d + dd and bounds its error rigorously:

  |q.d - q_b.d_b| <= |dq||d| + |q||dd| + |dq||dd| + gamma_D |q_b||d_b|   (Cauchy-Schwarz; gamma_D the float32 sum)

with |dq| computed per query and |d|, |dd| once per row when the database is placed. Each row's squared distance then
lies in [s - band, s + band] around the screened value s. The m = k + `_SCREEN_MARGIN` rows of smallest lower bound
are re-measured in float32 by their differences, sum((q - d)^2) (no cancellation, so equal points are at exactly 0),
and the top k of those is the answer whenever the next lower bound exceeds the k-th smallest upper bound among them:
every other row is then strictly farther than k candidates. Otherwise (more than `_SCREEN_MARGIN` rows within the
band of the k-th, e.g. many duplicates) the chunk falls back to the differences of all its rows. Either way the
answer is the exact top k of the difference-form distances with ties by lower index.
"""

import functools
from typing import NamedTuple

import jax
from jax import lax
import jax.numpy as jnp

# Entries per block of `select`'s prefilter: small enough that k blocks are few candidates, large enough that the
# block maxima are few.
SELECT_BLOCK = 64
# Queries per block up to which `chunked_top_k` takes one batched product over all chunks (measured on XLA:CPU at
# 1M rows: half the time of the chunk loop for 1 query, even at 8).
_BATCHED_QUERIES = 4
PRECISION = lax.Precision.HIGHEST  # on GPUs the default float32 product is TF32 (~1e-3 relative error)
# Chunks from this many rows are screened (below, the float32 product is cheap and the screen's extra steps are not).
# Measured on the 2-core Sapphire Rapids (AMX), 64 queries, top 10, `tests/benchmarks/query.py`, 2026-12-06: one chunk
# of 10,048 rows took 1.87-1.99 ms screened against 1.54 plain (numpy 2.55), because XLA:CPU's top k costs ~1.4 µs a
# row for the screen's m + 1 = 25 even among 80 entries (0.15 ms for 64 rows of 157, against 0.05 for k = 11); at
# 1,000,000 rows (chunks of 16,384) the two paths are level (112 against 111 ms, numpy 474-479).
_SCREEN_MIN_ROWS = 12288
# Prefilter blocks of the screen's selection of m + 1 among a chunk: a chunk of 16k rows has 1,024 block minima and
# keeps (m + 1) * 16 entries, about the fewest entries in total for XLA:CPU's top k (a few ns an entry).
_SCREEN_BLOCK = 16
# Candidates re-measured beyond k: rows that may sit within the bfloat16 band of the k-th.
_SCREEN_MARGIN = 14
_F32_EPS = 2.0**-24  # float32 unit roundoff


class Rows(NamedTuple):
  """Database rows as the kernels read them; every field laid out along the same rows R.

  Attributes:
    points: float32[R, D].
    sq: float32[R] squared norms.
    csq: float32[R] squared norms of the points less the database's centre c (the screen's coordinates: near the
      origin, so the bound, which grows with |q - c| |d - c|, stays small next to the distances).
    low: uint16[R, D] the bits of (points - c) rounded to bfloat16 (the screen's product). Bits, not bfloat16: XLA:CPU
      converts a bfloat16 array that a loop reads to float32 as a whole before the loop (10 ms at 100k rows).
    norm: float32[R] |points - c|.
    err: float32[R] |low - (points - c)|.
  """

  points: jax.Array
  sq: jax.Array
  csq: jax.Array
  low: jax.Array
  norm: jax.Array
  err: jax.Array


def rows_of(database: jax.Array, chunk: int, centre: jax.Array) -> Rows:
  """`Rows` of database float32[R, D] (R a multiple of chunk) around centre float32[D], chunk by chunk: every value
  comes from the same [chunk, D] program whatever R is (and so whichever device holds the row)."""
  n_chunks = database.shape[0] // chunk

  def one(rows):
    centred = rows - centre
    low = centred.astype(jnp.bfloat16)
    err = low.astype(jnp.float32) - centred
    csq = jnp.sum(centred * centred, axis=1)
    bits = lax.bitcast_convert_type(low, jnp.uint16)
    return jnp.sum(rows * rows, axis=1), csq, bits, jnp.sqrt(csq), jnp.sqrt(jnp.sum(err * err, axis=1))

  sq, csq, low, norm, err = lax.map(one, database.reshape(n_chunks, chunk, -1))
  flat = lambda x: x.reshape((database.shape[0],) + x.shape[2:])  # pylint: disable=unnecessary-lambda-assignment
  return Rows(database, flat(sq), flat(csq), flat(low), flat(norm), flat(err))


@functools.cache
def bf16_products_are_fast(platform: str) -> bool:
  """Whether a bfloat16 matrix product beats the float32 one on this platform: always on GPUs and TPUs; on a CPU only
  with AMX or AVX512-BF16 (read from /proc/cpuinfo; elsewhere XLA:CPU widens bfloat16 to float32 and the screen
  would only add work)."""
  if platform != "cpu":
    return True
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      flags = f.read()
  except OSError:
    return False
  return "amx_bf16" in flags or "avx512_bf16" in flags


def screened(chunk: int, k: int) -> bool:
  """Whether chunks of `chunk` rows take the screen for a top k: bfloat16 products are fast on the default backend,
  the chunk is large enough, and the m + 1 smallest lower bounds are a small part of it for `select`'s prefilter."""
  prefiltered = chunk % _SCREEN_BLOCK == 0 and chunk >= 4 * (k + _SCREEN_MARGIN + 1) * _SCREEN_BLOCK
  return chunk >= _SCREEN_MIN_ROWS and prefiltered and bf16_products_are_fast(jax.default_backend())


def select(neg: jax.Array, k: int, block: int | None = None) -> tuple[jax.Array, jax.Array]:
  """`jax.lax.top_k(neg, k)` of float32[Q, C], the same values and positions, through a prefilter when C is large.

  The prefilter splits each row into blocks of `block` entries (default SELECT_BLOCK), keeps the k blocks with the
  largest maxima (ties: the lower block) and selects among their k · block entries only. Exact: an entry of the top
  k lies in a kept block, or else k kept blocks would each hold an entry that precedes it (larger, or equal at a
  lower index). The kept blocks are taken in ascending order, so the last top k breaks ties by the lower index as
  one top k over C does. The full top k costs a few ns an entry on XLA:CPU; the block maxima cost one pass.
  """
  q, c = neg.shape
  b = block or SELECT_BLOCK
  if c % b or c < 4 * k * b:  # a small row: the prefilter would keep most of it
    return tuple(lax.top_k(neg, k))
  blocks = neg.reshape(q, c // b, b)
  _, best = lax.top_k(jnp.max(blocks, axis=2), k)
  best = jnp.sort(best, axis=1)
  values, pos = lax.top_k(jnp.take_along_axis(blocks, best[:, :, None], axis=1).reshape(q, k * b), k)
  return values, jnp.take_along_axis(best, pos // b, axis=1) * b + pos % b


def _negated_sq(queries: jax.Array, dots: jax.Array, rows_sq: jax.Array) -> jax.Array:
  """float32[Q, R] negated squared distances from the products queries · rows (float32[Q, R]) by the GEMM identity,
  clamped at 0 first (so every zero is -0.0 and equal zeros tie)."""
  q_sq = jnp.sum(queries * queries, axis=1)
  sq = q_sq[:, None] + rows_sq[None, :] - 2.0 * dots
  return -jnp.where(sq > 0.0, sq, 0.0)


def _difference_sq(queries: jax.Array, rows: jax.Array) -> jax.Array:
  """float32[Q, M] sum((q - r)^2) of queries float32[Q, D] and rows float32[Q, M, D] (each query its own rows)."""
  diff = queries[:, None, :] - rows
  return jnp.sum(diff * diff, axis=2)


def _screen_terms(queries: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Per-query terms of the screen: (q_sq, a, b float32[Q, 1], c scalar) with which row j's band is
  a·|d_j| + b·|dd_j| + c·(q_sq + |d_j|²): the module docstring's bound on the product's error, doubled for the
  squared distance, plus the float32 rounding of the norms, the identity's sums and the difference form (all below
  (2D + 20) eps (|q|² + |d|²)), the whole widened by 2^-10 for the rounding of the bound itself."""
  d = queries.shape[1]
  q_sq = jnp.sum(queries * queries, axis=1, keepdims=True)
  q_err = queries.astype(jnp.bfloat16).astype(jnp.float32) - queries
  q_err = jnp.sqrt(jnp.sum(q_err * q_err, axis=1, keepdims=True))
  p = jnp.sqrt(q_sq) + q_err
  gamma, widen = (d + 2) * _F32_EPS, 1.0 + 2.0**-10
  # |q.d - q_b.d_b| <= q_err |d| + (|q| + q_err) |dd| + gamma (|q| + q_err) (|d| + |dd|)
  return q_sq, 2.0 * widen * (q_err + gamma * p), 2.0 * widen * (1.0 + gamma) * p, widen * (2 * d + 20) * _F32_EPS


def _lower_bounds(queries: jax.Array, rows: Rows, keep: jax.Array, terms=None) -> jax.Array:
  """float32[Q, R] a lower bound of every kept row's difference-form squared distance (+inf where not kept), from
  the bfloat16 product: one pass over the [Q, R] products. `terms`: `_screen_terms(queries)` if the caller has them."""
  low = lax.bitcast_convert_type(rows.low, jnp.bfloat16)
  dots = jnp.einsum("qd,rd->qr", queries.astype(jnp.bfloat16), low, preferred_element_type=jnp.float32)
  q_sq, a, b, c = _screen_terms(queries) if terms is None else terms
  lower = (1.0 - c) * (q_sq + rows.csq) - a * rows.norm - b * rows.err - 2.0 * dots
  return jnp.where(keep, lower, jnp.inf)


def _dot(queries: jax.Array, points: jax.Array) -> jax.Array:
  """float32[Q, R] products of queries float32[Q, D] with rows float32[R, D], in full float32 (not TF32 on GPUs)."""
  return jnp.einsum("qd,nd->qn", queries, points, precision=PRECISION)


def _kept_top_k(queries, dots, sq, keep, k: int) -> tuple[jax.Array, jax.Array]:
  """Top k (float32[Q, k] negated squared distances, int32 positions) of the kept rows, from the float32 products
  dots float32[Q, R] by the GEMM identity: unscreened chunks, and the screen's fallback."""
  return select(jnp.where(keep, _negated_sq(queries, dots, sq), -jnp.inf), k)


def screen_chunk(queries, centred, part: Rows, points, start, keep, k: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The screen's fast path on one chunk (see the module docstring).

  Args:
    queries: float32[Q, D].
    centred: float32[Q, D] the queries less the database's centre.
    part: the chunk's `Rows` (its `points` unused: the few rows re-measured are gathered from `points`).
    points: float32[R, D] all rows of this device; the chunk starts at row `start` (int32 scalar).
    start: int32 scalar.
    keep: bool[Q, chunk] rows that may be returned.
    k: top k.

  Returns:
    (float32[Q, k] negated squared distances by the difference form, int32[Q, k] positions in the chunk, bool
    scalar `sure`: they are the k nearest kept rows for every query; when False the chunk needs another path).
  """
  m = k + _SCREEN_MARGIN
  q_sq, a, b, c = terms = _screen_terms(centred)
  neg_lower, cand = select(-_lower_bounds(centred, part, keep, terms), m + 1, _SCREEN_BLOCK)
  next_lower = -jnp.min(neg_lower, axis=1)  # the (m + 1)-th smallest lower bound: no row outside is nearer
  order = jnp.argsort(cand[:, :m], axis=1)  # ascending rows: top k keeps the lower row among equal distances
  cand, lower = jnp.take_along_axis(cand, order, axis=1), -jnp.take_along_axis(neg_lower, order, axis=1)
  upper = lower + 2.0 * (a * part.norm[cand] + b * part.err[cand] + c * (q_sq + part.csq[cand]))  # +inf: not kept
  kth_upper = -jnp.min(lax.top_k(-upper, k)[0], axis=1)
  exact = jnp.where(jnp.isfinite(lower), _difference_sq(queries, points[start + cand]), jnp.inf)
  values, pos = lax.top_k(-exact, k)
  return values, jnp.take_along_axis(cand, pos, axis=1), jnp.all(next_lower > kth_upper)


def _screened_top_k(queries, centred, part: Rows, points, start, keep, k: int) -> tuple[jax.Array, jax.Array]:
  """`screen_chunk`'s answer when it is sure, else the chunk's float32 product (`_kept_top_k`)."""
  values, pos, sure = screen_chunk(queries, centred, part, points, start, keep, k)
  chunk = part.low.shape[0]

  def plain():
    return _kept_top_k(queries, _dot(queries, lax.dynamic_slice_in_dim(points, start, chunk)), part.sq, keep, k)

  return lax.cond(sure, lambda: (values, pos), plain)


def _keep(n_rows: int, n_queries: int, exclude, offset, n_valid: int) -> jax.Array:
  """bool[Q, n_rows]: rows (global index offset + i) that are neither padding nor the query's excluded row."""
  index = offset + jnp.arange(n_rows, dtype=jnp.int32)
  keep = jnp.broadcast_to(index[None, :] < n_valid, (n_queries, n_rows))
  return keep if exclude is None else keep & (index[None, :] != exclude[:, None])


def merge(values: jax.Array, index: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """Top k of candidate lists float32/int32[S, Q, c] that cover ascending index ranges (s = 0 the lowest)."""
  s, q, c = values.shape
  values = jnp.moveaxis(values, 0, 1).reshape(q, s * c)  # side by side in index-range order: ties keep lower indices
  index = jnp.moveaxis(index, 0, 1).reshape(q, s * c)
  values, pos = lax.top_k(values, k)
  return values, jnp.take_along_axis(index, pos, axis=1)


def chunked_top_k(queries, rows: Rows, centre, exclude, *, k: int, chunk: int, offset, n_valid: int):
  """Top min(k, R) of database `Rows` (R a multiple of chunk) for queries float32[Q, D]: a top k per chunk, then one
  merge.

  Args:
    queries: float32[Q, D].
    rows: the database's `Rows`, made around `centre` (float32[D]).
    centre: float32[D].
    exclude: int32[Q], a row per query never returned (-1: none), or None.
    k, chunk: top k; rows per chunk.
    offset: global index of the first row.
    n_valid: rows from this global index on are padding.

  Returns:
    (float32[Q, k'] negated squared distances, int32[Q, k'] global indices), k' = min(k, R).
  """
  n_chunks, q = rows.points.shape[0] // chunk, queries.shape[0]
  chunks = Rows(*(field.reshape((n_chunks, chunk) + field.shape[1:]) for field in rows))
  k_chunk = min(k, chunk)
  steps = jnp.arange(n_chunks, dtype=jnp.int32)

  def finish(j, values, pos):
    return values, pos.astype(jnp.int32) + offset + j * chunk

  if q > _BATCHED_QUERIES and screened(chunk, k_chunk):
    centred = queries - centre

    # The chunks' float32 rows stay out of the loop's slices: only the few candidates are read (a gather).
    def screen(a):
      j, part = a
      keep = _keep(chunk, q, exclude, offset + j * chunk, n_valid)
      return finish(j, *_screened_top_k(queries, centred, part, rows.points, j * chunk, keep, k_chunk))

    values, index = lax.map(screen, (steps, chunks._replace(points=steps)))
    return merge(values, index, min(k, rows.points.shape[0]))

  def one(j, dots, sq):
    return finish(j, *_kept_top_k(queries, dots, sq, _keep(chunk, q, exclude, offset + j * chunk, n_valid), k_chunk))

  # lax.map keeps the chunks apart (a loop), so each product has the same shape whatever R is. A loop copies each
  # chunk out of the database before its product, though; for a few queries, where reading the rows is the cost,
  # one batched product over all chunks (a GEMM per chunk, the same shape) reads them once instead.
  if q <= _BATCHED_QUERIES:
    dots = jnp.einsum("qd,cnd->cqn", queries, chunks.points, precision=PRECISION)
    values, index = lax.map(lambda a: one(*a), (steps, dots, chunks.sq))
  else:
    values, index = lax.map(lambda a: one(a[0], _dot(queries, a[1]), a[2]), (steps, chunks.points, chunks.sq))
  return merge(values, index, min(k, rows.points.shape[0]))
