"""Database rows as the exact k-NN kernels read them (`Rows`, made once when a database is placed), which rows each
query may get (`Keep`), and the two small steps every path shares: the difference-form distance of a few gathered rows
and the ranking of a few candidates. `topk` (the chunk loop, the float32 product, the merges) and `screen` (the
bfloat16 screen) build on it.
"""

from typing import NamedTuple

import jax
from jax import lax
import jax.numpy as jnp


class Rows(NamedTuple):
  """Database rows as the kernels read them; every field laid out along the same rows R.

  Attributes:
    points: float32[R, D].
    sq: float32[R] squared norms.
    csq: float32[R] squared norms of the points less the database's centre c (the screen's coordinates: near the
      origin, so the bound, which grows with |q - c| |d - c|, stays small next to the distances).
    low: (points - c) rounded to bfloat16 (the screen's product): bfloat16[R, D] when R is one chunk, else uint16[R, D]
      its bits, because XLA:CPU converts a bfloat16 array that a loop reads to float32 as a whole before the loop (10 ms
      at 100k rows). `low_of` reads either.
    norm: float32[R] |points - c|.
    err: float32[R] |low - (points - c)|.
  """

  points: jax.Array
  sq: jax.Array
  csq: jax.Array
  low: jax.Array
  norm: jax.Array
  err: jax.Array


class Keep(NamedTuple):
  """The rows of a chunk of C rows that each of Q queries may get, as the kernels read it: padding through the rows'
  norms (+inf), an exclusion by an element-wise test where there is one (a [Q, C] mask made once would be one more
  pass over memory).

  Attributes:
    rows: bool[C] rows that are not padding.
    exclude: int32[Q] a position in the chunk never returned to the query (any other value, e.g. negative: none), or
      None.
  """

  rows: jax.Array
  exclude: jax.Array | None

  def excluded(self, pos: jax.Array) -> jax.Array | bool:
    """bool[Q, ...]: whether positions int32[Q or 1, ...] are the query's excluded row (False without exclusions);
    padding is the caller's (`rows`)."""
    if self.exclude is None:
      return False
    return pos == self.exclude.reshape((-1,) + (1,) * (pos.ndim - 1))


def rows_of(database: jax.Array, chunk: int, centre: jax.Array) -> Rows:
  """`Rows` of database float32[R, D] (R a multiple of chunk) around centre float32[D], chunk by chunk: every value
  comes from the same [chunk, D] program whatever R is (and so whichever device holds the row)."""
  n_chunks = database.shape[0] // chunk

  def one(rows):
    centred = rows - centre
    low = centred.astype(jnp.bfloat16)
    err = low.astype(jnp.float32) - centred
    csq = jnp.sum(centred * centred, axis=1)
    low = low if n_chunks == 1 else lax.bitcast_convert_type(low, jnp.uint16)
    return jnp.sum(rows * rows, axis=1), csq, low, jnp.sqrt(csq), jnp.sqrt(jnp.sum(err * err, axis=1))

  sq, csq, low, norm, err = lax.map(one, database.reshape(n_chunks, chunk, -1))
  flat = lambda x: x.reshape((database.shape[0],) + x.shape[2:])  # pylint: disable=unnecessary-lambda-assignment
  return Rows(database, flat(sq), flat(csq), flat(low), flat(norm), flat(err))


def low_of(rows: Rows) -> jax.Array:
  """bfloat16[R, D] the rows' `low`, whichever way it is stored (a bitcast, no copy of the values)."""
  return rows.low if rows.low.dtype == jnp.bfloat16 else lax.bitcast_convert_type(rows.low, jnp.bfloat16)


def difference_sq(queries: jax.Array, rows: jax.Array) -> jax.Array:
  """float32[Q, M] sum((q - r)^2) of queries float32[Q, D] and rows float32[Q, M, D] (each query its own rows)."""
  diff = queries[:, None, :] - rows
  return jnp.sum(diff * diff, axis=2)


def ranked_top_k(dist: jax.Array, rows: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """The k smallest of dist float32[Q, C] with their rows int32[Q, C] (distinct in each query), ascending, ties by
  the lower row: each candidate's rank is the number of candidates before it, and rank r goes to column r. For a few
  dozen candidates this is a few element-wise passes, where XLA:CPU's top k would sort them by row first."""
  before = (dist[:, None, :] < dist[:, :, None]) | (
      (dist[:, None, :] == dist[:, :, None]) & (rows[:, None, :] < rows[:, :, None])
  )
  hit = jnp.sum(before, axis=2)[:, None, :] == jnp.arange(k)[None, :, None]  # [Q, k, C]: one candidate per column
  return jnp.sum(jnp.where(hit, dist[:, None, :], 0.0), axis=2), jnp.sum(jnp.where(hit, rows[:, None, :], 0), axis=2)
