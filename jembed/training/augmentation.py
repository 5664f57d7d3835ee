"""On-device augmentation of training batches: random mirror and translation, per example.

Each example's randomness is keyed by its index in the global batch (as the dropout masks are), so a step does
not depend on how many devices share the batch. A mirrored image's viewpoint is mirrored too, as Render for CNN
does for its flipped real images: azimuth -> 360 - azimuth, tilt -> -tilt (elevation unchanged).
"""

import jax
import jax.numpy as jnp


def augment_batch(
    batch: dict[str, jax.Array], rng: jax.Array, example_ids: jax.Array, *, flip: bool, shift: float
) -> dict[str, jax.Array]:
  """The batch with its images randomly mirrored (p = 0.5) and shifted, and the angles updated to match.

  Args:
    batch: 'image' uint8[B, H, W, 3] and optional 'azimuth', 'tilt' float32[B] degrees (other keys pass through).
    rng: this step's key.
    example_ids: int32[B], each example's index in the global batch.
    flip: mirror left-right with probability 0.5.
    shift: largest translation as a fraction of the image size (edge pixels repeated); 0 = none.

  Returns:
    The batch with 'image' (and 'azimuth', 'tilt') replaced.
  """
  if not flip and not shift:
    return batch
  height, width = batch["image"].shape[1:3]
  margin = (round(shift * height), round(shift * width))

  def one(image, example):
    key_flip, key_shift = jax.random.split(jax.random.fold_in(rng, example))
    flipped = jax.random.bernoulli(key_flip) & flip
    image = jnp.where(flipped, image[:, ::-1], image)
    if any(margin):
      padded = jnp.pad(image, (margin, margin, (0, 0)), mode="edge")
      dy, dx = (jax.random.randint(k, (), 0, 2 * m + 1) for k, m in zip(jax.random.split(key_shift), margin))
      image = jax.lax.dynamic_slice(padded, (dy, dx, 0), image.shape)
    return image, flipped

  images, flipped = jax.vmap(one)(batch["image"], example_ids)
  return mirror_angles(dict(batch, image=images), flipped)


def mirror_angles(batch: dict[str, jax.Array], flipped: jax.Array) -> dict[str, jax.Array]:
  """The mirrored examples' (bool[B]) viewpoint: azimuth -> 360 - azimuth, tilt -> -tilt."""
  out = dict(batch)
  if "azimuth" in batch:
    out["azimuth"] = jnp.where(flipped, jnp.mod(360.0 - batch["azimuth"], 360.0), batch["azimuth"])
  if "tilt" in batch:
    out["tilt"] = jnp.where(flipped, -batch["tilt"], batch["tilt"])
  return out


def pick_feature_views(batch: dict[str, jax.Array], rng: jax.Array, example_ids: jax.Array) -> dict[str, jax.Array]:
  """Mirroring for cached backbone features: each example takes its mirrored image's features with p = 0.5.

  Args:
    batch: 'features' float32[B, F] and, when mirroring is on, 'features_flipped' float32[B, F] (the backbone's
      features of the mirrored images); other keys as in `augment_batch`.
    rng, example_ids: as in `augment_batch` (the same per-example draw decides the mirror).

  Returns:
    The batch with 'features' chosen (and 'azimuth', 'tilt' mirrored to match), without 'features_flipped'.
  """
  if "features_flipped" not in batch:
    return batch
  flipped = jax.vmap(lambda e: jax.random.bernoulli(jax.random.split(jax.random.fold_in(rng, e))[0]))(example_ids)
  out = {k: v for k, v in batch.items() if k != "features_flipped"}
  out["features"] = jnp.where(flipped[:, None], batch["features_flipped"], batch["features"])
  return mirror_angles(out, flipped)
