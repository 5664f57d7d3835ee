"""Image resizing with our own kernel, so an image never depends on the installed version of an image library.

The kernel is MATLAB's `imresize` default: bicubic (Keys 1981, a = -0.5), widened by 1/scale when shrinking
(antialiasing), weights of each output normalized to sum 1, symmetric mirroring at the borders, one dimension at a
time (the one with the smaller scale first) with the uint8 rounding after each pass. `contributions` gives one
dimension's taps and weights; three users apply them:

* `stretch` (the data path: training crops, query and test photos, baseline inputs) uses the weights rounded to
  multiples of 2^-14 (`FRACTION_BITS`). Every product of a uint8 value and such a weight, and every partial sum, is an
  integer multiple of 2^-14 below 2^24 * 2^-14, so float32 holds it exactly: the result is the same bytes whatever
  BLAS, CPU or summation order computes it. The rounding moves a weight by at most 2^-15 (< 0.1 gray level per pass).
* `resize` (float images: the procedural backgrounds' noise) applies the float64 weights without rounding.
* `jembed.embedding.hog_input` and `jembed.embedding.resize` (the shape side's HoG inputs and pyramid) use the exact
  float64 weights (`resize_matrix`), to match MATLAB there.

Pillow's `resize` gave different bytes for LANCZOS between Pillow 12.3 and 13.0; this module needs NumPy and SciPy's
sparse product only, and is about as fast as Pillow (tests/benchmarks/stretch.py).
`tests/utils/test_resample.py` pins `stretch`'s output for a fixed input against committed bytes.
"""

import functools

import numpy as np
import scipy.sparse

# Weights are multiples of 2^-FRACTION_BITS: 255 x (sum of |weights| <= 1.5) x 2^14 < 2^24, float32's exact integers.
FRACTION_BITS = 14
_ONE = float(1 << FRACTION_BITS)
# The name of `stretch`'s kernel, stored with caches of stretched images so a change of kernel remakes them.
KERNEL = f"imresize-bicubic-fixed{FRACTION_BITS}"


def _keys_cubic(x: np.ndarray) -> np.ndarray:
  """MATLAB's `cubic` kernel (Keys 1981, a = -0.5) at float64 offsets `x`."""
  ax = np.abs(x)
  ax2, ax3 = ax**2, ax**3
  return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))


def contributions(in_size: int, out_size: int, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
  """MATLAB's `contributions()`: which input pixels each output pixel takes, with which bicubic weights.

  Output pixel i (1-based) samples input coordinate u = i / scale + (1 - 1 / scale) / 2; with scale < 1 the kernel
  is stretched to 4 / scale taps (antialiasing); the weights of each output are normalized to sum 1; taps outside
  the image are folded back by symmetric mirroring (a mirrored tap reads the pixel it lands on).

  Args:
    in_size: input length along the dimension.
    out_size: output length.
    scale: MATLAB's scale factor; defaults to out_size / in_size (what `imresize(I, [h w])` uses).

  Returns:
    (int64[out_size, T] input index of each tap, float64[out_size, T] its weight).
  """
  scale = out_size / in_size if scale is None else scale
  width = 4.0
  kernel = _keys_cubic
  if scale < 1:
    kernel = lambda x: scale * _keys_cubic(scale * x)  # pylint: disable=unnecessary-lambda-assignment
    width /= scale
  u = np.arange(1, out_size + 1) / scale + 0.5 * (1 - 1 / scale)
  left = np.floor(u - width / 2)
  taps = int(np.ceil(width)) + 2
  idx = left[:, None] + np.arange(taps)[None, :]
  w = kernel(u[:, None] - idx)
  w /= w.sum(axis=1, keepdims=True)
  mirror = np.concatenate([np.arange(in_size), np.arange(in_size)[::-1]])
  return mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_size)], w


@functools.lru_cache(maxsize=64)
def resize_matrix(in_size: int, out_size: int, scale: float | None = None) -> np.ndarray:
  """The dense float64[out_size, in_size] matrix of `contributions` (mirrored taps add onto the pixel they land on);
  row i holds the weights of output pixel i."""
  idx, w = contributions(in_size, out_size, scale)
  out = np.zeros((out_size, in_size))
  np.add.at(out, (np.repeat(np.arange(out_size), idx.shape[1]), idx.ravel()), w.ravel())
  return out


@functools.lru_cache(maxsize=1024)
def fixed_point_matrix(in_size: int, out_size: int) -> scipy.sparse.csr_matrix:
  """`contributions(in_size, out_size)` with the weights rounded to multiples of 2^-14, each row summing to exactly 1.

  Returns:
    float32[out_size, in_size] as a sparse CSR matrix (about 4 / scale taps a row; a mirrored tap is its own entry).
  """
  idx, exact = contributions(in_size, out_size)
  ticks = np.round(exact * _ONE)
  # The rounding error of a row goes onto its largest weight, so a flat image stays flat.
  ticks[np.arange(out_size), np.argmax(exact, axis=1)] += _ONE - ticks.sum(axis=1)
  taps = idx.shape[1]
  return scipy.sparse.csr_matrix(
      ((ticks / _ONE).astype(np.float32).ravel(), idx.ravel(), np.arange(0, idx.size + 1, taps)),
      shape=(out_size, in_size),
  )


def _pass(x: np.ndarray, matrix: scipy.sparse.csr_matrix) -> np.ndarray:
  """float32[N, M] resampled along its first axis, rounded half up and saturated to [0, 255].

  The sparse product does the few taps per output (about 4 / scale) and no more: a 150 -> 128 pass is 7 of the 150
  multiply-adds per output a dense matrix would do.
  """
  out = matrix @ x
  # Exact multiples of 2^-14 (module docstring): + 0.5 and floor are exact, so this is MATLAB's round for x >= 0.
  out += np.float32(0.5)
  np.floor(out, out=out)
  return np.clip(out, 0, 255, out=out)


def _swap_axes(x: np.ndarray, channels: int) -> np.ndarray:
  """float32[A, B * C] -> float32[B, A * C]: the first two axes of the [A, B, C] image swapped, C kept together.

  Each pixel's C values move as one opaque element (a void view), which NumPy copies 5x faster than a transpose
  with a 3-long last axis.
  """
  a = x.shape[0]
  pixels = x.reshape(a, -1, channels).view(np.dtype((np.void, 4 * channels)))[..., 0]
  return np.ascontiguousarray(pixels.T).view(np.float32).reshape(pixels.shape[1], a * channels)


def stretch(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
  """uint8[h, w] or uint8[h, w, C] -> uint8[size, size(, C)], aspect ratio not kept (the kernel of the module
  docstring, reproducible to the byte on any machine).

  Args:
    image: uint8 image, gray or with channels.
    size: output side, or (height, width).

  Returns:
    uint8 array of the output size, the input's channels.
  """
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
    raise ValueError(f"stretch takes a uint8[h, w] or uint8[h, w, C] image, got {image.dtype}{list(image.shape)}")
  out_h, out_w = (size, size) if isinstance(size, int) else size
  if image.shape[:2] == (out_h, out_w):
    return image
  channels = image.shape[2] if image.ndim == 3 else 1
  x = image.reshape(image.shape[0], -1).astype(np.float32)
  rows, cols = fixed_point_matrix(image.shape[0], out_h), fixed_point_matrix(image.shape[1], out_w)
  if out_h / image.shape[0] <= out_w / image.shape[1]:  # MATLAB's order: the dimension with the smaller scale first
    x = _swap_axes(_pass(_swap_axes(_pass(x, rows), channels), cols), channels)
  else:
    x = _pass(_swap_axes(_pass(_swap_axes(x, channels), cols), channels), rows)
  return x.astype(np.uint8).reshape((out_h, out_w) + image.shape[2:])


def resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """float[h, w] -> float32[height, width] with the same kernel, unrounded (for float images such as noise layers).

  Computed in float64: independent of any image library, though not guaranteed to the last bit across machines
  (that takes the uint8 path, `stretch`).
  """
  x = np.asarray(image, np.float64)
  rows, cols = resize_matrix(x.shape[0], shape[0]), resize_matrix(x.shape[1], shape[1])
  return (rows @ x @ cols.T).astype(np.float32)
