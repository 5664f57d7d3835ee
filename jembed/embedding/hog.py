"""Histogram-of-oriented-gradients descriptors in JAX: the paper's HoG pyramid and skimage's Dalal-Triggs HoG.

Two variants share the gradient, orientation-voting and cell-pooling code and differ only where their definitions do:

* `paper` is Piotr Dollar's toolbox `hog(single(I))` as JointEmbedding ran it: its setup script clones
  pdollar/toolbox master, whose `private/gradientMex.cpp` is v3.30 (see also `channels/hog.m`, `gradientMag.m`,
  `gradientHist.m`), and `extract_pyramid_hog.m` calls it with the defaults binSize 8, nOrients 9, clip 0.2:
    - gradients: centred differences halved, one-sided differences at the image border (`grad1`);
    - unsigned orientation in [0, pi), magnitude without normalization (`gradMag` with normRad 0);
    - trilinear voting (`gradHist` with softBin 1): linear between the two nearest of 9 orientation bins and
      bilinear between the 4 nearest cell centres, magnitude times 1/binSize^2; pixels past floor(n/8)*8 are dropped
      (their gradient is still computed from the full image); border cells are multiplied by 8/7 per border they
      touch, since they only collect 7/8 of an interior cell's weight;
    - each cell divided by the L2 norm of each of the 4 2x2-cell blocks containing it (eps = 1e-4/4/8^4), giving
      4 * 9 = 36 channels clipped at 0.2; a border cell reuses the nearest existing block (`hogNormMatrix` pads the
      block-norm grid by edge replication). Toolbox versions before 3.23 instead left the missing blocks' channels
      zero and had no 8/7 rescale; that is not what a 2015 clone gives;
    - output [h/8, w/8, 36] with channel = 9 * block + orientation; block 0..3 is the block whose top-left cell is
      (i, j), (i-1, j), (i, j-1), (i-1, j-1); flattened like MATLAB's column-major `h(:)` (row index fastest, then
      column, then channel).
  Deliberately not reproduced: `gradMag`'s SSE approximations (reciprocal square roots, ~4e-4 relative) and its
  acos lookup table (cosine truncated to 1e-4). We use sqrt and an atan accurate to 3e-7 rad, i.e. what the toolbox
  approximates (compare the example in `gradientMag.m`).
* `dalal` equals `skimage.feature.hog(img, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2),
  block_norm='L2-Hys', feature_vector=True)`: full (unhalved) centred differences with zero gradient on the border
  rows/columns, hard orientation and spatial binning, mean magnitude per cell (sum / 64), L2-Hys over 2x2-cell
  blocks (eps 1e-5), output [blocks_row, blocks_col, 2, 2, 9] in C order. It is the external oracle for the shared
  code (tests/embedding/test_hog.py).

`hog_pyramid` and `lfd_descriptor` give the paper's shape descriptor: HoG of the 120x120 view, of `imresize(I, 0.5)`
and of `imresize` of that again (MATLAB uint8 bicubic, see resize.py), 8100 + 1764 + 324 = 10,188 values per view and
20 views per shape.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jembed.embedding import resize

PYRAMID_SIZES = (120, 60, 30)
PYRAMID_DIM = 10188  # 15*15*36 + 7*7*36 + 3*3*36
LFD_VIEWS = 20
LFD_DIM = LFD_VIEWS * PYRAMID_DIM  # 203,760
VARIANTS = ("paper", "dalal")

_PAPER_CLIP = 0.2
_DALAL_CLIP = 0.2
_DALAL_EPS = 1e-5


# ----------------------------------------------------------------------------------------------------------------------
# Shared pieces: interior differences, unsigned orientation, orientation votes, separable cell pooling.


def _interior_differences(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Full centred differences I[y+1] - I[y-1] and I[x+1] - I[x-1] on the interior.

  Args:
    images: float32[B, H, W].

  Returns:
    (d_row float32[B, H-2, W], d_col float32[B, H, W-2]).
  """
  return images[:, 2:, :] - images[:, :-2, :], images[:, :, 2:] - images[:, :, :-2]


def _unsigned_orientation(g_row: jax.Array, g_col: jax.Array) -> jax.Array:
  """Unsigned gradient orientation atan2(g_row, g_col) mod pi, in [0, pi] (pi only for g_row = 0 > g_col).

  Rows point down, as in both skimage (`arctan2(g_row, g_col) % 180`) and the toolbox (`acos` of the column
  gradient with the sign of the row gradient). XLA's CPU atan2 is a scalar libm call (~13x slower than this whole
  function on a batch of views), so this is a vectorizable atan: fold the vector into the upper half plane, reduce
  to t = min/max in [0, 1], then to |u| <= tan(pi/8) with atan(t) = pi/4 + atan((t-1)/(t+1)), and evaluate
  Cephes' atanf polynomial there. Error <= 3e-7 rad against float64 (tests/embedding/test_hog.py).

  Args:
    g_row, g_col: float32[...] gradients along rows (y) and columns (x).

  Returns:
    float32[...] angle in radians.
  """
  y = jnp.abs(g_row)
  x = jnp.where(g_row < 0, -g_col, g_col)
  ax = jnp.abs(x)
  big, small = jnp.maximum(ax, y), jnp.minimum(ax, y)
  t = small / jnp.where(big > 0, big, 1.0)
  reduced = t > 0.41421356
  u = jnp.where(reduced, (t - 1.0) / (t + 1.0), t)
  z = u * u
  a = (((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1) * z * u + u
  a = jnp.where(reduced, a + np.float32(np.pi / 4), a)
  a = jnp.where(y > ax, np.float32(np.pi / 2) - a, a)
  return jnp.where(x < 0, np.float32(np.pi) - a, a)


def _orientation_bins(g_row: jax.Array, g_col: jax.Array, orientations: int) -> tuple[jax.Array, jax.Array]:
  """Orientation bin of each gradient and the fraction towards the next bin.

  o = theta * orientations / pi; bin = floor(o) (skimage's `deg // (180 / n)`, the toolbox's `(int) o`), frac = o - bin.
  theta == pi wraps to bin 0 as `% 180` does in skimage (the toolbox gives bin n-1 with frac ~1, i.e. the same votes).
  Bins stay float32: integer casts and `%` do not vectorize on CPU and cost 3x the atan.

  Returns:
    (bin float32[...] with integral values in [0, orientations), frac float32[...]), shaped like the inputs.
  """
  o = _unsigned_orientation(g_row, g_col) * np.float32(orientations / np.pi)
  lo = jnp.floor(o)
  return jnp.where(lo >= orientations, lo - orientations, lo), o - lo


def _orientation_votes(magnitude: jax.Array, bin0: jax.Array, frac: jax.Array | None, orientations: int) -> jax.Array:
  """Splits each pixel's magnitude over orientation bins: all into `bin0` (frac None), or linearly between `bin0`
  (1 - frac) and the next bin, cyclically (the toolbox's M0 / M1 with O1 = O0 + 1 wrapping at nOrients).

  Orientation-major so the pooling below contracts the minor (pixel) axes with plain GEMMs.

  Args:
    magnitude, frac: float32[B, H, W]; bin0: float32[B, H, W] from `_orientation_bins`.

  Returns:
    float32[orientations, B, H, W].
  """
  bins = jnp.arange(orientations, dtype=jnp.float32)[:, None, None, None]
  zero = jnp.zeros((), magnitude.dtype)
  if frac is None:
    return jnp.where(bin0[None] == bins, magnitude[None], zero)
  bin1 = jnp.where(bin0 >= orientations - 1, 0.0, bin0 + 1.0)
  hi = magnitude * frac
  # Materialize the per-pixel terms once: otherwise XLA fuses the atan tail into the 9x one-hot loop and redoes it
  # for every bin.
  lo, hi, bin0, bin1 = jax.lax.optimization_barrier((magnitude - hi, hi, bin0, bin1))
  return jnp.where(bin0[None] == bins, lo[None], zero) + jnp.where(bin1[None] == bins, hi[None], zero)


def _pool_cells(votes: jax.Array, w_row: np.ndarray, w_col: np.ndarray) -> jax.Array:
  """Separable spatial pooling: hist[b, i, j, o] = sum_yx w_row[i, y] w_col[j, x] votes[o, b, y, x].

  Two GEMMs instead of a scatter-add (slow on CPU XLA); for hard cells (0/1 weights) it is an exact sum.

  Args:
    votes: float32[n, B, H, W].
    w_row: float[cells_row, H] pixel-to-cell weights along rows.
    w_col: float[cells_col, W].

  Returns:
    float32[B, cells_row, cells_col, n].
  """
  # HIGHEST: GPUs would otherwise round the operands to TF32 (10-bit mantissa), far off skimage's 1e-4.
  hi = jax.lax.Precision.HIGHEST
  cols = jnp.einsum("obyx,jx->obyj", votes, jnp.asarray(w_col, jnp.float32), precision=hi)
  return jnp.einsum("iy,obyj->bijo", jnp.asarray(w_row, jnp.float32), cols, precision=hi)


# ----------------------------------------------------------------------------------------------------------------------
# Variant-specific pieces.


def _paper_gradients(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Toolbox `grad1`: (I[y+1] - I[y-1]) / 2 inside, one-sided I[1] - I[0] and I[n-1] - I[n-2] on the border."""
  d_row, d_col = _interior_differences(images)
  g_row = jnp.concatenate([images[:, 1:2] - images[:, :1], 0.5 * d_row, images[:, -1:] - images[:, -2:-1]], 1)
  g_col = jnp.concatenate(
      [images[:, :, 1:2] - images[:, :, :1], 0.5 * d_col, images[:, :, -1:] - images[:, :, -2:-1]], 2
  )
  return g_row, g_col


def _dalal_gradients(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """skimage `_hog_channel_gradient`: I[y+1] - I[y-1] inside, zero on the first and last row (column)."""
  d_row, d_col = _interior_differences(images)
  g_row = jnp.pad(d_row, ((0, 0), (1, 1), (0, 0)))
  g_col = jnp.pad(d_col, ((0, 0), (0, 0), (1, 1)))
  return g_row, g_col


@functools.lru_cache(maxsize=64)
def _triangle_weights(cells: int, bin_size: int) -> np.ndarray:
  """Toolbox `gradHist` softBin bilinear weights, float64[cells, cells * bin_size].

  Pixel x sits at xb = (x + 0.5) / bin_size - 0.5 in cell units (cell j's centre is at xb = j) and gives
  max(0, 1 - |xb - j|) to cell j; cells outside [0, cells) are dropped, so with 8 px cells the first and last cell
  collect 7/8 of an interior cell's weight and the toolbox rescales them by 8/7 (for any bin size; twice for a
  1-cell axis).
  """
  xb = (np.arange(cells * bin_size) + 0.5) / bin_size - 0.5
  w = np.maximum(0.0, 1.0 - np.abs(xb[None, :] - np.arange(cells)[:, None]))
  border = (np.arange(cells) == 0).astype(np.float64) + (np.arange(cells) == cells - 1)
  return w * (8.0 / 7.0) ** border[:, None]


@functools.lru_cache(maxsize=64)
def _box_weights(cells: int, bin_size: int) -> np.ndarray:
  """skimage's hard cells: pixel x belongs to cell x // bin_size only. float64[cells, cells * bin_size]."""
  return np.repeat(np.eye(cells), bin_size, axis=1)


def _paper_normalize(hist: jax.Array, clip: float, eps: float) -> jax.Array:
  """Toolbox `hogNormMatrix` + `hogChannels` (type 0): four block normalizations per cell, clipped.

  Args:
    hist: float32[B, hb, wb, n] cell histograms, hb, wb >= 2.

  Returns:
    float32[B, hb, wb, 4 * n], channel = n * block + orientation.
  """
  energy = jnp.sum(hist * hist, axis=-1)
  block = energy[:, :-1, :-1] + energy[:, 1:, :-1] + energy[:, :-1, 1:] + energy[:, 1:, 1:]
  inv = jax.lax.rsqrt(block + eps)
  # Edge replication = the toolbox's padded norm grid: a border cell uses its nearest block for missing ones.
  pad = jnp.pad(inv, ((0, 0), (1, 1), (1, 1)), mode="edge")
  norms = (pad[:, 1:, 1:], pad[:, :-1, 1:], pad[:, 1:, :-1], pad[:, :-1, :-1])
  return jnp.concatenate([jnp.minimum(hist * nrm[..., None], clip) for nrm in norms], axis=-1)


def _dalal_normalize(hist: jax.Array) -> jax.Array:
  """skimage `_hog_normalize_block` with 'L2-Hys' over every 2x2-cell block.

  Returns:
    float32[B, hb-1, wb-1, 2, 2, n].
  """
  top = jnp.stack([hist[:, :-1, :-1], hist[:, :-1, 1:]], axis=3)
  bottom = jnp.stack([hist[:, 1:, :-1], hist[:, 1:, 1:]], axis=3)
  blocks = jnp.stack([top, bottom], axis=3)
  sq = lambda x: jnp.sum(x * x, axis=(3, 4, 5), keepdims=True)  # pylint: disable=unnecessary-lambda-assignment
  out = blocks / jnp.sqrt(sq(blocks) + _DALAL_EPS**2)
  out = jnp.minimum(out, _DALAL_CLIP)
  return out / jnp.sqrt(sq(out) + _DALAL_EPS**2)


# ----------------------------------------------------------------------------------------------------------------------
# Public API.


def cell_histograms(images: jax.Array, variant: str = "paper", bin_size: int = 8, orientations: int = 9) -> jax.Array:
  """Unnormalized cell orientation histograms (for `paper`, the toolbox's `gradientHist(M, O, 8, 9, 1)`).

  Args:
    images: float32[B, H, W] gray images.
    variant: 'paper' (trilinear, toolbox) or 'dalal' (hard bins, skimage).
    bin_size: cell size in pixels.
    orientations: number of unsigned orientation bins over [0, pi).

  Returns:
    float32[B, H // bin_size, W // bin_size, orientations].
  """
  images = jnp.asarray(images, jnp.float32)
  hb, wb = images.shape[1] // bin_size, images.shape[2] // bin_size
  if variant == "paper":
    g_row, g_col = _paper_gradients(images)
  elif variant == "dalal":
    g_row, g_col = _dalal_gradients(images)
  else:
    raise ValueError(f"unknown HoG variant {variant!r}, expected one of {VARIANTS}")
  # Rows/columns past hb * bin_size vote nowhere, but their pixels did enter the gradients above.
  g_row, g_col = g_row[:, : hb * bin_size, : wb * bin_size], g_col[:, : hb * bin_size, : wb * bin_size]
  magnitude = jnp.sqrt(g_row * g_row + g_col * g_col)
  bin0, frac = _orientation_bins(g_row, g_col, orientations)
  weights = _triangle_weights if variant == "paper" else _box_weights
  votes = _orientation_votes(magnitude, bin0, frac if variant == "paper" else None, orientations)
  # Both divide the magnitude by bin_size^2 (toolbox sInv2, skimage's mean over the cell).
  return _pool_cells(votes, weights(hb, bin_size) / bin_size**2, weights(wb, bin_size))


def _hog_features(images: jax.Array, variant: str, bin_size: int, orientations: int) -> jax.Array:
  """`hog` on one chunk: float32[B, H, W] -> float32[B, D]."""
  hist = cell_histograms(images, variant, bin_size, orientations)
  batch = images.shape[0]
  if variant == "paper":
    eps = 1e-4 / 4 / bin_size**4  # gradientMex.cpp: "precise backward equality" with older versions
    feats = _paper_normalize(hist, _PAPER_CLIP, eps)
    # MATLAB h(:) of an [hb, wb, 4n] array: row index fastest, then column, then channel.
    return jnp.transpose(feats, (0, 3, 2, 1)).reshape(batch, -1)
  return _dalal_normalize(hist).reshape(batch, -1)


def _chunk_size() -> int:
  """Images per step of `_map_chunks`: on CPU a chunk's 9x vote tensor (16 * 0.5 MB at 120x120) stays in cache,
  which is ~3x faster than one pass over a large batch; accelerators want big steps."""
  return 16 if jax.default_backend() == "cpu" else 1024


def _map_chunks(fn, images: jax.Array) -> jax.Array:
  """fn over the batch in fixed-size chunks (a `lax.map`), so working memory does not grow with B.

  Args:
    fn: float32[b, H, W] -> float32[b, D], batch-independent per image.
    images: float32[B, H, W].

  Returns:
    float32[B, D]. A ragged last chunk is zero-padded (zero images give finite, discarded features).
  """
  batch, chunk = images.shape[0], _chunk_size()
  if batch <= chunk:
    return fn(images)
  pad = -batch % chunk
  chunks = jnp.pad(images, ((0, pad), (0, 0), (0, 0))).reshape((-1, chunk) + images.shape[1:])
  out = jax.lax.map(fn, chunks)
  return out.reshape((-1,) + out.shape[2:])[:batch]


@functools.partial(jax.jit, static_argnames=("variant", "bin_size", "orientations"))
def hog(images: jax.Array, variant: str = "paper", bin_size: int = 8, orientations: int = 9) -> jax.Array:
  """HoG descriptor of each image, flattened.

  Args:
    images: float32 (or uint8)[B, H, W] gray images; `paper` expects MATLAB's single(I) scale (0..255), though
      only its eps depends on the scale.
    variant: 'paper' (toolbox hog, as the paper used) or 'dalal' (skimage hog, L2-Hys 2x2 blocks).
    bin_size: cell size in pixels (both variants drop rows/columns past floor(n / bin_size) * bin_size).
    orientations: unsigned orientation bins.

  Returns:
    float32[B, D]. paper: D = hb * wb * 4 * orientations in MATLAB column-major order of [hb, wb, 4n]
    (hb = H // bin_size, wb = W // bin_size); dalal: D = (hb-1) * (wb-1) * 4 * orientations in skimage's order.
  """
  if images.ndim != 3:
    raise ValueError(f"hog expects [B, H, W] images, got shape {images.shape}")
  if images.shape[1] < 2 * bin_size or images.shape[2] < 2 * bin_size:
    raise ValueError(f"HoG needs at least 2x2 cells of {bin_size} px, got images of {images.shape[1:]}")
  if variant not in VARIANTS:
    raise ValueError(f"unknown HoG variant {variant!r}, expected one of {VARIANTS}")
  fn = functools.partial(_hog_features, variant=variant, bin_size=bin_size, orientations=orientations)
  return _map_chunks(fn, jnp.asarray(images).astype(jnp.float32))


def _pyramid_features(level: jax.Array) -> jax.Array:
  """`hog_pyramid` on one chunk: float32[B, 120, 120] -> float32[B, 10188]."""
  feats = []
  for i in range(len(PYRAMID_SIZES)):
    if i:
      level = resize.imresize(level, scale=0.5, quantize=True)
    feats.append(_hog_features(level, "paper", 8, 9))
  return jnp.concatenate(feats, axis=-1)


@jax.jit
def hog_pyramid(images_120: jax.Array) -> jax.Array:
  """The paper's 3-level HoG pyramid of 120x120 views (`extract_pyramid_hog.m` after its first imresize).

  Args:
    images_120: uint8 or float32[B, 120, 120] gray views, intensities 0..255 (the paper's uint8 I). Levels 1 and 2
      come from MATLAB's uint8 `imresize(I, 0.5)` (resize.imresize), so they are rounded to integers whatever the
      input dtype; level 0 uses the input values as given.

  Returns:
    float32[B, 10188] = [h0(:); h1(:); h2(:)] of the 120, 60 and 30 pixel images (8100 + 1764 + 324).
  """
  if images_120.ndim != 3 or images_120.shape[1:] != (PYRAMID_SIZES[0],) * 2:
    raise ValueError(f"hog_pyramid expects [B, 120, 120] views, got {images_120.shape}")
  return _map_chunks(_pyramid_features, jnp.asarray(images_120).astype(jnp.float32))


@jax.jit
def lfd_descriptor(views_120: jax.Array) -> jax.Array:
  """A shape's descriptor: the HoG pyramids of its 20 LFD views, concatenated in the given view order.

  Args:
    views_120: uint8 or float32[..., 20, 120, 120] gray views (0..255), in the paper's file-name (azimuth) order.

  Returns:
    float32[..., 203760]; view v occupies [v * 10188, (v + 1) * 10188).
  """
  lead = views_120.shape[:-3]
  if views_120.shape[-3:] != (LFD_VIEWS,) + (PYRAMID_SIZES[0],) * 2:
    raise ValueError(f"lfd_descriptor expects [..., 20, 120, 120] views, got {views_120.shape}")
  flat = hog_pyramid(views_120.reshape((-1,) + views_120.shape[-2:]))
  return flat.reshape(lead + (LFD_DIM,))
