"""The paper's gray crop, the 120x120 HoG input and the LFD image chain."""

import numpy as np
from PIL import Image
import pytest
from scipy import ndimage
import trimesh

from jembed.embedding import hog_input
from jembed.embedding import resize
from jembed.render import embree


def _rgba(gray, alpha):
  gray, alpha = np.asarray(gray, np.uint8), np.asarray(alpha, np.uint8)
  return np.dstack([gray, gray, gray, alpha])


def test_crop_gray_tight_box_and_white_background():
  rgba = np.zeros((6, 7, 4), np.uint8)
  rgba[2:4, 1:5] = [100, 100, 100, 255]
  rgba[3, 2] = [10, 20, 30, 255]
  out = hog_input.crop_gray(rgba)
  assert out.dtype == np.uint8 and out.shape == (2, 4)  # no padding
  expected = np.full((2, 4), 100)
  expected[1, 1] = round(0.2989 * 10 + 0.5870 * 20 + 0.1140 * 30)  # MATLAB rgb2gray = 17.7 -> 18
  np.testing.assert_array_equal(out, expected)
  rgba[3, 4, 3] = 0  # a hole inside the box turns white
  assert hog_input.crop_gray(rgba)[1, 3] == 255


def test_crop_gray_partial_alpha_saturates():
  rgba = _rgba([[100, 100, 0], [250, 0, 0]], [[255, 55, 0], [200, 0, 0]])
  out = hog_input.crop_gray(rgba)
  # Box = rows 0-1, columns 0-1; gray + (255 - alpha), saturating at 255.
  np.testing.assert_array_equal(out, [[100, 255], [255, 255]])
  rgba = _rgba([[100, 100]], [[255, 235]])
  np.testing.assert_array_equal(hog_input.crop_gray(rgba), [[100, 120]])


def test_crop_gray_rgb2gray_rounding_matches_matlab():
  rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3)).astype(np.uint8)
  out = hog_input.crop_gray(np.dstack([rgb, np.full((16, 16), 255, np.uint8)]))
  weights = [0.298936021293775, 0.587043074451121, 0.114020904255103]
  np.testing.assert_array_equal(out, np.floor(rgb @ weights + 0.5))
  gray = np.arange(256, dtype=np.uint8)[None].repeat(2, 0)
  np.testing.assert_array_equal(hog_input.crop_gray(_rgba(gray, np.full_like(gray, 255))), gray)  # gray stays gray


def test_crop_gray_empty_mask_is_white_frame():
  out = hog_input.crop_gray(np.zeros((5, 9, 4), np.uint8))  # crop_gray.m crashes here
  assert out.shape == (5, 9) and out.dtype == np.uint8 and (out == 255).all()
  assert (hog_input.hog_input(out) == 255).all()


def test_crop_gray_rejects_non_rgba():
  with pytest.raises(ValueError):
    hog_input.crop_gray(np.zeros((5, 9, 3), np.uint8))


def test_hog_input_stretches_without_keeping_aspect():
  gray = np.full((30, 240), 255, np.uint8)
  gray[:, :120] = 0  # left half black
  out = hog_input.hog_input(gray)
  assert out.shape == (120, 120) and out.dtype == np.uint8
  assert (out[:, :58] == 0).all() and (out[:, 62:] == 255).all()  # stretched, not letterboxed
  assert hog_input.hog_input(np.zeros((7, 5), np.uint8), size=60).shape == (60, 60)


def test_hog_input_is_matlab_imresize():
  rng = np.random.default_rng(0)
  for shape in ((97, 61), (240, 130), (120, 120), (33, 200)):
    # Smooth content: on noise the two libraries' pass order and intermediate uint8 clipping differ by design.
    gray = np.clip(ndimage.gaussian_filter(rng.normal(128, 400, shape), 3), 0, 255).astype(np.uint8)
    out = hog_input.hog_input(gray)
    # The jitted MATLAB imresize of the HoG stage (float32, other code path) gives the same uint8 image ...
    np.testing.assert_array_equal(out, np.asarray(resize.imresize(gray, (120, 120))).astype(np.uint8))
    # ... and Pillow's bicubic (same Keys kernel; other border rule, pass order and fixed-point rounding) agrees away
    # from the border up to the two 8-bit roundings of the two passes (<= 2 levels).
    pillow = np.asarray(Image.fromarray(gray).resize((120, 120), Image.BICUBIC)).astype(int)
    diff = np.abs(out[4:-4, 4:-4].astype(int) - pillow[4:-4, 4:-4])
    assert diff.max() <= 2 and diff.mean() < 0.3


def test_hog_input_antialiases_when_shrinking():
  stripes = np.zeros((240, 240), np.uint8)
  stripes[:, ::2] = 255  # 1-pixel stripes alias to solid black or white without a low-pass filter
  out = hog_input.hog_input(stripes).astype(int)
  assert np.abs(out[5:-5, 5:-5] - 127.5).max() < 10


def test_lfd_images_of_a_box():
  box = trimesh.creation.box((0.6, 1.2, 0.4))  # taller than wide, unit-ish size
  images = hog_input.lfd_images(embree.EmbreeRenderer(), box.vertices, box.faces, "chair", size=64, antialias=1)
  assert images.shape == (20, 120, 120) and images.dtype == np.uint8
  # The tight crop is stretched to fill the square: no white border rows or columns remain.
  assert (images[:, [0, -1], :] < 255).any(axis=(1, 2)).all()
  assert (images[:, :, [0, -1]] < 255).any(axis=(1, 2)).all()
  assert 0 < images.mean() < 255
  assert len({images[i].tobytes() for i in range(20)}) > 5  # the views change with azimuth
