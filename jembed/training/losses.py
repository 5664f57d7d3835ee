"""The training losses: the paper's Euclidean regression to the shape's point, and the optional heads' losses.

All return the mean over the (per-device) batch, so averaging them over equal device shards with `lax.pmean` gives
the global batch's mean.
"""

import jax
import jax.numpy as jnp
import optax

# Render for CNN's soft view loss (CRC softmax_with_view_loss_layer): (half-width B in bins, sigma in bins) per angle.
VIEW_LOSS_BANDS = {"azimuth": (15, 5.0), "elevation": (5, 3.0), "tilt": (5, 3.0)}


def euclidean_loss(predicted: jax.Array, target: jax.Array) -> jax.Array:
  """Caffe's `EuclideanLoss`, 1/(2N) sum_i ||predicted_i - target_i||^2.

  Args:
    predicted: float32[N, D] embedding points from the network.
    target: float32[N, D] the shapes' points.

  Returns:
    float32[] the loss.
  """
  return 0.5 * jnp.mean(jnp.sum(jnp.square(predicted - target), axis=-1))


def category_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy; logits float32[N, C], labels int32[N]."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def angle_bins(degrees: jax.Array, bins: int = 360) -> jax.Array:
  """float32 degrees[N] -> int32[N] bin in [0, bins): floor((degrees mod 360) / bin width), as R4CNN's labels."""
  return (jnp.floor(jnp.mod(degrees, 360.0) * (bins / 360.0)).astype(jnp.int32)) % bins


def soft_view_loss(logits: jax.Array, labels: jax.Array, band: int, sigma: float) -> jax.Array:
  """Render for CNN's distance-weighted cross-entropy over circular bins (paper-pipeline section 6).

  L_i = -sum_{k=-band..band} exp(-|k| / sigma) * log p_i[(v_i + k) mod bins], averaged over the batch; like the
  original it is not normalized by the sum of the weights.

  Args:
    logits: float32[N, bins] one angle head's logits.
    labels: int32[N] the true bin v_i.
    band: B, how many neighbouring bins on each side get credit.
    sigma: the weights' decay length, in bins.

  Returns:
    float32[] the loss.
  """
  bins = logits.shape[-1]
  offsets = jnp.arange(-band, band + 1)
  weights = jnp.exp(-jnp.abs(offsets).astype(jnp.float32) / sigma)
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  neighbours = jnp.mod(labels[:, None] + offsets[None, :], bins)
  picked = jnp.take_along_axis(log_p, neighbours, axis=-1)
  return -jnp.mean(jnp.sum(weights * picked, axis=-1))


def total_loss(outputs: dict[str, jax.Array], batch: dict[str, jax.Array],
               weights: dict[str, float]) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The weighted sum of the losses of the heads the network has.

  Args:
    outputs: the network's outputs ('point', optional 'category', 'azimuth', 'elevation', 'tilt').
    batch: a batch from the input pipeline ('point', 'category_index', angles in degrees).
    weights: loss weights by name ('embedding', 'category', 'viewpoint').

  Returns:
    (float32[] total, {name: float32[] each loss}).
  """
  parts = {"embedding_loss": euclidean_loss(outputs["point"], batch["point"])}
  total = weights["embedding"] * parts["embedding_loss"]
  if "category" in outputs:
    parts["category_loss"] = category_loss(outputs["category"], batch["category_index"])
    total += weights["category"] * parts["category_loss"]
  for angle, (band, sigma) in VIEW_LOSS_BANDS.items():
    if angle in outputs:
      labels = angle_bins(batch[angle], outputs[angle].shape[-1])
      parts[f"{angle}_loss"] = soft_view_loss(outputs[angle], labels, band, sigma)
      total += weights["viewpoint"] * parts[f"{angle}_loss"]
  return total, parts
