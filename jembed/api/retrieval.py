"""Exact nearest neighbours by Euclidean distance in the joint embedding space.

The paper retrieves by brute force (pipeline §0): a photo's point from the CNN against every shape's Sammon point,
or against other photos' points. With a 128-D space and at most a few hundred thousand shapes, exact search is a few
matrix products per block of queries, cheaper than building any index, and it keeps the evaluation exact.

Distances use the GEMM identity ‖q − d‖² = ‖q‖² + ‖d‖² − 2 q·d, clamped at 0 (rounding can make it slightly
negative), square-rooted only for the k survivors. Selection is `jax.lax.top_k` on the negated squared distances,
which puts the lower index first among equal values: results are ordered by ascending distance, ties by ascending
database index (the order of a stable argsort). The identity loses digits when ‖q − d‖² is small next to
‖q‖² + ‖d‖²; the joint space is centred near the origin (the Sammon start is centred), where this only matters for
near-duplicate points. Centre both sides on a common point first if they sit far from the origin. Inputs must be
finite.

Layout: queries go through in blocks, the database in chunks of rows: one [block, chunk] product and one top k per
chunk, then a top k over the chunks' candidates. A large database is also split over a 1-D ('data',) mesh of all
devices (`jax.shard_map`), each device holding whole chunks: it merges its own chunks' candidates, and one more top k
merges the devices'. Why chunks: XLA's float32 GEMM rounds an entry differently depending on the shape of the product
it sits in (a [37, 1001] and a [37, 252] product disagree in the last bit), so one product per device would make
sharded and unsharded distances, and hence the order of near-ties, differ. Chunk and block sizes depend on N, k and
the device count, never on `sharded`, so every entry is computed by the same product on either path. Candidates are
always concatenated in ascending index ranges (chunk order, device order) and top k keeps the first of equal values,
so every merge breaks ties as one top k over all N would: sharded and unsharded results are bit-identical. The
database is padded to whole chunks; padded rows, and an optionally excluded row per query, get distance +inf and, as
k never exceeds the real candidates, are never returned.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from jembed.embedding import distances as distances_lib

# The automatic choice shards the database over the devices from this many rows on (below it one device answers
# faster than the extra merge and transfers cost).
SHARD_MIN_ROWS = 65_536
# Database rows per product at most: large enough for an efficient GEMM ([block, chunk] fills the step's budget with
# ~1k queries), and one chunk covers a category's shapes (6,777 chairs) on a single device.
_CHUNK_ROWS = 16_384
# Float32 elements of one step's [block, chunk] distances or [block, candidates] merge when `block` is not given.
_BLOCK_ELEMENTS = 1 << 24
_PRECISION = jax.lax.Precision.HIGHEST  # on GPUs the default float32 product is TF32 (~1e-3 relative error)


def _check(queries: Any, database: Any, k: int | None) -> None:
  if queries.ndim != 2 or database.ndim != 2 or queries.shape[1] != database.shape[1]:
    raise ValueError(
        f"queries and database must be [Q, D] and [N, D] with the same D; got queries of shape "
        f"{tuple(queries.shape)} and database of shape {tuple(database.shape)}"
    )
  if k is not None and not 1 <= k <= database.shape[0]:
    raise ValueError(
        f"k = {k} neighbours asked for, but the database has {database.shape[0]} rows " f"(1 <= k <= N is required)"
    )


def _squared_l2(queries: jax.Array, database: jax.Array) -> jax.Array:
  """float32[Q, N] squared distances by the GEMM identity, clamped at +0.0 (never -0.0, so equal zeros tie)."""
  q_sq = jnp.sum(queries * queries, axis=1)
  d_sq = jnp.sum(database * database, axis=1)
  dots = jnp.einsum("qd,nd->qn", queries, database, precision=_PRECISION)
  sq = q_sq[:, None] + d_sq[None, :] - 2.0 * dots
  return jnp.where(sq > 0.0, sq, 0.0)


def _slice_top_k(queries, rows, exclude, *, k: int, offset, n_valid: int):
  """Top k (largest negated squared distance) of database rows whose first has global index `offset`.

  Returns (float32[Q, k] negated squared distances, int32[Q, k] global indices). Rows at global index >= n_valid
  (padding) and each query's `exclude` row get -inf.
  """
  neg = -_squared_l2(queries, rows)
  index = offset + jnp.arange(rows.shape[0], dtype=jnp.int32)
  keep = (index[None, :] < n_valid) & (index[None, :] != exclude[:, None])
  values, pos = jax.lax.top_k(jnp.where(keep, neg, -jnp.inf), k)
  return values, pos.astype(jnp.int32) + offset


def _merge(values: jax.Array, index: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """Top k of candidate lists float32/int32[S, Q, c] that cover ascending index ranges (s = 0 the lowest)."""
  s, q, c = values.shape
  values = jnp.moveaxis(values, 0, 1).reshape(q, s * c)  # side by side in index-range order: ties keep lower indices
  index = jnp.moveaxis(index, 0, 1).reshape(q, s * c)
  values, pos = jax.lax.top_k(values, k)
  return values, jnp.take_along_axis(index, pos, axis=1)


def _chunked_top_k(queries, database, exclude, *, k: int, chunk: int, offset, n_valid: int):
  """Top min(k, R) of database float32[R, D] (R a multiple of chunk), one [Q, chunk] product per chunk."""
  n_chunks = database.shape[0] // chunk
  k_chunk = min(k, chunk)

  def one(args):
    j, rows = args
    return _slice_top_k(queries, rows, exclude, k=k_chunk, offset=offset + j * chunk, n_valid=n_valid)

  # lax.map keeps the chunks apart (a loop), so each product has the same shape whatever R is.
  values, index = jax.lax.map(
      one, (jnp.arange(n_chunks, dtype=jnp.int32), database.reshape(n_chunks, chunk, database.shape[1]))
  )
  return _merge(values, index, min(k, database.shape[0]))


def _finish(neg_sq: jax.Array, index: jax.Array) -> tuple[jax.Array, jax.Array]:
  return jnp.sqrt(-neg_sq), index


@functools.partial(jax.jit, static_argnames=("k", "chunk"))
def knn(
    queries: jax.Array, database: jax.Array, k: int, exclude: jax.Array | None = None, chunk: int | None = None
) -> tuple[jax.Array, jax.Array]:
  """The jittable core: the k nearest database rows of each query, on whatever device the inputs live.

  Usable inside a user's jit/vmap (k and chunk are static). Shapes and k are checked when it traces; with `exclude`
  k must also be <= N − 1 (not checked: the rows are values).

  Args:
    queries: float32[Q, D].
    database: float32[N, D].
    k: neighbours per query.
    exclude: optional int32[Q], one database row per query never to return (-1: none), e.g. the query itself.
    chunk: database rows per product (the database is padded to whole chunks); None: all N in one product.

  Returns:
    (float32[Q, k] distances ascending, int32[Q, k] database indices); ties by ascending index.
  """
  queries, database = jnp.asarray(queries, jnp.float32), jnp.asarray(database, jnp.float32)
  _check(queries, database, k)
  n = database.shape[0]
  if exclude is None:
    exclude = jnp.full((queries.shape[0],), -1, jnp.int32)
  chunk = chunk or n
  database = jnp.pad(database, ((0, -n % chunk), (0, 0)))
  return _finish(*_chunked_top_k(queries, database, exclude, k=k, chunk=chunk, offset=0, n_valid=n))


@functools.partial(jax.jit, static_argnames=("k", "chunk", "n_valid", "mesh"))
def _sharded_knn(queries, database, exclude, *, k: int, chunk: int, n_valid: int, mesh: jax.sharding.Mesh):
  """`knn` with the padded database float32[devices · R, D] split into equal row slices over `mesh`'s 'data' axis."""
  rows = database.shape[0] // mesh.size

  def local(q, d, ex):
    offset = jax.lax.axis_index("data").astype(jnp.int32) * rows
    values, index = _chunked_top_k(q, d, ex, k=k, chunk=chunk, offset=offset, n_valid=n_valid)
    return values[None], index[None]

  candidates = jax.shard_map(local, mesh=mesh, in_specs=(P(), P("data"), P()), out_specs=(P("data"), P("data")))(
      queries, database, exclude
  )
  # The merge needs every device's candidates in one place (a top k over a sharded axis is refused).
  return _finish(*_merge(*jax.sharding.reshard(candidates, NamedSharding(mesh, P())), k))


def _chunk_rows(n: int) -> int:
  """Rows per database chunk: at most _CHUNK_ROWS, a multiple of 8, and a chunk count that divides evenly over all
  devices, so the padding is a few rows. A function of N and the device count, not of `sharded`."""
  devices = jax.local_device_count()
  count = -(-n // _CHUNK_ROWS // devices) * devices
  per_chunk = -(-n // count)
  return -(-per_chunk // 8) * 8


def _as_float32(x: Any) -> Any:
  """jax arrays stay where they are (cast on device); anything else becomes a float32 numpy array."""
  return x.astype(jnp.float32) if isinstance(x, jax.Array) else np.asarray(x, np.float32)


def _blocks(n: int, block: int) -> tuple[int, int]:
  """(block, count): `count` equal blocks of at most `block` rows covering n (the last one padded)."""
  count = -(-n // max(1, min(block, n)))
  return -(-n // count), count


def _padded_rows(x: Any, n: int, fill: float | int = 0) -> Any:
  """x with rows appended up to n (numpy on the host, jnp for device arrays)."""
  if x.shape[0] == n:
    return x
  widths = ((0, n - x.shape[0]),) + ((0, 0),) * (x.ndim - 1)
  pad = jnp.pad if isinstance(x, jax.Array) else np.pad
  return pad(x, widths, constant_values=fill)


def _exclusions(exclude: Any, n_queries: int, n: int, k: int) -> np.ndarray:
  """int32[Q] rows to exclude (-1: none), checked against k."""
  if exclude is None:
    return np.full(n_queries, -1, np.int32)
  exclude = np.asarray(exclude, np.int32).reshape(-1)
  if exclude.shape[0] != n_queries:
    raise ValueError(f"exclude has {exclude.shape[0]} entries for {n_queries} queries")
  if k > n - 1 and np.any((exclude >= 0) & (exclude < n)):
    raise ValueError(f"k = {k} neighbours asked for, but excluding a row leaves only {n - 1} candidates")
  return exclude


def top_k(
    queries: Any,
    database: Any,
    k: int,
    *,
    block: int | None = None,
    sharded: bool | None = None,
    exclude: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
  """The k nearest database rows of every query by L2 distance, exactly.

  Args:
    queries: float[Q, D] points (numpy or jax; cast to float32).
    database: float[N, D] points.
    k: neighbours per query, 1 <= k <= N (N − 1 when a query excludes a row).
    block: queries per step; by default as many as keep a step's distances and candidates at 64 MB. The last bit of a
      distance may depend on it (GEMM shapes), never on `sharded`.
    sharded: split the database over all devices; None: when N >= SHARD_MIN_ROWS and there is more than one device.
    exclude: optional int[Q], a database row per query that is never returned (-1: none).

  Returns:
    (float32[Q, k] distances, ascending; int32[Q, k] database indices), numpy arrays. Equal distances come in
    ascending index order (the order of a stable argsort), sharded or not.

  Raises:
    ValueError: inputs not [Q, D] and [N, D] with the same D (the message names both shapes), or k out of range.
  """
  queries, database = _as_float32(queries), _as_float32(database)
  _check(queries, database, k)
  n_queries, n = queries.shape[0], database.shape[0]
  exclude = _exclusions(exclude, n_queries, n, k)
  if n_queries == 0:
    return np.zeros((0, k), np.float32), np.zeros((0, k), np.int32)
  if sharded is None:
    sharded = n >= SHARD_MIN_ROWS and jax.local_device_count() > 1
  mesh = distances_lib.data_mesh(sharded)
  chunk = _chunk_rows(n)
  # Chunk and block depend on N, k and the device count, never on `sharded`: the same products on either path.
  candidates = -(-n // chunk) * min(k, chunk)
  size, count = _blocks(n_queries, block or max(1, _BLOCK_ELEMENTS // max(chunk, candidates)))
  queries = _padded_rows(queries, size * count)
  exclude = _padded_rows(exclude, size * count, -1)
  if sharded:
    n_pad = -(-n // (chunk * mesh.size)) * chunk * mesh.size
    database = jax.device_put(_padded_rows(database, n_pad), NamedSharding(mesh, P("data")))
    step = functools.partial(_sharded_knn, k=k, chunk=chunk, n_valid=n, mesh=mesh)
  else:
    database = jax.device_put(database, mesh.devices.flat[0])
    step = functools.partial(knn, k=k, chunk=chunk)
  # Every block is dispatched before any result is read back: the device works while the host waits.
  results = [step(queries[i : i + size], database, exclude=exclude[i : i + size]) for i in range(0, size * count, size)]
  dist = np.concatenate([np.asarray(d) for d, _ in results])[:n_queries]
  index = np.concatenate([np.asarray(i) for _, i in results])[:n_queries]
  return dist, index


def image_to_shape(image_points: Any, shape_points: Any, k: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:
  """For each photo's point float[Q, D], its k nearest shapes among float[S, D] (paper §4.2); `top_k` kwargs."""
  return top_k(image_points, shape_points, k, **kwargs)


def shape_to_image(shape_points: Any, image_points: Any, k: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:
  """For each shape's point float[S, D], its k nearest photos among float[Q, D] (paper §4.3); `top_k` kwargs."""
  return top_k(shape_points, image_points, k, **kwargs)


def image_to_image(image_points: Any, k: int, exclude_self: bool = False, **kwargs) -> tuple[np.ndarray, np.ndarray]:
  """For each photo's point float[Q, D], its k nearest photos among the same Q (paper §4.1); `top_k` kwargs.

  With `exclude_self` a query's own row is never returned (not even when duplicates tie with it at distance 0), and
  k <= Q − 1.
  """
  exclude = np.arange(len(image_points), dtype=np.int32) if exclude_self else None
  return top_k(image_points, image_points, k, exclude=exclude, **kwargs)


def pairwise_l2(a: Any, b: Any, *, block: int | None = None) -> np.ndarray:
  """All Euclidean distances between the rows of a and b, like `scipy.spatial.distance.cdist(a, b)` in float32.

  The evaluation's full distance matrices (for ranks among all candidates), computed by the shape side's blockwise
  kernel (`embedding.distances`): sharded over the devices, the points centred and near-duplicate pairs recomputed
  in float64, so equal points come out at exactly 0. For `pairwise_l2(x, x)` (the same object twice) the matrix is
  `pdist`'s: symmetric with an exact zero diagonal, so the paper's image -> image protocol ranks each query first
  among its own results.

  Args:
    a: float[A, D] points (numpy or jax).
    b: float[B, D] points.
    block: rows per tile; by default from the distances module's memory budget.

  Returns:
    float32[A, B] numpy array.
  """
  same = a is b
  a = np.asarray(a, np.float32)
  b = a if same else np.asarray(b, np.float32)
  _check(a, b, None)
  if same:
    return distances_lib.pairwise_distances(a, block_size=block, progress=False)
  return distances_lib.cross_distances(a, b, block_size=block, progress=False)
