"""Crop boxes of the training images: the object's tight box in a render, the paper's jittered crop of it
(`batch_crop_syn_images.m`) and the box widened by context. Boxes are (top, bottom, left, right), inclusive pixel
indices, as numpy indexes them."""

import numpy as np


def tight_box(alpha: np.ndarray) -> tuple[int, int, int, int]:
  """(top, bottom, left, right), inclusive pixel indices of alpha > 0; the whole image when nothing is covered."""
  rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
  if not len(rows):
    return 0, alpha.shape[0] - 1, 0, alpha.shape[1] - 1
  return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def jitter_box(
    box: tuple[int, int, int, int], rng: np.random.Generator, ratio: float, image_shape: tuple[int, int]
) -> tuple[int, int, int, int]:
  """The paper's jittered crop (`batch_crop_syn_images.m`, reference §2) of a tight box.

  Each edge moves by `ratio` x the box side times a standard normal draw, positive = cutting into the object:
  left, right and top by ±ratio·randn; the bottom always by ratio·(|randn| - 0.1), so it is (almost) always cut —
  objects in photos are more often cut at the bottom. A cut beyond 0.4 w (left, right), 0.3 h (top) or 0.6 h (bottom)
  is reset to 0. Then the box is clamped to the image, an edge pair that crossed falls back to the tight box, and
  the edges are rounded.

  Args:
    box: (top, bottom, left, right), inclusive pixel indices.
    rng: draws 4 normals, in the order left, right, top, bottom.
    ratio: 0.05 in the paper; 0 returns `box`.
    image_shape: (height, width) of the render.

  Returns:
    (top, bottom, left, right), inclusive, inside the image, at least one pixel.
  """
  top, bottom, left, right = box
  h, w = bottom - top + 1, right - left + 1
  cut_left = ratio * w * rng.standard_normal()
  cut_right = ratio * w * rng.standard_normal()
  cut_top = ratio * h * rng.standard_normal()
  cut_bottom = ratio * h * (abs(rng.standard_normal()) - 0.1)
  cut_left = 0.0 if cut_left > 0.4 * w else cut_left
  cut_right = 0.0 if cut_right > 0.4 * w else cut_right
  cut_top = 0.0 if cut_top > 0.3 * h else cut_top
  cut_bottom = 0.0 if cut_bottom > 0.6 * h else cut_bottom
  height, width = image_shape
  new_left, new_right = np.clip([left + cut_left, right - cut_right], 0, width - 1)
  new_top, new_bottom = np.clip([top + cut_top, bottom - cut_bottom], 0, height - 1)
  if new_left > new_right:
    new_left, new_right = left, right
  if new_top > new_bottom:
    new_top, new_bottom = top, bottom
  top, bottom, left, right = (int(np.floor(v + 0.5)) for v in (new_top, new_bottom, new_left, new_right))
  return top, max(top, bottom), left, max(left, right)


def widen_box(
    box: tuple[int, int, int, int], rng: np.random.Generator, context: float, image_shape: tuple[int, int]
) -> tuple[int, int, int, int]:
  """The box with each side moved out by U(0, context) x the box's side, clamped to the image (order: left, right,
  top, bottom)."""
  top, bottom, left, right = box
  h, w = bottom - top + 1, right - left + 1
  grow = rng.uniform(0.0, context, 4) * np.array([w, w, h, h])
  height, width = image_shape
  return (
      int(max(0, round(top - grow[2]))),
      int(min(height - 1, round(bottom + grow[3]))),
      int(max(0, round(left - grow[0]))),
      int(min(width - 1, round(right + grow[1]))),
  )
