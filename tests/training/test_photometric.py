"""Photometric augmentation against Pillow's ImageEnhance and scikit-image (independent implementations)."""

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from PIL import ImageEnhance
import pytest
from scipy import ndimage
from skimage import color as skcolor
from skimage import exposure

from jembed.training import photometric


@pytest.fixture(name="image")
def _image():
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)


def _float(image):
  return jnp.asarray(image, jnp.float32) / 255.0


def _to_uint8(x):
  return np.asarray(jnp.clip(jnp.round(x * 255.0), 0, 255)).astype(np.uint8)


@pytest.mark.parametrize("factor", [0.6, 1.3])
def test_brightness_and_saturation_match_pillow(image, factor):
  pil = Image.fromarray(image)
  ours = _to_uint8(photometric.adjust_brightness(_float(image), factor))
  theirs = np.asarray(ImageEnhance.Brightness(pil).enhance(factor))
  assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
  ours = _to_uint8(photometric.adjust_saturation(_float(image), factor))
  theirs = np.asarray(ImageEnhance.Color(pil).enhance(factor))
  assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 2  # Pillow rounds the gray image to 8 bits first


def test_contrast_matches_pillow(image):
  # Pillow blends with the mean of the 8-bit luma image, rounded: compare on an image whose mean luma is an integer
  # within half a level, so only the per-pixel rounding differs.
  ours = _to_uint8(photometric.adjust_contrast(_float(image), 0.5))
  theirs = np.asarray(ImageEnhance.Contrast(Image.fromarray(image)).enhance(0.5))
  assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 2


def test_hue_rotates_the_yiq_chroma_plane_as_skimage(image):
  x = image.astype(np.float64) / 255.0
  yiq = skcolor.rgb2yiq(x)
  angle = 2 * np.pi * 0.2
  i, q = yiq[..., 1].copy(), yiq[..., 2].copy()
  yiq[..., 1], yiq[..., 2] = np.cos(angle) * i - np.sin(angle) * q, np.sin(angle) * i + np.cos(angle) * q
  np.testing.assert_allclose(np.asarray(photometric.adjust_hue(_float(image), 0.2)), skcolor.yiq2rgb(yiq), atol=1e-5)
  np.testing.assert_allclose(np.asarray(photometric.adjust_hue(_float(image), 1.0)), x, atol=1e-5)  # a full turn
  gray = np.repeat(x[..., :1], 3, -1)
  np.testing.assert_allclose(np.asarray(photometric.adjust_hue(jnp.asarray(gray, jnp.float32), 0.3)), gray, atol=1e-5)


def test_noise_has_unit_variance_and_zero_mean():
  noise = np.asarray(photometric.triangular_noise(jax.random.key(0), (200, 200)))
  assert abs(noise.mean()) < 0.02 and abs(noise.std() - 1.0) < 0.02
  assert np.abs(noise).max() <= np.sqrt(6.0) + 1e-5  # triangular on [-sqrt 6, sqrt 6]


def test_gamma_matches_skimage(image):
  ours = np.asarray(photometric.adjust_gamma(_float(image), 1.7))
  np.testing.assert_allclose(ours, exposure.adjust_gamma(image.astype(np.float64) / 255.0, 1.7), atol=1e-6)


def test_blur_matches_scipy_gaussian_filter(image):
  x = image.astype(np.float64) / 255.0
  ours = np.asarray(photometric.gaussian_blur(_float(image), 1.0))
  # scipy's kernel truncated at 3 sigma = our 7 taps at sigma 1; 'nearest' repeats the edge as we do.
  theirs = ndimage.gaussian_filter(x, sigma=(1.0, 1.0, 0.0), mode="nearest", truncate=3.0)
  np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_batch_is_deterministic_per_example_and_off_is_identity(image):
  images = jnp.asarray(np.stack([image] * 4))
  settings = photometric.Photometric(p_brightness=1.0, p_hue=1.0, p_noise=1.0, p_blur=0.5, p_grayscale=0.5)
  key = jax.random.key(3)
  a = np.asarray(photometric.augment_batch(images, key, jnp.arange(4), settings))
  b = np.asarray(photometric.augment_batch(images[2:], key, jnp.arange(2, 4), settings))
  np.testing.assert_array_equal(a[2:], b)  # an example's draw depends on its index only, not on the batch split
  assert len({a[i].tobytes() for i in range(4)}) == 4  # different examples, different draws
  assert a.dtype == np.uint8 and not np.array_equal(a[0], image)
  off = photometric.augment_batch(images, key, jnp.arange(4), photometric.Photometric())
  np.testing.assert_array_equal(np.asarray(off), np.asarray(images))


def test_grayscale_always_gives_equal_channels(image):
  settings = photometric.Photometric(p_grayscale=1.0)
  out = np.asarray(photometric.augment_image(jnp.asarray(image), jax.random.key(0), settings))
  assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
  luma = image.astype(np.float64) @ np.array(photometric.LUMA)
  assert np.abs(out[..., 0].astype(int) - np.rint(luma).astype(int)).max() <= 1
