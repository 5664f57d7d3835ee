"""Photometric augmentation on the device, inside the jitted training step: what a camera does to a photo.

Brightness, contrast, saturation, hue, random grayscale, gamma, Gaussian blur and sensor noise, each applied to an
example with its own probability (`config.photometric`), in that order, at the size the network sees (the training
step stretches the batch first: the costs scale with the pixels). Every draw comes from the step's key folded
with the example's index in the global batch, so a step is deterministic and does not depend on the device count
(as `augmentation.augment_batch`). Definitions follow Pillow's `ImageEnhance` (brightness: a blend with black;
contrast: with the image's mean luma; saturation ('Color'): with the pixel's luma, ITU-R 601-2); hue is a rotation
of the chroma plane of YIQ (one 3 x 3 matrix per image: far cheaper on a CPU than a round trip through HSV), and the
sensor noise is triangular (the sum of two uniform draws from 8 random bits each, scaled to unit variance: a quarter
of the threefry work of Gaussian draws), so the tests can compare each with Pillow, scikit-image and scipy.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

LUMA = (0.299, 0.587, 0.114)
OPERATIONS = ("brightness", "contrast", "saturation", "hue", "grayscale", "gamma", "blur", "noise")
_BLUR_RADIUS = 3  # 7 taps: a sigma up to ~1.5 px at the network's input sizes


@dataclasses.dataclass(frozen=True)
class Photometric:
  """Probability (p_*) and strength of each operation; all p = 0 is the identity (and costs nothing).

  Attributes:
    brightness, contrast, saturation: factors drawn from U(1 - range, 1 + range).
    hue: shift of the HSV hue, a fraction of the circle, U(-range, range).
    grayscale: probability only.
    gamma: x -> x^g with log g ~ U(-range, range).
    blur: Gaussian sigma ~ U(0.1, blur_sigma) pixels.
    noise: additive Gaussian noise, standard deviation U(0, noise_std) (of the [0, 1] range).
  """

  p_brightness: float = 0.0
  brightness: float = 0.4
  p_contrast: float = 0.0
  contrast: float = 0.4
  p_saturation: float = 0.0
  saturation: float = 0.5
  p_hue: float = 0.0
  hue: float = 0.05
  p_grayscale: float = 0.0
  p_gamma: float = 0.0
  gamma: float = 0.3
  p_blur: float = 0.0
  blur_sigma: float = 1.2
  p_noise: float = 0.0
  noise_std: float = 0.04

  @classmethod
  def from_config(cls, section: ml_collections.ConfigDict | None) -> "Photometric":
    """From `config.photometric` (`<op>` = probability, `<op>_range` / `blur_sigma` / `noise_std` = strength)."""
    if section is None:
      return cls()
    get = lambda k, d: float(section.get(k, d))  # noqa: E731
    return cls(
        get("brightness", 0.0),
        get("brightness_range", 0.4),
        get("contrast", 0.0),
        get("contrast_range", 0.4),
        get("saturation", 0.0),
        get("saturation_range", 0.5),
        get("hue", 0.0),
        get("hue_range", 0.05),
        get("grayscale", 0.0),
        get("gamma", 0.0),
        get("gamma_range", 0.3),
        get("blur", 0.0),
        get("blur_sigma", 1.2),
        get("noise", 0.0),
        get("noise_std", 0.04),
    )

  @property
  def enabled(self) -> bool:
    return any(getattr(self, f.name) > 0 for f in dataclasses.fields(self) if f.name.startswith("p_"))


def luma(x: jax.Array) -> jax.Array:
  """float[..., 3] -> float[...], ITU-R 601-2 (Pillow's 'L'); a weighted sum (a matmul with K = 3 is slow on CPUs)."""
  return LUMA[0] * x[..., 0] + LUMA[1] * x[..., 1] + LUMA[2] * x[..., 2]


def adjust_brightness(x: jax.Array, factor) -> jax.Array:
  return x * factor


def adjust_contrast(x: jax.Array, factor) -> jax.Array:
  mean = jnp.mean(luma(x))
  return mean + factor * (x - mean)


def adjust_saturation(x: jax.Array, factor) -> jax.Array:
  gray = luma(x)[..., None]
  return gray + factor * (x - gray)


# scikit-image's RGB -> YIQ matrix (skimage.color.rgb2yiq); rows Y, I, Q.
_YIQ = np.array([[0.299, 0.587, 0.114], [0.59590059, -0.27455667, -0.32134392], [0.21153661, -0.52273617, 0.31119955]])
_YIQ_INV = np.linalg.inv(_YIQ)  # once, in float64, not a 3 x 3 inversion per image inside the step


def hue_matrix(shift) -> jax.Array:
  """float32[3, 3] M with rgb' = M @ rgb: the I-Q plane rotated by `shift` turns (a fraction of the circle)."""
  angle = 2.0 * jnp.pi * shift
  c, s = jnp.cos(angle), jnp.sin(angle)
  rotation = jnp.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], jnp.float32)
  return jnp.asarray(_YIQ_INV, jnp.float32) @ rotation @ jnp.asarray(_YIQ, jnp.float32)


def adjust_hue(x: jax.Array, shift) -> jax.Array:
  m = hue_matrix(shift)
  return sum(m[:, j] * x[..., j : j + 1] for j in range(3))  # per-channel weighted sums, as `luma`


def adjust_gamma(x: jax.Array, gamma) -> jax.Array:
  return jnp.power(jnp.clip(x, 0.0, 1.0), gamma)


def gaussian_blur(x: jax.Array, sigma) -> jax.Array:
  """float[H, W, C] blurred separably with a normalized 7-tap Gaussian, edges repeated."""
  taps = jnp.arange(-_BLUR_RADIUS, _BLUR_RADIUS + 1, dtype=x.dtype)
  kernel = jnp.exp(-0.5 * (taps / sigma) ** 2)
  kernel = kernel / jnp.sum(kernel)
  r = _BLUR_RADIUS
  padded = jnp.pad(x, ((r, r), (0, 0), (0, 0)), mode="edge")
  x = sum(kernel[i] * padded[i : i + x.shape[0]] for i in range(2 * r + 1))
  padded = jnp.pad(x, ((0, 0), (r, r), (0, 0)), mode="edge")
  return sum(kernel[i] * padded[:, i : i + x.shape[1]] for i in range(2 * r + 1))


def triangular_noise(key: jax.Array, shape) -> jax.Array:
  """float32 noise of mean 0 and variance 1: (a + b - 255) / sqrt(2 (256^2 - 1) / 12), a and b uniform bytes."""
  bits = jax.random.bits(key, (2,) + tuple(shape), jnp.uint8).astype(jnp.float32)
  return (bits[0] + bits[1] - 255.0) / np.sqrt(2.0 * (256.0**2 - 1.0) / 12.0)


def _add_noise(std: float):
  def add(x, key):
    k_std, k_noise = jax.random.split(key)
    return x + jax.random.uniform(k_std, ()) * std * triangular_noise(k_noise, x.shape)

  return add


def augment_image(image: jax.Array, key: jax.Array, settings: Photometric) -> jax.Array:
  """One uint8[H, W, 3] image -> uint8[H, W, 3] with the operations of `settings` drawn from `key`."""
  keys = iter(jax.random.split(key, 16))
  x = image.astype(jnp.float32) / 255.0

  def maybe(x, p, op, draw):
    if p <= 0:
      return x
    apply = jax.random.bernoulli(next(keys), p)
    return jnp.where(apply, op(x, draw(next(keys))), x)

  s = settings
  uniform = lambda a, b: lambda k: jax.random.uniform(k, (), jnp.float32, a, b)  # noqa: E731
  x = maybe(x, s.p_brightness, adjust_brightness, uniform(1 - s.brightness, 1 + s.brightness))
  x = maybe(x, s.p_contrast, adjust_contrast, uniform(1 - s.contrast, 1 + s.contrast))
  x = maybe(x, s.p_saturation, adjust_saturation, uniform(1 - s.saturation, 1 + s.saturation))
  x = maybe(x, s.p_hue, adjust_hue, uniform(-s.hue, s.hue))
  x = maybe(x, s.p_grayscale, lambda x, _: jnp.repeat(luma(x)[..., None], 3, -1), lambda k: 0.0)
  x = maybe(x, s.p_gamma, adjust_gamma, lambda k: jnp.exp(jax.random.uniform(k, (), jnp.float32, -s.gamma, s.gamma)))
  x = maybe(x, s.p_blur, gaussian_blur, uniform(0.1, max(0.1, s.blur_sigma)))
  x = maybe(x, s.p_noise, _add_noise(s.noise_std), lambda k: k)
  return jnp.clip(jnp.round(x * 255.0), 0, 255).astype(jnp.uint8)


def augment_batch(images: jax.Array, rng: jax.Array, example_ids: jax.Array, settings: Photometric) -> jax.Array:
  """uint8[B, H, W, 3] -> uint8[B, H, W, 3], each example keyed by `fold_in(rng, example_id)`."""
  if not settings.enabled:
    return images
  return jax.vmap(lambda im, e: augment_image(im, jax.random.fold_in(rng, e), settings))(images, example_ids)
