"""HoG: `dalal` against skimage, `paper` against a plain-loop transcription of Piotr's toolbox `hog`, MATLAB imresize.

No Python port of the toolbox's `hog` exists to test against, so `_toolbox_hog_reference` below restates
`gradientMex.cpp` (v3.30: grad1, gradMag, gradQuantize + gradHist with softBin 1, hogNormMatrix, hogChannels) one
pixel and one cell at a time, in float64, including the in-place order in which the toolbox fills its padded
block-norm grid. It shares no code with jembed.embedding.hog (which uses dense one-hot votes and GEMMs).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
import skimage.data
import skimage.feature

from jembed.embedding import hog
from jembed.embedding import resize
from jembed.utils import resample

_SKIMAGE_KW = dict(
    orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys", feature_vector=True
)


def _skimage_hog(image: np.ndarray) -> np.ndarray:
  return skimage.feature.hog(np.asarray(image, np.float64), **_SKIMAGE_KW)


def _toolbox_hog_reference(image: np.ndarray, b: int = 8, n: int = 9, clip: float = 0.2) -> np.ndarray:
  """Toolbox `hog(single(I), b, n, clip)` computed with per-pixel loops in float64; returns H(:)."""
  img = np.asarray(image, np.float64)
  h, w = img.shape
  gx, gy = np.zeros_like(img), np.zeros_like(img)
  for y in range(h):
    for x in range(w):  # grad1: halved centred difference, one-sided (not halved) at the border
      gx[y, x] = (
          img[y, 1] - img[y, 0]
          if x == 0
          else img[y, w - 1] - img[y, w - 2]
          if x == w - 1
          else (img[y, x + 1] - img[y, x - 1]) / 2
      )
      gy[y, x] = (
          img[1, x] - img[0, x]
          if y == 0
          else img[h - 1, x] - img[h - 2, x]
          if y == h - 1
          else (img[y + 1, x] - img[y - 1, x]) / 2
      )
  hb, wb = h // b, w // b
  hist = np.zeros((hb, wb, n))
  for y in range(hb * b):
    for x in range(wb * b):
      mag = math.hypot(gx[y, x], gy[y, x]) / b**2  # gradQuantize's norm = 1/b^2
      o = (math.atan2(gy[y, x], gx[y, x]) % math.pi) * n / math.pi
      o0 = int(o)
      od = o - o0
      o0 %= n
      yb, xb = (y + 0.5) / b - 0.5, (x + 0.5) / b - 0.5  # position in cell units, cell centres at integers
      y0, x0 = math.floor(yb), math.floor(xb)
      for cy, wy in ((y0, 1 - (yb - y0)), (y0 + 1, yb - y0)):
        for cx, wx in ((x0, 1 - (xb - x0)), (x0 + 1, xb - x0)):
          if 0 <= cy < hb and 0 <= cx < wb:
            hist[cy, cx, o0] += wy * wx * mag * (1 - od)
            hist[cy, cx, (o0 + 1) % n] += wy * wx * mag * od
  for i in range(hb):  # gradHist: border cells only got 7/8 of the weight
    hist[i, 0] *= 8 / 7
    hist[i, wb - 1] *= 8 / 7
  for j in range(wb):
    hist[0, j] *= 8 / 7
    hist[hb - 1, j] *= 8 / 7
  # hogNormMatrix: grid[y + 1, x + 1] <- energy of cell (y, x), then in place, x-major, the inverse block norm.
  eps = 1e-4 / 4 / b**4
  grid = np.zeros((hb + 1, wb + 1))
  grid[1:, 1:] = np.sum(hist**2, axis=-1)
  for x in range(wb - 1):
    for y in range(hb - 1):
      g = grid[y + 1 : y + 3, x + 1 : x + 3]
      grid[y + 1, x + 1] = 1 / math.sqrt(g.sum() + eps)
  last_r, last_c = hb, wb  # then the padding, copied from neighbours in the toolbox's order
  grid[0, 0] = grid[1, 1]
  grid[:, 0] = grid[:, 1].copy()
  grid[last_r, 0] = grid[last_r - 1, 1]
  grid[0, last_c] = grid[1, last_c - 1]
  grid[:, last_c] = grid[:, last_c - 1].copy()
  grid[last_r, last_c] = grid[last_r - 1, last_c - 1]
  grid[0, :] = grid[1, :].copy()
  grid[last_r, :] = grid[last_r - 1, :].copy()
  out = np.zeros((hb, wb, 4 * n))
  for y in range(hb):
    for x in range(wb):
      for c, (dy, dx) in enumerate(((1, 1), (0, 1), (1, 0), (0, 0))):  # hogChannels: N1[y - {0, 1, hb1, hb1+1}]
        out[y, x, c * n : (c + 1) * n] = np.minimum(hist[y, x] * grid[y + dy, x + dx], clip)
  return out.ravel(order="F")  # MATLAB H(:)


def _photo_crops(shared_data, size=(96, 128), count=3) -> np.ndarray:
  paths = sorted((shared_data / "backgrounds" / "sun2012").glob("*.jpg"))[:count]
  crops = []
  for path in paths:
    gray = np.asarray(Image.open(path).convert("L"))
    top, left = (gray.shape[0] - size[0]) // 2, (gray.shape[1] - size[1]) // 2
    crops.append(gray[top : top + size[0], left : left + size[1]])
  return np.stack(crops)


# ---------------------------------------------------------------------------------------------------------------------
# dalal == skimage.feature.hog (the external oracle for the shared gradient / orientation / pooling code).


@pytest.mark.parametrize(
    "shape,bin_size,orientations", [((16, 16), 8, 9), ((37, 53), 8, 9), ((64, 72), 8, 9), ((50, 45), 6, 12)]
)
def test_dalal_matches_skimage_on_random_images(shape, bin_size, orientations):
  rng = np.random.default_rng(sum(shape))
  images = (rng.random((2,) + shape) * 255).astype(np.float32)
  ours = np.asarray(hog.hog(images, "dalal", bin_size, orientations))
  kw = dict(_SKIMAGE_KW, orientations=orientations, pixels_per_cell=(bin_size, bin_size))
  for image, feat in zip(images, ours):
    np.testing.assert_allclose(feat, skimage.feature.hog(image.astype(np.float64), **kw), rtol=0, atol=1e-4)


def test_dalal_matches_skimage_on_camera():
  camera = skimage.data.camera()[100:300, 60:310]  # 200 x 250: 25 x 31 cells, 2 px dropped on the right
  ours = np.asarray(hog.hog(camera[None].astype(np.float32), "dalal"))[0]
  ref = _skimage_hog(camera)
  assert ours.shape == ref.shape
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)


def test_dalal_matches_skimage_on_photos(shared_data):
  photos = _photo_crops(shared_data)
  ours = np.asarray(hog.hog(photos.astype(np.float32), "dalal"))
  for photo, feat in zip(photos, ours):
    np.testing.assert_allclose(feat, _skimage_hog(photo), rtol=0, atol=1e-4)


def test_unsigned_orientation_matches_float64_atan2():
  rng = np.random.default_rng(0)
  g = rng.standard_normal((2, 4096)).astype(np.float32)
  g[:, :8] = [[0, 0, 0, 0, 1, -1, 1, -1], [1, -1, 0, 2, 0, 0, 1, 1]]  # axes, zero vector and diagonals
  ref = np.arctan2(g[0].astype(np.float64), g[1].astype(np.float64)) % np.pi
  ours = np.asarray(hog._unsigned_orientation(jnp.asarray(g[0]), jnp.asarray(g[1])))
  ours = np.where(ours >= np.pi - 1e-6, ours - np.pi, ours)  # pi and 0 are the same unsigned orientation
  np.testing.assert_allclose(ours, ref, rtol=0, atol=5e-7)


# ---------------------------------------------------------------------------------------------------------------------
# paper == the toolbox's hog (plain-loop transcription).


@pytest.mark.parametrize(
    "shape,scale,bin_size,orientations",
    [
        ((16, 16), 1.0, 8, 9),
        ((24, 40), 1.0, 8, 9),
        ((37, 29), 1.0, 8, 9),
        ((24, 40), 5e-6, 8, 9),
        ((21, 18), 1.0, 4, 6),
    ],
)
def test_paper_matches_toolbox_reference(shape, scale, bin_size, orientations):
  # At scale 5e-6 block energies are ~1e-8, where the toolbox's eps (6.1e-9) visibly shrinks the features.
  rng = np.random.default_rng(shape[0] * 100 + shape[1])
  image = rng.integers(0, 256, shape).astype(np.float32) * np.float32(scale)
  ours = np.asarray(hog.hog(image[None], "paper", bin_size, orientations))[0]
  ref = _toolbox_hog_reference(image, bin_size, orientations)
  assert ours.shape == ref.shape == ((shape[0] // bin_size) * (shape[1] // bin_size) * 4 * orientations,)
  np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-5)
  assert np.mean(ref == 0.2) > 0.01  # the clip is exercised
  if scale != 1:
    assert np.abs(ref - _toolbox_hog_reference(image / np.float32(scale))).max() > 1e-3  # and eps matters


def test_pyramid_and_lfd_dimensions_and_order():
  rng = np.random.default_rng(1)
  views = rng.integers(0, 256, (2, hog.LFD_VIEWS, 120, 120)).astype(np.uint8)
  desc = np.asarray(hog.lfd_descriptor(views))
  assert hog.PYRAMID_DIM == 15 * 15 * 36 + 7 * 7 * 36 + 3 * 3 * 36 == 10188
  assert desc.shape == (2, hog.LFD_DIM) and hog.LFD_DIM == 203760
  # 40 views = two full chunks plus a padded ragged one; each view's block is its own pyramid, in order.
  per_view = np.asarray(hog.hog_pyramid(views[1, 7:8]))[0]
  np.testing.assert_allclose(desc[1, 7 * hog.PYRAMID_DIM : 8 * hog.PYRAMID_DIM], per_view, rtol=0, atol=1e-6)
  # Level 0 is plain hog of the view; level 1 is hog of MATLAB's uint8 imresize(I, 0.5).
  h0 = np.asarray(hog.hog(views[1, 7:8].astype(np.float32), "paper"))[0]
  np.testing.assert_allclose(per_view[:8100], h0, rtol=0, atol=1e-6)
  half = resize.imresize(views[1, 7:8], scale=0.5)
  np.testing.assert_array_equal(np.asarray(half), np.round(np.asarray(half)))
  np.testing.assert_allclose(per_view[8100:9864], np.asarray(hog.hog(half, "paper"))[0], rtol=0, atol=1e-6)


def test_paper_range_and_zero_image():
  rng = np.random.default_rng(2)
  feats = np.asarray(hog.hog_pyramid(rng.integers(0, 256, (18, 120, 120)).astype(np.float32)))
  assert feats.min() >= 0 and feats.max() <= 0.2 + 1e-7
  assert np.any(feats == np.float32(0.2))
  flat = np.asarray(hog.hog_pyramid(np.full((1, 120, 120), 77.0, np.float32)))
  np.testing.assert_array_equal(flat, 0.0)  # no gradient, no NaN from the eps-guarded norm


def test_paper_brightness_scale_invariance():
  rng = np.random.default_rng(3)
  image = (rng.random((1, 48, 64)) * 255).astype(np.float32)
  base = np.asarray(hog.hog(image, "paper"))
  # x4 is exact in float32 through gradients, atan and histograms, so only eps (6e-9 against block energies of
  # ~1e3 here) can differ; 1e-6 leaves room for XLA's rsqrt.
  np.testing.assert_allclose(np.asarray(hog.hog(image * 4, "paper")), base, rtol=0, atol=1e-6)
  # x0.37 rounds every stage at float32 (~1e-7 relative) and moves the atan by <3e-7 rad.
  np.testing.assert_allclose(np.asarray(hog.hog(image * 0.37, "paper")), base, rtol=0, atol=1e-5)
  hist = np.asarray(hog.cell_histograms(image, "paper"))
  np.testing.assert_allclose(np.asarray(hog.cell_histograms(image * 0.37, "paper")), 0.37 * hist, rtol=1e-5, atol=1e-5)


def _orientation_mass(feats: np.ndarray, hb: int, wb: int) -> np.ndarray:
  """Sum over cells and the 4 normalizations of paper features, per orientation bin: float[9]."""
  cube = feats.reshape(36, wb, hb)  # inverse of MATLAB's h(:) of [hb, wb, 36]
  return cube.reshape(4, 9, wb, hb).sum(axis=(0, 2, 3))


def test_vertical_step_edge_votes_horizontal_gradient_bin():
  image = np.zeros((1, 64, 64), np.float32)
  image[:, :, 29:] = 200.0  # a vertical edge: the gradient points along +x, orientation 0
  mass = _orientation_mass(np.asarray(hog.hog(image, "paper"))[0], 8, 8)
  assert mass[0] > 0 and np.all(mass[1:] == 0)
  cube = np.asarray(hog.hog(image, "paper"))[0].reshape(36, 8, 8)
  assert np.all(cube[0, 3, :] > 0) and np.all(cube[0, 0, :] == 0)  # cells around x = 29 only


@pytest.mark.parametrize("sign,bins,ratio", [(1, (2, 3), 3.0), (-1, (7, 6), 3.0)])
def test_diagonal_ramp_votes_its_bins(sign, bins, ratio):
  y, x = np.mgrid[:48, :48].astype(np.float32)
  image = (x + sign * y + 60)[None]  # gradient (1, sign): 45 deg (o = 2.25) or 135 deg (o = 6.75), rows down
  hist = np.asarray(hog.cell_histograms(image, "paper"))[0]
  others = [o for o in range(9) if o not in bins]
  assert np.all(hist[..., others] == 0)
  np.testing.assert_allclose(hist[..., bins[0]] / hist[..., bins[1]], ratio, rtol=1e-5)


def test_remainder_rows_and_columns_are_dropped():
  rng = np.random.default_rng(4)
  big = rng.integers(0, 256, (1, 127, 127)).astype(np.float32)
  # Row/column 120 continue rows/columns 118..119 linearly, so the centred gradient at 119 in the 127 image equals
  # the one-sided one at the border of the 120 crop; rows/columns 121.. are never seen.
  big[:, 120, :] = 2 * big[:, 119, :] - big[:, 118, :]
  big[:, :, 120] = 2 * big[:, :, 119] - big[:, :, 118]
  crop = big[:, :120, :120]
  np.testing.assert_array_equal(np.asarray(hog.hog(big, "paper")), np.asarray(hog.hog(crop, "paper")))
  other = big.copy()
  other[:, 121:, :] = rng.integers(0, 256, other[:, 121:, :].shape)
  other[:, :, 121:] = 0
  np.testing.assert_array_equal(np.asarray(hog.hog(other, "paper")), np.asarray(hog.hog(big, "paper")))
  # Without the linear continuation, the last cells differ: the gradient sees the dropped pixels.
  bumped = big.copy()
  bumped[:, 120, :] += 50
  assert not np.array_equal(np.asarray(hog.hog(bumped, "paper")), np.asarray(hog.hog(big, "paper")))


def test_batch_jit_and_vmap_agree_with_single_images():
  rng = np.random.default_rng(5)
  images = rng.integers(0, 256, (18, 120, 120)).astype(np.float32)  # > one chunk: exercises lax.map and padding
  batched = np.asarray(hog.hog_pyramid(images))
  single = np.concatenate([np.asarray(hog.hog_pyramid(images[i : i + 1])) for i in (0, 17)])
  np.testing.assert_allclose(batched[[0, 17]], single, rtol=0, atol=1e-6)
  with jax.disable_jit():
    eager = np.asarray(hog.hog(images[:1, :24, :40], "paper"))
  np.testing.assert_allclose(eager, np.asarray(hog.hog(images[:1, :24, :40], "paper")), rtol=0, atol=1e-6)
  vmapped = jax.vmap(lambda im: hog.hog(im, "dalal"))(images[:2, None, :32, :40])
  np.testing.assert_allclose(
      np.asarray(vmapped)[:, 0], np.asarray(hog.hog(images[:2, :32, :40], "dalal")), rtol=0, atol=1e-6
  )


# ---------------------------------------------------------------------------------------------------------------------
# MATLAB imresize.


def _cubic(d):
  d = abs(d)
  return 1.5 * d**3 - 2.5 * d**2 + 1 if d <= 1 else -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2 if d <= 2 else 0.0


def test_resize_half_border_row_mirrors_taps():
  # Output 0 of a 0.5 resize samples input x = 0.5 (0-based) with the kernel cubic(d / 2) / 2 over 8 taps at
  # x = -3..4; MATLAB folds x = -1, -2, -3 back onto 0, 1, 2.
  taps = {x: _cubic((0.5 - x) / 2) / 2 for x in range(-3, 5)}
  total = sum(taps.values())
  expect = np.zeros(120)
  for x, wgt in taps.items():
    expect[x if x >= 0 else -x - 1] += wgt / total
  mat = resample.resize_matrix(120, 60, 0.5)
  np.testing.assert_allclose(mat[0], expect, atol=1e-12)
  np.testing.assert_allclose(mat.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    "in_shape,out_shape", [((120, 120), (60, 60)), ((203, 151), (120, 120)), ((48, 70), (120, 120))]
)
def test_resize_interior_matches_pillow_bicubic(in_shape, out_shape):
  # Pillow's BICUBIC (a = -0.5, kernel widened when shrinking, same pixel-centre mapping) differs from MATLAB only
  # at the border, where it truncates instead of mirroring; compare away from it, without rounding.
  rng = np.random.default_rng(6)
  image = (rng.random(in_shape) * 255).astype(np.float32)
  ref = np.asarray(Image.fromarray(image, mode="F").resize(out_shape[::-1], Image.BICUBIC))
  ours = np.asarray(resize.imresize(image[None], out_shape, quantize=False))[0]
  m = 6
  np.testing.assert_allclose(ours[m:-m, m:-m], ref[m:-m, m:-m], rtol=0, atol=2e-3)


def test_resize_uint8_rounding_and_constant_images():
  x = jnp.asarray([2.5, 0.49999997, -0.6, 255.7, 3.4999998, 1e-3])
  np.testing.assert_array_equal(np.asarray(resize._round_uint8(x)), [3, 0, 0, 255, 3, 0])
  flat = np.full((1, 120, 120), 93, np.uint8)
  np.testing.assert_array_equal(np.asarray(resize.imresize(flat, scale=0.5)), 93.0)
  np.testing.assert_array_equal(np.asarray(resize.imresize(flat, (120, 90))), 93.0)


@pytest.mark.parametrize("n", [120, 60])
def test_resize_halving_taps_equal_dense_matrix(n):
  rng = np.random.default_rng(n)
  image = jnp.asarray(rng.integers(0, 256, (2, n, n)).astype(np.float32))
  mat = resample.resize_matrix(n, n // 2, 0.5)
  dense = resize._resize_axis(resize._resize_axis(image, mat, -2, True), mat, -1, True)
  # k/256 taps on integers: exact in float32 on both paths, so even the uint8 rounding agrees everywhere.
  np.testing.assert_array_equal(np.asarray(resize.imresize(image, scale=0.5)), np.asarray(dense))
  first_pass = np.asarray(resize._halve_axis(image, -2, quantize=False))
  np.testing.assert_array_equal(first_pass, np.asarray(resize._resize_axis(image, mat, -2, False)))
  assert np.any(first_pass % 1 == 0.5)  # .5 ties do occur, so MATLAB's half-away-from-zero rounding matters
