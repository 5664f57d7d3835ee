"""The bfloat16 screen of exact k-NN: a chunk of database rows that skips most of its float32 work.

Chunks of at least `MIN_ROWS` rows are screened (`screened`). On CPUs with AMX or AVX512-BF16, and on every GPU and
TPU, a bfloat16 product with float32 accumulation runs 3-4x faster than the float32 one (64 queries x 10,048 rows x 128:
0.19 ms against 0.54 on this project's 2-core Sapphire Rapids), and the product is most of a search. So a screened
chunk takes the product of the bfloat16 roundings q_b = q + dq and d_b = d + dd and bounds its error rigorously:

  |q.d - q_b.d_b| <= |dq||d| + |q||dd| + |dq||dd| + gamma_D |q_b||d_b|   (Cauchy-Schwarz; gamma_D the float32 sum)

with |dq| computed per query and |d|, |dd| once per row when the database is placed: a lower bound L of every row's
squared distance. The chunk's rows are cut into blocks of `BLOCK`; the k + `MARGIN` blocks of smallest
minimum L are kept, the `PICKS` rows of smallest L in each are re-measured in float32 by their differences,
sum((q - d)^2) (no cancellation, so equal points are at exactly 0), and E is the k-th smallest of those. The top k of
the re-measured rows is the answer whenever every row with L <= E was re-measured: no more than the kept number of
blocks hold such a row, and no kept block holds more than its picks. Every other row is then strictly farther than E.
A query it cannot decide (many rows within the bound's width of the k-th, e.g. duplicates) takes the float32 product
of all the chunk's rows, as an unscreened chunk does (alone when a few do, with the whole batch when more than
`topk.UNSURE_QUERIES`), and its nearest by the product are re-measured by the difference form: a screened chunk's
distances are all of one form.

The screen selects with integer keys: L rounded down to a multiple of 2^5 units in the last place (still a lower bound)
with the row's place in its block in the low bits, so one integer minimum gives both a block's smallest bound and its
row, and XLA:CPU computes it in one pass over the products (its float reductions call a library that is several times
slower at these sizes). The last top k ranks the few candidates by (distance, row) directly.
"""

import functools

import jax
from jax import lax
import jax.numpy as jnp

from jembed.api import placed as placed_lib

# Chunks from this many rows are screened (below, the float32 product is cheap and the screen's extra steps are not).
# Measured on the 2-core Sapphire Rapids (AMX), 64 queries of 128-D, top 10, 2026-12-06 (ms, plain against
# screened): 3,008 rows 0.51 / 0.46, 4,032 0.59 / 0.66, 6,016 0.78 / 0.60, 10,048 1.10 / 0.73. At 1,000,000 rows
# (chunks of 16,384) the screen takes 70 against 110 ms.
MIN_ROWS = 6144
# Rows per block: a power of two up to 32 (XLA:CPU splits longer reductions into slower windows).
BLOCK = 32
# Blocks kept beyond k: the rows within the bound's width of the k-th nearest (a few for 128-D embeddings).
MARGIN = 6
# Rows re-measured per kept block.
PICKS = 2
_BIG = 1e38  # bounds are clamped here, and rows that may not be returned get it: finite, so keys stay ordered
_F32_EPS = 2.0**-24  # float32 unit roundoff


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
  the chunk is large enough, and the blocks kept are a small part of it."""
  blocked = chunk % BLOCK == 0 and chunk >= 4 * (k + MARGIN) * BLOCK
  return chunk >= MIN_ROWS and blocked and bf16_products_are_fast(jax.default_backend())


def screen_terms(queries: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
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


def bound(dots, q_sq, a, b, c: float, csq, norm, err) -> jax.Array:
  """Lower bounds of squared distances from bfloat16 products `dots` (any shape [Q, ...]), the per-query screen terms
  (float32[Q, 1, ...] broadcasting to it) and the rows' terms (broadcasting to it): see `screen_terms`."""
  return (1.0 - c) * (q_sq + csq) - a * norm - b * err - 2.0 * dots


def _to_key(x: jax.Array) -> jax.Array:
  """int32 keys in the order of float32 x (-0.0 just below +0.0)."""
  bits = lax.bitcast_convert_type(x, jnp.int32)
  return jnp.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _from_key(key: jax.Array) -> jax.Array:
  """The float32 values of `_to_key` keys."""
  return lax.bitcast_convert_type(jnp.where(key < 0, key ^ 0x7FFFFFFF, key), jnp.float32)


def screen_chunk(
    queries, centred, part: placed_lib.Rows, points, start, keep: placed_lib.Keep, k: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The screen's fast path on one chunk (see the module docstring).

  Args:
    queries: float32[Q, D].
    centred: float32[Q, D] the queries less the database's centre.
    part: the chunk's `placed.Rows` (its `points` unused: the few rows re-measured are gathered from `points`).
    points: float32[R, D] all rows of this device; the chunk starts at row `start` (int32 scalar).
    start: int32 scalar.
    keep: the rows that may be returned.
    k: top k.

  Returns:
    (float32[Q, k] negated squared distances by the difference form, int32[Q, k] positions in the chunk, bool[Q]
    `sure`: they are the query's k nearest kept rows; where False the query needs another path).
  """
  b, kept, picks = BLOCK, k + MARGIN, PICKS
  q, chunk = queries.shape[0], keep.rows.shape[0]
  low_bits = b - 1  # a key's place in its block
  q_sq, a, err_a, c = screen_terms(centred)
  dots = jnp.einsum(
      "qd,rd->qr", centred.astype(jnp.bfloat16), placed_lib.low_of(part), preferred_element_type=jnp.float32
  )
  # Apart from the product: else XLA:CPU moves the bound and its block minimum into the product's library call,
  # which then runs 2-3x slower.
  dots = lax.optimization_barrier(dots).reshape(q, chunk // b, b)
  per_query = [t[:, :, None] for t in (q_sq, a, err_a)]

  # The rows' terms by block; padding at csq = +inf, so its bound is _BIG.
  terms = [t.reshape(chunk // b, b) for t in (jnp.where(keep.rows, part.csq, jnp.inf), part.norm, part.err)]

  def keys(d, t, pos):  # d: [Q, n, b] products, t: their rows' (csq, norm, err) [..., n, b], pos: their positions
    lower = jnp.minimum(bound(d, *per_query, c, *t), _BIG)
    if keep.exclude is not None:
      lower = jnp.where(keep.excluded(pos), _BIG, lower)
    return (_to_key(lower) & ~low_bits) | jnp.arange(b, dtype=jnp.int32)  # rounded down: still a lower bound

  every = jnp.arange(chunk, dtype=jnp.int32).reshape(1, chunk // b, b)
  block_key = jnp.min(keys(dots, [t[None] for t in terms], every), axis=2)  # [Q, chunk / b]
  block_key = lax.optimization_barrier(block_key)  # one pass, read by the top k and the certificate
  _, best = lax.top_k(-_from_key(block_key), kept)  # [Q, kept] the blocks of smallest minimum
  rows = best[:, :, None] * b + jnp.arange(b, dtype=best.dtype)  # [Q, kept, b] positions in the chunk
  in_kept = keys(jnp.take_along_axis(dots, best[:, :, None], axis=1), [t[best] for t in terms], rows)
  found, rest = [], in_kept
  for _ in range(picks):  # keys are distinct within a block: each minimum is one row
    found.append(jnp.min(rest, axis=2))
    rest = jnp.where(rest == found[-1][:, :, None], jnp.iinfo(jnp.int32).max, rest)
  found = jnp.stack(found, axis=2).reshape(q, kept * picks)
  cand = jnp.repeat(best, picks, axis=1) * b + (found & low_bits)  # [Q, kept * picks] positions in the chunk
  valid = (found & ~low_bits) < (_to_key(jnp.float32(_BIG)) & ~low_bits)
  exact = jnp.where(valid, placed_lib.difference_sq(queries, points[start + cand]), jnp.inf)
  dist, pos = placed_lib.ranked_top_k(exact, cand, k)
  kth = _to_key(dist[:, k - 1]) | low_bits  # key <= kth: the rounded bound is at most E
  sure = (jnp.sum(block_key <= kth[:, None], axis=1) <= kept) & jnp.all(
      jnp.sum(in_kept <= kth[:, None, None], axis=2) <= picks, axis=1
  )
  return -dist, pos, sure
