"""The jitted kernels of exact k-NN (`retrieval`): the top k of one chunk of database rows, and the merges.

Values are negated squared distances (larger is nearer), so `jax.lax.top_k` selects and puts the lower position
first among equal values: ties go to the lower database index wherever candidates are concatenated in ascending index
order. Rows a query may not get (padding, its excluded row: `placed.Keep`) are never selected.

Chunks of at least `screen.MIN_ROWS` rows take the bfloat16 screen (`screen`); the queries it cannot decide take
the float32 product here.
"""

import jax
from jax import lax
import jax.numpy as jnp

from jembed.api import placed as placed_lib
from jembed.api import screen as screen_lib

# Entries per block of `select`'s prefilter: small enough that k blocks are few candidates, large enough that the
# block maxima are few. The prefilter applies from 4 k blocks a row, so 32 reaches smaller catalogues than 64 did.
# Top 10 after a numpy call, 2-core machine, 2026-12-06, 32 against 64: 2,000 shapes x 64 queries 0.45-0.62 ms
# against 0.59-0.73; one query of 4,000 shapes 0.11-0.16 against 0.16-0.18, of 6,000 0.19-0.20 against 0.23-0.25;
# 4,000 x 64 within noise; unchanged at 10,000 (screened) and at 100,000 and 1,000,000 rows.
SELECT_BLOCK = 32
# Queries per block up to which `chunked_top_k` takes one batched product over all chunks (measured on XLA:CPU at
# 1M rows: half the time of the chunk loop for 1 query, even at 8).
_BATCHED_QUERIES = 4
PRECISION = lax.Precision.HIGHEST  # on GPUs the default float32 product is TF32 (~1e-3 relative error)
# Queries of a chunk the screen may leave to the float32 product before the whole batch takes it.
UNSURE_QUERIES = 8


def select(neg: jax.Array, k: int, block: int | None = None) -> tuple[jax.Array, jax.Array]:
  """`jax.lax.top_k(neg, k)` of float32[Q, C], the same values and positions, through a prefilter when C is large.

  The prefilter splits each row into blocks of `block` entries (default SELECT_BLOCK), keeps the k blocks with the
  largest maxima (ties: the lower block) and selects among their k · block entries only. Exact: an entry of the top
  k lies in a kept block, or else k kept blocks would each hold an entry that precedes it (larger, or equal at a
  lower index). The kept blocks are taken in ascending order, so the last top k breaks ties by the lower index as
  one top k over C does. The full top k costs a few ns an entry on XLA:CPU; the block maxima cost one pass.
  """
  return _prefiltered_top_k(neg, k, block, jnp.max, lambda x: x)


def _nearest(sq: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """`select(-max(sq, 0), k)` of squared distances float32[Q, C] (+inf: never), the same values and positions:
  negated and clamped at 0 (every zero is -0.0, so equal zeros tie). Both are monotone, so they are applied after
  the block minima, to the minima and the candidates only: one pass over [Q, C] fewer."""
  return _prefiltered_top_k(sq, k, None, jnp.min, lambda x: -jnp.where(x > 0.0, x, 0.0))


def _prefiltered_top_k(x, k: int, block: int | None, block_best, value) -> tuple[jax.Array, jax.Array]:
  """`jax.lax.top_k(value(x), k)` of float32[Q, C] for `value` element-wise and monotone, where `block_best` (jnp.max
  or jnp.min) is the reduction whose value is the block's largest: `select`'s prefilter."""
  q, c = x.shape
  b = block or SELECT_BLOCK
  if c % b or c < 4 * k * b:  # a small row: the prefilter would keep most of it
    return tuple(lax.top_k(value(x), k))
  blocks = x.reshape(q, c // b, b)
  _, best = lax.top_k(value(block_best(blocks, axis=2)), k)
  best = jnp.sort(best, axis=1)
  values, pos = lax.top_k(value(jnp.take_along_axis(blocks, best[:, :, None], axis=1).reshape(q, k * b)), k)
  return values, jnp.take_along_axis(best, pos // b, axis=1) * b + pos % b


def _dot(queries: jax.Array, points: jax.Array) -> jax.Array:
  """float32[Q, R] products of queries float32[Q, D] with rows float32[R, D], in full float32 (not TF32 on GPUs)."""
  return jnp.einsum("qd,nd->qn", queries, points, precision=PRECISION)


def _kept_top_k(queries, dots, sq, keep: placed_lib.Keep, k: int) -> tuple[jax.Array, jax.Array]:
  """Top k (float32[Q, k] negated squared distances, int32 positions) of the kept rows, from the float32 products
  dots float32[Q, R] by the GEMM identity: unscreened chunks, and the screen's fallback. Rows that may not be
  returned are at +inf: padding through its norm (a [R] vector), an exclusion, where there is one, by a mask."""
  q_sq = jnp.sum(queries * queries, axis=1)
  dist = q_sq[:, None] + jnp.where(keep.rows, sq, jnp.inf)[None, :] - 2.0 * dots
  if keep.exclude is not None:
    dist = jnp.where(keep.excluded(jnp.arange(dots.shape[1], dtype=jnp.int32)[None]), jnp.inf, dist)
  return _nearest(dist, k)


def _screened_top_k(
    queries, centred, part: placed_lib.Rows, points, start, keep: placed_lib.Keep, k: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`screen.screen_chunk`'s answer; the queries it is not sure of take the chunk's float32 product: up to
  `UNSURE_QUERIES` of them alone, more with the whole batch. Their k + `screen_lib.MARGIN` nearest by the product are
  re-measured by the difference form, so that every screened chunk's distances are of one form (a chunk's answers are
  merged with other chunks': duplicate rows in two chunks must tie). Also returns how many queries it was not sure of.
  """
  values, pos, sure = screen_lib.screen_chunk(queries, centred, part, points, start, keep, k)
  chunk, q = part.low.shape[0], queries.shape[0]

  def product(queries, keep):
    near, near_pos = _kept_top_k(
        queries, _dot(queries, lax.dynamic_slice_in_dim(points, start, chunk)), part.sq, keep, k + screen_lib.MARGIN
    )
    exact = placed_lib.difference_sq(queries, points[start + near_pos])
    dist, pos = placed_lib.ranked_top_k(jnp.where(near > -jnp.inf, exact, jnp.inf), near_pos, k)
    return -dist, pos

  def some():
    _, redo = lax.top_k((~sure).astype(jnp.float32), UNSURE_QUERIES)  # the unsure ones first, all distinct
    new_values, new_pos = product(
        queries[redo], placed_lib.Keep(keep.rows, None if keep.exclude is None else keep.exclude[redo])
    )
    unsure = ~sure[redo][:, None]  # rows of redo that were sure keep the screen's answer
    return (
        values.at[redo].set(jnp.where(unsure, new_values, values[redo])),
        pos.at[redo].set(jnp.where(unsure, new_pos, pos[redo])),
    )

  n_unsure = jnp.sum(~sure)
  whole = lambda: product(queries, keep)  # pylint: disable=unnecessary-lambda-assignment
  fallback = whole
  if q > 2 * UNSURE_QUERIES:  # else too few queries to gain from a part
    fallback = lambda: lax.cond(n_unsure <= UNSURE_QUERIES, some, whole)  # pylint: disable=unnecessary-lambda-assignment
  return *lax.cond(n_unsure == 0, lambda: (values, pos), fallback), n_unsure


def _keep(n_rows: int, exclude, offset, n_valid: int) -> placed_lib.Keep:
  """The rows (global index offset + i) that are neither padding nor the query's excluded row."""
  rows = offset + jnp.arange(n_rows, dtype=jnp.int32) < n_valid
  return placed_lib.Keep(rows, None if exclude is None else exclude - offset)


def merge(values: jax.Array, index: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """Top k of candidate lists float32/int32[S, Q, c] that cover ascending index ranges (s = 0 the lowest)."""
  s, q, c = values.shape
  values = jnp.moveaxis(values, 0, 1).reshape(q, s * c)  # side by side in index-range order: ties keep lower indices
  index = jnp.moveaxis(index, 0, 1).reshape(q, s * c)
  values, pos = lax.top_k(values, k)
  return values, jnp.take_along_axis(index, pos, axis=1)


def takes_screen(n_queries: int, chunk: int, k: int) -> bool:
  """Whether a block of n_queries queries takes the screen in chunks of `chunk` rows for a top k (when allowed): more
  than _BATCHED_QUERIES queries, and `screen.screened`."""
  return n_queries > _BATCHED_QUERIES and screen_lib.screened(chunk, min(k, chunk))


def chunked_top_k(
    queries, rows: placed_lib.Rows, centre, exclude, *, k: int, chunk: int, offset, n_valid: int, screen: bool = True
):
  """Top min(k, R) of database `placed.Rows` (R a multiple of chunk) for queries float32[Q, D]: a top k per chunk,
  then one merge.

  Args:
    queries: float32[Q, D].
    rows: the database's `placed.Rows`, made around `centre` (float32[D]).
    centre: float32[D].
    exclude: int32[Q], a row per query never returned (-1: none), or None.
    k, chunk: top k; rows per chunk.
    offset: global index of the first row.
    n_valid: rows from this global index on are padding.
    screen: whether chunks may take the screen (`screen.screened`); False: the float32 product for all.

  Returns:
    (float32[Q, k'] negated squared distances, int32[Q, k'] global indices, int32 scalar: the (query, chunk) pairs
    the screen left to the float32 product), k' = min(k, R).
  """
  n_chunks, q = rows.points.shape[0] // chunk, queries.shape[0]
  chunks = placed_lib.Rows(*(field.reshape((n_chunks, chunk) + field.shape[1:]) for field in rows))
  k_chunk = min(k, chunk)
  steps = jnp.arange(n_chunks, dtype=jnp.int32)

  def finish(j, values, pos, unsure=0):
    return values, pos.astype(jnp.int32) + offset + j * chunk, jnp.asarray(unsure, jnp.int32)

  if screen and takes_screen(q, chunk, k):
    centred = queries - centre

    # The chunks' float32 rows stay out of the loop's slices: only the few candidates are read (a gather).
    def screened(a):
      j, part = a
      keep = _keep(chunk, exclude, offset + j * chunk, n_valid)
      return finish(j, *_screened_top_k(queries, centred, part, rows.points, j * chunk, keep, k_chunk))

    return _each_chunk(screened, (steps, chunks._replace(points=steps)), k)

  def one(j, dots, sq):
    return finish(j, *_kept_top_k(queries, dots, sq, _keep(chunk, exclude, offset + j * chunk, n_valid), k_chunk))

  # lax.map keeps the chunks apart (a loop), so each product has the same shape whatever R is. A loop copies each
  # chunk out of the database before its product, though; for a few queries, where reading the rows is the cost,
  # one batched product over all chunks (a GEMM per chunk, the same shape) reads them once instead.
  if q <= _BATCHED_QUERIES:
    dots = jnp.einsum("qd,cnd->cqn", queries, chunks.points, precision=PRECISION)
    return _each_chunk(lambda a: one(*a), (steps, dots, chunks.sq), k)
  return _each_chunk(lambda a: one(a[0], _dot(queries, a[1]), a[2]), (steps, chunks.points, chunks.sq), k)


def _each_chunk(fn, xs, k: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The merged top k of fn's (values, global index, unsure count) over the chunks xs (a pytree with a leading chunk
  axis), and the counts' sum: a loop (lax.map), or fn on the one chunk, whose answer is already the top k, without one
  (XLA:CPU converts a bfloat16 array that a loop reads as a whole before it)."""
  n_chunks = jax.tree.leaves(xs)[0].shape[0]
  if n_chunks == 1:
    return fn(jax.tree.map(lambda x: x[0], xs))
  values, index, unsure = lax.map(fn, xs)
  return *merge(values, index, min(k, n_chunks * values.shape[2])), jnp.sum(unsure)
