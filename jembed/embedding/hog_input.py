"""The paper's HoG inputs of a shape (§1.2): its 20 LFD renders → tight gray crop → stretched 120x120.

`lfd_images` is the whole chain; its output feeds the HoG pyramid (`hog.py`).
"""

import numpy as np

from jembed.render import base
from jembed.render import lfd
from jembed.render import lights as lights_lib
from jembed.utils import resample

HOG_SIZE = 120

# MATLAB rgb2gray: the first row of inv of the NTSC YIQ matrix (prints as 0.2989 0.5870 0.1140).
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def crop_gray(rgba: np.ndarray) -> np.ndarray:
  """The paper's crop: tight box of alpha != 0 (no padding), then gray = min(255, rgb2gray(RGB) + (255 - alpha)).

  The sum is MATLAB's saturating uint8 arithmetic, so the background turns white and partly covered pixels are
  brightened by their missing coverage (RGB is straight alpha, as in Blender's PNGs and our renderers).
  Unlike the paper's crop_gray.m, an empty alpha mask does not crash: it returns the whole frame, all white (H x W).

  Args:
    rgba: uint8[H, W, 4].

  Returns:
    uint8[h, w] gray on white.
  """
  rgba = np.asarray(rgba)
  if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[-1] != 4:
    raise ValueError(f"expected uint8[H, W, 4], got {rgba.dtype}{list(rgba.shape)}")
  alpha = rgba[..., 3]
  rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
  if not len(rows):
    return np.full(alpha.shape, 255, np.uint8)
  box = rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
  gray = rgb2gray(box[..., :3]).astype(np.float64)
  return np.minimum(255, gray + (255 - box[..., 3].astype(np.float64))).astype(np.uint8)


def rgb2gray(rgb: np.ndarray) -> np.ndarray:
  """MATLAB's `rgb2gray` on uint8: uint8[..., 3] -> uint8[...], the weights of `_RGB2GRAY`, rounded back to uint8."""
  # MATLAB converts back to uint8 by rounding half away from zero; the values are non-negative, so floor(x + .5).
  return np.floor(np.asarray(rgb, np.float64) @ _RGB2GRAY + 0.5).astype(np.uint8)


def hog_input(gray: np.ndarray, size: int = HOG_SIZE) -> np.ndarray:
  """The paper's `imresize(I, [size size])`: stretch a crop to size x size (aspect ratio not kept).

  MATLAB's bicubic with antialiasing and mirrored borders (`resample.resize_matrix`), one dimension at a time (the one
  that shrinks more first) with the uint8 rounding (half away from zero) and saturation after each pass, computed in
  float64 NumPy: crops have a different size per view, so a jitted version would compile once per size.

  Args:
    gray: uint8[h, w].
    size: output side.

  Returns:
    uint8[size, size].
  """
  x = np.asarray(gray, np.float64)
  scales = (size / x.shape[0], size / x.shape[1])
  for axis in ((0, 1) if scales[0] <= scales[1] else (1, 0)):
    m = resample.resize_matrix(x.shape[axis], size, scales[axis])
    x = m @ x if axis == 0 else x @ m.T
    x = np.clip(np.floor(x + 0.5), 0, 255)  # Non-negative after the clip, so this is MATLAB's rounding.
  return x.astype(np.uint8)


def lfd_images(
    renderer: base.Renderer,
    vertices: np.ndarray,
    faces: np.ndarray,
    category: str = "chair",
    *,
    size: int = 256,
    antialias: int = 2,
    lights: "lights_lib.Lights | None" = None,
) -> np.ndarray:
  """The 20 HoG inputs of a normalized shape: render → crop_gray → hog_input.

  The default render size keeps a unit-radius shape (about 200 px across at 256²) above 120 px, so the crop is
  downscaled as in the paper (its 960x540 renders were cropped from larger objects); antialias 2 stands in for
  Blender's OSA 8.

  Args:
    renderer: a `render.base.Renderer`.
    vertices: float32[V, 3], normalized (+Y up, centred, unit bounding-sphere radius).
    faces: int32[F, 3].
    category: selects the views (see `lfd_views`).
    size: render size in pixels (square).
    antialias: supersampling factor.
    lights: defaults to the paper's LFD lights.

  Returns:
    uint8[20, 120, 120].
  """
  out = renderer.render(vertices, faces, lfd.lfd_views(category), size=size, lights=lights, antialias=antialias)
  return np.stack([hog_input(crop_gray(rgba)) for rgba in out.rgba])
