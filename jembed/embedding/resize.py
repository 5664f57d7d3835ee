"""MATLAB `imresize` (bicubic, antialiased) in JAX, for the paper's HoG pyramid.

The paper's `extract_pyramid_hog.m` resizes a uint8 view with `imresize(I, [120 120])` and then twice with
`imresize(I, 0.5)`. MATLAB's default method is bicubic (Keys kernel, a = -0.5) and, when shrinking, it widens the
kernel by 1/scale (antialiasing). Its boundary rule is symmetric mirroring (`[1:n, n:-1:1]` index wrap), which is
where it differs from `jax.image.resize(..., 'bicubic', antialias=True)` (that one drops and renormalizes the taps
outside the image). For a uint8 input MATLAB resizes one dimension at a time and returns uint8 from each pass, so
the intermediate image is rounded (half away from zero) and saturated to [0, 255] before the second pass; `quantize`
reproduces that.

The resampling matrices (`jembed.utils.resample.resize_matrix`, the one place the kernel is written) are built in
float64 NumPy at trace time (shapes are static) and applied as two small matmuls. Accumulation is float32, so an
intermediate whose exact value lies within ~1e-5 of a .5 tie may round to the other gray level than MATLAB's double
arithmetic does. Halving an even length (the pyramid's 120 -> 60 -> 30)
takes a strided 8-tap path instead, which is exact on integer images (see `_halve_axis`).
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jembed.utils import resample


def _round_uint8(x: jax.Array) -> jax.Array:
  """MATLAB's double -> uint8 cast: round half away from zero, saturate to [0, 255].

  floor(x + 0.5) is wrong for x just below .5 in float32 (the sum rounds up), so the tie test uses the exact
  fractional part instead.
  """
  f = jnp.floor(x)
  return jnp.clip(f + (x - f >= 0.5).astype(x.dtype), 0.0, 255.0)


def _resize_axis(images: jax.Array, matrix: np.ndarray, axis: int, quantize: bool) -> jax.Array:
  """Applies one 1-D resampling matrix along `axis` (-2 rows, -1 columns) of float32[..., H, W]."""
  m = jnp.asarray(matrix, jnp.float32)
  hi = jax.lax.Precision.HIGHEST  # no TF32 on GPUs: the uint8 rounding needs ~1e-5 absolute
  if axis == -2:
    out = jnp.einsum("oh,...hw->...ow", m, images, precision=hi)
  else:
    out = jnp.einsum("...hw,ow->...ho", images, m, precision=hi)
  return _round_uint8(out) if quantize else out


def _halve_axis(images: jax.Array, axis: int, quantize: bool) -> jax.Array:
  """`imresize(I, 0.5)` along an even-length axis as 8 strided taps over a 3-pixel symmetric pad.

  The same numbers as `resample.resize_matrix(n, n / 2, 0.5)` (output i samples x = 2i + 0.5 with taps x = 2i-3 .. 2i+4,
  mirrored at the border), at 1/15 of the dense matmul's work. The taps are k/256 (-3, -9, 29, 111, 111, 29, -9, -3),
  so on integer images every product and partial sum is exact in float32: the pyramid's uint8 rounding (including
  .5 ties, rounded away from zero) then matches MATLAB's double arithmetic exactly.
  """
  n = images.shape[axis]
  taps = resample.resize_matrix(n, n // 2, 0.5)[2, 1:9]  # output 2 = first row with all 8 taps inside the image
  pad = [(0, 0)] * images.ndim
  pad[axis] = (3, 3)
  padded = jnp.pad(images, pad, mode="symmetric")
  out = sum(
      np.float32(t) * jax.lax.slice_in_dim(padded, k, k + n - 1, stride=2, axis=axis % images.ndim)
      for k, t in enumerate(taps)
  )
  return _round_uint8(out) if quantize else out


def imresize(
    images: jax.Array, out_shape: Sequence[int] | None = None, *, scale: float | None = None, quantize: bool = True
) -> jax.Array:
  """MATLAB `imresize(I, [h w])` or `imresize(I, scale)`, bicubic with antialiasing, batched.

  Args:
    images: uint8 or float[..., H, W] gray images (intensities 0..255 when `quantize`).
    out_shape: (h, w) output size; exclusive with `scale`.
    scale: one scale factor for both dimensions; the output is ceil(scale * (H, W)) as in MATLAB.
    quantize: round and saturate to uint8 values after each 1-D pass, as MATLAB does for a uint8 `I`.

  Returns:
    float32[..., h, w] (integral values in [0, 255] when `quantize`).
  """
  if (out_shape is None) == (scale is None):
    raise ValueError("give exactly one of out_shape and scale")
  in_size = {-2: images.shape[-2], -1: images.shape[-1]}
  if scale is not None:
    scales = {axis: scale for axis in in_size}
    out_size = {axis: int(np.ceil(scale * n)) for axis, n in in_size.items()}
  else:
    out_size = {-2: out_shape[0], -1: out_shape[1]}
    scales = {axis: out_size[axis] / in_size[axis] for axis in in_size}
  x = jnp.asarray(images).astype(jnp.float32)
  # MATLAB resizes the dimension with the smaller scale first (`sort(scale)`, stable: rows on ties).
  order = (-2, -1) if scales[-2] <= scales[-1] else (-1, -2)
  for axis in order:
    n = in_size[axis]
    if scales[axis] == 0.5 and n % 2 == 0 and n >= 10:
      x = _halve_axis(x, axis, quantize)
    else:
      x = _resize_axis(x, resample.resize_matrix(n, out_size[axis], scales[axis]), axis, quantize)
  return x
