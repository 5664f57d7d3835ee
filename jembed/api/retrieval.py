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
chunk, then a top k over the chunks' candidates. A chunk's top k first keeps the k blocks of 64 entries with the
largest maxima and selects among those only (`_select`: exact, and the same answer; XLA:CPU's top k costs a few ns an
entry, a block maximum a fraction of that). A large database is also split over a 1-D ('data',) mesh of all devices
(`jax.shard_map`), each device holding whole chunks: it merges its own chunks' candidates, and one more top k
merges the devices'. Why chunks: XLA's float32 GEMM rounds an entry differently depending on the shape of the product
it sits in (a [37, 1001] and a [37, 252] product disagree in the last bit), so one product per device would make
sharded and unsharded distances, and hence the order of near-ties, differ. Chunk and block sizes depend on N, k and
the device count, never on `sharded`, so every entry is computed by the same product on either path. Candidates are
always concatenated in ascending index ranges (chunk order, device order) and top k keeps the first of equal values,
so every merge breaks ties as one top k over all N would: sharded and unsharded results are bit-identical. The
database is padded to whole chunks; padded rows, and an optionally excluded row per query, get distance +inf and, as
k never exceeds the real candidates, are never returned.

`place` copies a database to the devices once (padded, with its squared row norms) and `search` answers queries
against it; `top_k` does both on every call, `jembed.api.index.ShapeIndex` keeps the placed database for many calls.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from jembed.api import placed as placed_lib
from jembed.api import topk
from jembed.embedding import distances as distances_lib

# The automatic choice shards the database over the devices from this many rows on (below it one device answers
# faster than the extra merge and transfers cost).
SHARD_MIN_ROWS = 65_536
# Database rows per product at most: large enough for an efficient GEMM ([block, chunk] fills the step's budget with
# ~1k queries), and one chunk covers a category's shapes (6,777 chairs) on a single device.
_CHUNK_ROWS = 16_384
# Float32 elements of one step's [block, chunk] distances or [block, candidates] merge when `block` is not given.
_BLOCK_ELEMENTS = 1 << 24
# A batch whose screen left more than this share of its (query, chunk) pairs to the float32 product turns the screen
# off for that database (`ScreenMemo`): then the screen costs more than it saves.
_UNSURE_SHARE = 0.25
# Screened searches of a database whose counts are read (`ScreenMemo`).
_SCREEN_CHECKS = 8


def check_shapes(queries: Any, database: Any, k: int | None) -> None:
  """Raises ValueError unless queries and database (arrays, or anything with their `shape`) are [Q, D] and [N, D]
  with the same D, and 1 <= k <= N."""
  q_shape, d_shape = tuple(queries.shape), tuple(database.shape)
  if len(q_shape) != 2 or len(d_shape) != 2 or q_shape[1] != d_shape[1]:
    raise ValueError(
        f"queries and database must be [Q, D] and [N, D] with the same D; got queries of shape "
        f"{q_shape} and database of shape {d_shape}"
    )
  if k is not None and not 1 <= k <= d_shape[0]:
    raise ValueError(f"k = {k} neighbours asked for, but the database has {d_shape[0]} rows (1 <= k <= N is required)")


def _finish(neg_sq: jax.Array, index: jax.Array) -> tuple[jax.Array, jax.Array]:
  return jnp.sqrt(-neg_sq), index


@functools.partial(jax.jit, static_argnames=("k", "chunk"))
def knn(
    queries: jax.Array, database: jax.Array, k: int, exclude: jax.Array | None = None, chunk: int | None = None
) -> tuple[jax.Array, jax.Array]:
  """The jittable core: the k nearest database rows of each query, on whatever device the inputs live.

  Usable inside a user's jit/vmap (k and chunk are static). Shapes and k are checked when it traces; with `exclude`
  k must also be <= N − 1 (not checked: the rows are values). A database searched many times is better held by
  `jembed.api.index.ShapeIndex`, which keeps it on the devices with its row norms.

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
  check_shapes(queries, database, k)
  n = database.shape[0]
  chunk = chunk or n
  centre = jnp.mean(database, axis=0)
  rows = placed_lib.rows_of(jnp.pad(database, ((0, -n % chunk), (0, 0))), chunk, centre)
  values, index, _ = topk.chunked_top_k(queries, rows, centre, exclude, k=k, chunk=chunk, offset=0, n_valid=n)
  return _finish(values, index)


@functools.partial(jax.jit, static_argnames=("k", "chunk", "n_valid", "screen"))
def _placed_knn(queries, rows: placed_lib.Rows, centre, exclude, *, k: int, chunk: int, n_valid: int, screen: bool):
  """`knn` on a database placed on one device by `place` (padded to whole chunks, its `placed.Rows` precomputed),
  and the count of queries the screen left to the float32 product (`topk.chunked_top_k`)."""
  values, index, unsure = topk.chunked_top_k(
      queries, rows, centre, exclude, k=k, chunk=chunk, offset=0, n_valid=n_valid, screen=screen
  )
  return *_finish(values, index), unsure


@functools.partial(jax.jit, static_argnames=("k", "chunk", "n_valid", "mesh", "screen"))
def _sharded_knn(
    queries,
    rows: placed_lib.Rows,
    centre,
    exclude,
    *,
    k: int,
    chunk: int,
    n_valid: int,
    mesh: jax.sharding.Mesh,
    screen: bool,
):
  """`_placed_knn` with the padded database's `placed.Rows` (float32[devices · R, D] points) split into equal row
  slices over `mesh`'s 'data' axis."""
  per_device = rows.points.shape[0] // mesh.size

  def local(q, r, c, ex):
    offset = jax.lax.axis_index("data").astype(jnp.int32) * per_device
    values, index, unsure = topk.chunked_top_k(
        q, r, c, ex, k=k, chunk=chunk, offset=offset, n_valid=n_valid, screen=screen
    )
    return values[None], index[None], unsure[None]

  exclude_spec = None if exclude is None else P()
  row_specs = placed_lib.Rows(*(P("data"),) * len(placed_lib.Rows._fields))
  *candidates, unsure = jax.shard_map(
      local, mesh=mesh, in_specs=(P(), row_specs, P(), exclude_spec), out_specs=(P("data"),) * 3
  )(queries, rows, centre, exclude)
  # The merge needs every device's candidates in one place (a top k over a sharded axis is refused).
  values, index = topk.merge(*jax.sharding.reshard(candidates, NamedSharding(mesh, P())), k)
  return *_finish(values, index), jnp.sum(unsure)


@functools.partial(jax.jit, static_argnames=("chunk", "mesh"))
def _placed_rows(
    database: jax.Array, centre: jax.Array, *, chunk: int, mesh: jax.sharding.Mesh | None
) -> placed_lib.Rows:
  """`placed.Rows` of a placed database around centre float32[D] (split over `mesh`, or on one device when None), each
  device its own rows, in the same [chunk, D] programs."""
  rows = lambda points, c: placed_lib.rows_of(points, chunk, c)  # pylint: disable=unnecessary-lambda-assignment
  if mesh is None:
    return rows(database, centre)
  row_specs = placed_lib.Rows(*(P("data"),) * len(placed_lib.Rows._fields))
  return jax.shard_map(rows, mesh=mesh, in_specs=(P("data"), P()), out_specs=row_specs)(database, centre)


def _chunk_rows(n: int) -> int:
  """Rows per database chunk: at most _CHUNK_ROWS, a multiple of 8 (of topk.SELECT_BLOCK when that is a small part of
  it, for `topk.select`), and a chunk count that divides evenly over all devices, so the padding is a few rows. A
  function of N and the device count, not of `sharded`."""
  devices = jax.local_device_count()
  count = -(-n // _CHUNK_ROWS // devices) * devices
  per_chunk = -(-n // count)
  multiple = topk.SELECT_BLOCK if per_chunk >= 16 * topk.SELECT_BLOCK else 8
  return -(-per_chunk // multiple) * multiple


def _as_float32(x: Any) -> Any:
  """jax arrays stay where they are (cast on device); anything else becomes a float32 numpy array."""
  return x.astype(jnp.float32) if isinstance(x, jax.Array) else np.asarray(x, np.float32)


def query_blocks(n: int, per_query: int, block: int | None = None) -> tuple[int, int]:
  """(size, count): `count` equal blocks of at most `block` queries covering n (the last one padded); by default as
  many queries as keep `per_query` float32 elements each at _BLOCK_ELEMENTS (64 MB) a block. One block is rounded up
  (to a power of two up to 64 rows, then to a multiple of 64), so that batches of nearby sizes share one program."""
  block = block or max(1, _BLOCK_ELEMENTS // max(per_query, 1))
  count = -(-n // max(1, min(block, n)))
  size = -(-n // count)
  if count == 1:
    size = 1 << (size - 1).bit_length() if size <= 64 else -(-size // 64) * 64
  return size, count


def _padded_rows(x: Any, n: int, fill: float | int = 0) -> Any:
  """x with rows appended up to n (numpy on the host, jnp for device arrays)."""
  if x.shape[0] == n:
    return x
  widths = ((0, n - x.shape[0]),) + ((0, 0),) * (x.ndim - 1)
  pad = jnp.pad if isinstance(x, jax.Array) else np.pad
  return pad(x, widths, constant_values=fill)


def _exclusions(exclude: Any, n_queries: int, n: int, k: int) -> np.ndarray | None:
  """int32[Q] rows to exclude (-1: none), checked against k; None when there are none."""
  if exclude is None:
    return None
  exclude = np.asarray(exclude, np.int32).reshape(-1)
  if exclude.shape[0] != n_queries:
    raise ValueError(f"exclude has {exclude.shape[0]} entries for {n_queries} queries")
  if k > n - 1 and np.any((exclude >= 0) & (exclude < n)):
    raise ValueError(f"k = {k} neighbours asked for, but excluding a row leaves only {n - 1} candidates")
  return exclude


class ScreenMemo:
  """Whether searches of one placed database take the bfloat16 screen (`screen`): on until one of its first
  `_SCREEN_CHECKS` screened searches leaves more than `_UNSURE_SHARE` of its (query, chunk) pairs to the float32
  product, then off for that database. Data too crowded for the bound (tight clusters, many duplicates) would pay the
  screen and the product on every search: 64 queries among 10,000 points in clusters of 50 took 2.1 ms screened
  against 1.0 plain. Searches only ever turn it off, so concurrent ones need no lock."""

  def __init__(self):
    self.on = True
    self.checks_left = _SCREEN_CHECKS


class Placed(NamedTuple):
  """A database on the devices, ready to search (`place`, `search`).

  Attributes:
    centre: float32[D] the mean of the N rows, replicated: the screen's origin (`screen`).
    rows: `placed.Rows` of the points float32[n_pad, D] (zero rows past N; their norms, bfloat16 roundings and
      rounding errors), split into equal row slices over `mesh` when sharded.
    shape: (N, D) of the database.
    chunk: rows per product (`_chunk_rows(N)`).
    mesh: the ('data',) mesh the rows live on (one device when not sharded).
    sharded: whether the rows are split over the mesh.
    memo: whether its searches take the screen (`ScreenMemo`).
  """

  rows: placed_lib.Rows
  centre: jax.Array
  shape: tuple[int, int]
  chunk: int
  mesh: jax.sharding.Mesh
  sharded: bool
  memo: ScreenMemo

  @property
  def points(self) -> jax.Array:
    """float32[n_pad, D] the placed points."""
    return self.rows.points


def place(database: Any, sharded: bool | None = None) -> Placed:
  """Copies database float[N, D] (numpy or jax) to the devices once, padded to whole chunks, with its row norms.

  Args:
    database: float[N, D] points (cast to float32).
    sharded: split the rows over all devices; None: when N >= SHARD_MIN_ROWS and there is more than one device.
  """
  database = _as_float32(database)
  if database.ndim != 2:
    raise ValueError(f"the database must be [N, D]; got shape {tuple(database.shape)}")
  n = database.shape[0]
  if sharded is None:
    sharded = n >= SHARD_MIN_ROWS and jax.local_device_count() > 1
  mesh = distances_lib.data_mesh(sharded)
  chunk = _chunk_rows(max(n, 1))
  # Chunks depend on N and the device count, never on `sharded`: the same products on either path.
  n_pad = -(-max(n, 1) // (chunk * mesh.size)) * chunk * mesh.size
  # One device: a plain single-device array (a 1-device mesh's sharding would follow it into every program).
  points = jax.device_put(
      _padded_rows(database, n_pad), NamedSharding(mesh, P("data")) if sharded else mesh.devices.flat[0]
  )
  centre = distances_lib.mean_row(np.asarray(database), 1 << 16).astype(np.float32)
  centre = jax.device_put(centre, NamedSharding(mesh, P()) if sharded else mesh.devices.flat[0])
  rows = _placed_rows(points, centre, chunk=chunk, mesh=mesh if sharded else None)
  return Placed(rows, centre, (n, database.shape[1]), chunk, mesh, sharded, ScreenMemo())


def search(
    placed: Placed, queries: Any, k: int, *, block: int | None = None, exclude: Any = None
) -> tuple[np.ndarray, np.ndarray]:
  """`top_k` against a database placed by `place`: one jitted program per block of queries (see `top_k`)."""
  queries = _as_float32(queries)
  check_shapes(queries, placed, k)
  n_queries, n = queries.shape[0], placed.shape[0]
  exclude = _exclusions(exclude, n_queries, n, k)
  if n_queries == 0:
    return np.zeros((0, k), np.float32), np.zeros((0, k), np.int32)
  chunk = placed.chunk
  candidates = -(-n // chunk) * min(k, chunk)
  size, count = query_blocks(n_queries, max(chunk, candidates), block)
  queries = _padded_rows(queries, size * count)
  if exclude is not None:
    exclude = _padded_rows(exclude, size * count, -1)
  screen = placed.memo.on
  if placed.sharded:
    step = functools.partial(_sharded_knn, k=k, chunk=chunk, n_valid=n, mesh=placed.mesh, screen=screen)
  else:
    step = functools.partial(_placed_knn, k=k, chunk=chunk, n_valid=n, screen=screen)
  # Every block is dispatched before any result is read back: the device works while the host waits.
  results = [
      step(queries[i : i + size], placed.rows, placed.centre, None if exclude is None else exclude[i : i + size])
      for i in range(0, size * count, size)
  ]
  # The first screened searches decide (reading the count costs ~30 µs a call).
  if screen and placed.memo.checks_left > 0 and topk.takes_screen(size, chunk, k):
    placed.memo.checks_left -= 1
    pairs = size * count * (placed.points.shape[0] // chunk)
    if sum(int(unsure) for _, _, unsure in results) > _UNSURE_SHARE * pairs:
      placed.memo.on = False
  if count == 1:
    return tuple(np.array(np.asarray(r)[:n_queries]) for r in results[0][:2])
  dist = np.concatenate([np.asarray(d) for d, _, _ in results])[:n_queries]
  index = np.concatenate([np.asarray(i) for _, i, _ in results])[:n_queries]
  return dist, index


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

  Copies the database to the devices on every call; `jembed.api.index.ShapeIndex` keeps it there for many calls.

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
  check_shapes(queries, database, k)
  return search(place(database, sharded), queries, k, block=block, exclude=exclude)


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
  check_shapes(a, b, None)
  if same:
    return distances_lib.pairwise_distances(a, block_size=block, progress=False)
  return distances_lib.cross_distances(a, b, block_size=block, progress=False)
