"""Our own image resizing: pinned to committed bytes, exact in its fixed-point arithmetic, near MATLAB's imresize."""

import importlib.util
import pathlib

import numpy as np
import pytest

from jembed.embedding import hog_input
from jembed.utils import resample

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"


def _maker():
  """tests/fixtures/make_stretch_fixture.py, which holds the settings the fixture was made with."""
  spec = importlib.util.spec_from_file_location("make_stretch_fixture", FIXTURES / "make_stretch_fixture.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def reference():
  with np.load(FIXTURES / "stretch.npz") as f:
    return {k: f[k] for k in f.files}


def test_stretch_gives_the_committed_bytes(reference):
  """A dependency upgrade (NumPy, SciPy) that changed a single byte of a stretched image fails here."""
  np.testing.assert_array_equal(resample.stretch(reference["image"], (64, 80)), reference["up"])
  np.testing.assert_array_equal(resample.stretch(reference["image"], 24), reference["down"])


def test_synthesized_image_gives_the_committed_bytes(reference):
  """The whole image side after the render (crop, procedural background, occluder, composite, stretch) is pinned:
  Pillow draws the clutter and blurs it, so a Pillow upgrade that changes a training image fails here."""
  np.testing.assert_array_equal(_maker().synthesized(reference["rgba"]), reference["synthesized"])


def _oracle(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """float64 dense matrices of the same 2^-14 weights, one axis at a time in MATLAB's order, rounded half up."""
  x = image.astype(np.float64)
  scales = (size[0] / x.shape[0], size[1] / x.shape[1])
  for axis in (0, 1) if scales[0] <= scales[1] else (1, 0):
    m = resample.fixed_point_matrix(x.shape[axis], size[axis]).toarray().astype(np.float64)
    x = np.moveaxis(np.tensordot(m, x, axes=(1, axis)), 0, axis)
    x = np.clip(np.floor(x + 0.5), 0, 255)
  return x.astype(np.uint8)


@pytest.mark.parametrize("shape,size", [((37, 53, 3), (64, 80)), ((120, 45, 3), (48, 48)), ((30, 200), (31, 17))])
def test_stretch_equals_float64_arithmetic_of_its_weights(shape, size):
  """float32 holds every partial sum exactly (the module's claim), so it equals float64 to the byte."""
  image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
  np.testing.assert_array_equal(resample.stretch(image, size), _oracle(image, size))


@pytest.mark.parametrize("n_in,n_out", [(37, 64), (150, 128), (1200, 128), (5, 3)])
def test_fixed_point_weights_are_multiples_of_2_to_minus_14_summing_to_one(n_in, n_out):
  m = resample.fixed_point_matrix(n_in, n_out).toarray().astype(np.float64)
  ticks = m * 2**resample.FRACTION_BITS
  np.testing.assert_array_equal(ticks, np.round(ticks))
  np.testing.assert_array_equal(ticks.sum(axis=1), 2**resample.FRACTION_BITS)
  assert 255 * np.abs(ticks).sum(axis=1).max() < 2**24  # the exactness bound of the module docstring
  np.testing.assert_allclose(m, resample.resize_matrix(n_in, n_out), atol=2**-15 * 4)


def test_stretch_is_matlab_imresize_within_one_gray_level():
  """Against the exact float64 MATLAB path of the shape side (hog_input, itself checked against MATLAB's numbers)."""
  gray = np.random.default_rng(2).integers(0, 256, (90, 61), dtype=np.uint8)
  ours, matlab = resample.stretch(gray, 120).astype(int), hog_input.hog_input(gray, 120).astype(int)
  assert np.abs(ours - matlab).max() <= 1 and np.mean(ours == matlab) > 0.95


def test_stretch_keeps_flat_images_flat_and_checks_its_input():
  flat = np.full((33, 47, 3), 201, np.uint8)
  np.testing.assert_array_equal(resample.stretch(flat, (20, 90)), 201)
  same = np.zeros((8, 8, 3), np.uint8)
  assert resample.stretch(same, 8) is same
  with pytest.raises(ValueError, match="uint8"):
    resample.stretch(np.zeros((8, 8), np.float32), 4)


def test_resize_of_float_images_is_the_matrices_product():
  grid = np.random.default_rng(3).random((4, 6))
  out = resample.resize(grid, (30, 20))
  expected = resample.resize_matrix(4, 30) @ grid @ resample.resize_matrix(6, 20).T
  assert out.dtype == np.float32 and out.shape == (30, 20)
  np.testing.assert_allclose(out, expected, rtol=1e-6)
