"""The training losses: the paper's Euclidean regression to the shape's point, the rank-aware contrastive term against
all the shape points (`config.train.loss` 'infonce' | 'hcl', see `contrastive`), and the optional heads' losses.

All return the mean over the (per-device) batch, so averaging them over equal device shards with `lax.pmean` gives
the global batch's mean.

How the contrastive term scales with the number of shapes N: every image is compared with every shape point, a
[B, N] logit matrix from one [B, D] x [D, N] product per device (the shape points replicated). At 50,000 shapes,
D = 128 and 64 images per device that is 0.8 GFLOP and 12.8 MB of logits a step, less than the small CNN's own
forward pass. Above `max_negatives` shapes only each image's hardest negatives (`lax.top_k` of its logits, the
ones HCL weights most anyway) enter the softmax, so the loss's own work stays O(B k); the far shapes it drops
carry e^{s} ~ 0 at the temperatures used. Beyond a few million shapes the points would have to be sharded too.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jembed.training import contrastive

# Render for CNN's soft view loss (CRC softmax_with_view_loss_layer): (half-width B in bins, sigma in bins) per angle.
VIEW_LOSS_BANDS = {"azimuth": (15, 5.0), "elevation": (5, 3.0), "tilt": (5, 3.0)}


def euclidean_loss(predicted: jax.Array, target: jax.Array) -> jax.Array:
  """Caffe's `EuclideanLoss`, 1/(2N) sum_i ||predicted_i - target_i||^2.

  Args:
    predicted: float32[N, D] embedding points from the network.
    target: float32[N, D] the shapes' points.

  Returns:
    float32[] the loss (in float32 whatever the inputs' dtype).
  """
  diff = predicted.astype(jnp.float32) - target.astype(jnp.float32)
  return 0.5 * jnp.mean(jnp.sum(jnp.square(diff), axis=-1))


def category_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy (its logsumexp in float32); logits [N, C], labels int32[N] -> float32[]."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels))


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


@dataclasses.dataclass(frozen=True)
class RankObjective:
  """The contrastive term against the shape points (hashable: static under jit).

  Attributes:
    objective: 'infonce' | 'hcl'.
    similarity: 'neg_sq_distance' (the L2 space retrieval ranks in) | 'cosine'.
    temperature: the fixed temperature (a learned one comes from the network's 'temperature' output instead).
    beta, tau_plus: HCL's concentration and class prior (ignored by InfoNCE).
    max_negatives: all the other shapes are negatives while there are at most this many; above, each image's
      hardest `max_negatives`.
    spread: the shape points' mean squared distance over all N^2 pairs. Squared distances are divided by it, so
      the temperature and the regression weight mean the same in any shape space.
    regression_weight: x the paper's regression loss / spread, added to keep the image points in the Sammon
      space (0 = the contrastive term alone).
    shape_to_image: x the other direction (CLIP's symmetric loss): each image's shape point against the global
      batch's image points, its own image the positive, the shape's other images in the batch not negatives. It
      asks that a shape's nearest images be its own (the shape->image ranks); 0 = off.
  """

  objective: str = "hcl"
  similarity: str = "neg_sq_distance"
  temperature: float = 0.1
  beta: float = 1.0
  tau_plus: float = 0.0
  max_negatives: int = 4096
  spread: float = 1.0
  regression_weight: float = 0.0
  shape_to_image: float = 0.0

  def loss(
      self, logits: jax.Array, positives: jax.Array, exclude: jax.Array | None, temperature: jax.Array | float
  ) -> jax.Array:
    """This objective (InfoNCE or HCL with its beta, tau_plus and the similarity's floor) of float32[B, M] logits
    with their int32[B] positive columns and optional bool[B, M] excluded ones: float32[], the mean over rows."""
    return contrastive.contrastive_loss(
        logits,
        positives,
        exclude,
        objective=self.objective,
        beta=self.beta,
        tau_plus=self.tau_plus,
        floor=contrastive.logit_floor(self.similarity, temperature),
    )

  @property
  def unit(self) -> float:
    """What the similarity is divided by before the temperature: the spread for distances, 1 for cosine."""
    return self.spread if self.similarity == "neg_sq_distance" else 1.0

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, points: np.ndarray) -> "RankObjective | None":
    """`config.train.loss` and `config.contrastive` for the shape points float32[N, D]; None for 'regression'."""
    loss = config.train.get("loss", "regression")
    if loss == "regression":
      return None
    if loss not in ("infonce", "hcl"):
      raise ValueError(f"config.train.loss must be 'regression', 'infonce' or 'hcl', got {loss!r}")
    c = config.contrastive
    if c.similarity not in contrastive.SIMILARITIES:
      raise ValueError(
          f"config.contrastive.similarity must be one of {sorted(contrastive.SIMILARITIES)}, " f"got {c.similarity!r}"
      )
    if not float(c.temperature) > 0:
      raise ValueError(f"config.contrastive.temperature must be positive, got {c.temperature}")
    # Mean of |x_i - x_j|^2 over all pairs = 2 x the total variance: O(N D), no N x N matrix.
    spread = 2.0 * float(np.sum(np.var(np.asarray(points, np.float64), axis=0)))
    return cls(
        objective=loss,
        similarity=c.similarity,
        temperature=float(c.temperature),
        beta=float(c.beta),
        tau_plus=float(c.tau_plus),
        max_negatives=int(c.max_negatives),
        spread=max(spread, 1e-12),
        regression_weight=float(c.regression_weight),
        shape_to_image=float(c.get("shape_to_image", 0.0)),
    )


def rank_loss(
    points: jax.Array,
    shape_points: jax.Array,
    shape_index: jax.Array,
    objective: RankObjective,
    temperature: jax.Array | float,
) -> jax.Array:
  """The contrastive loss of image points against all shape points, the image's own shape the positive.

  Args:
    points: float32[B, D] the network's image points.
    shape_points: float32[N, D] every shape's point.
    shape_index: int32[B] each image's row in `shape_points`.
    objective: what to compute.
    temperature: float32[] or float.

  Returns:
    float32[] the mean over the images.
  """
  logits = contrastive.similarity(points, shape_points, objective.similarity, objective.unit * temperature)
  positives = shape_index.astype(jnp.int32)
  if shape_points.shape[0] - 1 > objective.max_negatives:
    columns = jnp.arange(shape_points.shape[0])[None, :]
    hardest, _ = jax.lax.top_k(jnp.where(columns == positives[:, None], -jnp.inf, logits), objective.max_negatives)
    own = jnp.take_along_axis(logits, positives[:, None], axis=1)
    logits, positives = jnp.concatenate([own, hardest], axis=1), jnp.zeros_like(positives)
  return objective.loss(logits, positives, None, temperature)


def shape_to_image_loss(
    points: jax.Array,
    shape_points: jax.Array,
    shape_index: jax.Array,
    objective: RankObjective,
    temperature: jax.Array | float,
    axis_name: str | None = None,
) -> jax.Array:
  """The shape -> image direction: each image's shape point against all the batch's image points.

  Row i is anchored at image i's shape point; its positive is image i, the batch's other images of that shape are
  left out of the row (neither positive nor negative), every other image is a negative. Under `shard_map` with
  `axis_name` the image points are all-gathered, so a row sees the *global* batch and the loss does not depend on the
  device count (the gather's transpose hands each device the gradient of its own points).

  Args:
    points: float32[b, D] this device's image points.
    shape_points: float32[N, D] every shape's point.
    shape_index: int32[b] each image's row in `shape_points`.
    objective: its similarity, temperature unit, objective, beta and tau_plus are used.
    temperature: float32[] or float.
    axis_name: the mesh axis the batch is split over, or None (one device, no collectives).

  Returns:
    float32[] the mean over this device's rows.
  """
  shape_index = shape_index.astype(jnp.int32)
  local = points.shape[0]
  if axis_name is None:
    everyone, every_index, offset = points, shape_index, 0
  else:
    everyone = jax.lax.all_gather(points, axis_name, tiled=True)
    every_index = jax.lax.all_gather(shape_index, axis_name, tiled=True)
    offset = jax.lax.axis_index(axis_name) * local
  anchors = jnp.take(shape_points, shape_index, axis=0)
  logits = contrastive.similarity(anchors, everyone, objective.similarity, objective.unit * temperature)  # [b, B]
  positives = offset + jnp.arange(local, dtype=jnp.int32)
  same_shape = shape_index[:, None] == every_index[None, :]
  return objective.loss(logits, positives, same_shape, temperature)


def total_loss(
    outputs: dict[str, jax.Array],
    batch: dict[str, jax.Array],
    weights: dict[str, float],
    shape_points: jax.Array | None = None,
    objective: RankObjective | None = None,
    axis_name: str | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The weighted sum of the losses of the heads the network has.

  Args:
    outputs: the network's outputs ('point', optional 'category', 'azimuth', 'elevation', 'tilt', 'temperature').
    batch: a batch from the input pipeline ('point', 'shape_index', 'category_index', angles in degrees).
    weights: loss weights by name ('embedding' = the regression's weight without an objective, 'category',
      'viewpoint').
    shape_points: float32[N, D] all shape points, for the contrastive term.
    objective: the contrastive term (which brings its own regression weight), or None: the paper's regression.
    axis_name: the mesh axis the batch is split over (inside `shard_map`), for the shape -> image term's gather.

  Returns:
    (float32[] total, {name: float32[] each loss (the regression's always, as 'embedding_loss'), and 'temperature'
    when it is learned}).
  """
  parts = {"embedding_loss": euclidean_loss(outputs["point"], batch["point"])}
  if objective is None:
    total = weights["embedding"] * parts["embedding_loss"]
  else:
    temperature = outputs.get("temperature", objective.temperature)
    parts["rank_loss"] = rank_loss(outputs["point"], shape_points, batch["shape_index"], objective, temperature)
    total = parts["rank_loss"] + objective.regression_weight / objective.spread * parts["embedding_loss"]
    if objective.shape_to_image:
      parts["shape_to_image_loss"] = shape_to_image_loss(
          outputs["point"], shape_points, batch["shape_index"], objective, temperature, axis_name
      )
      total += objective.shape_to_image * parts["shape_to_image_loss"]
    if "temperature" in outputs:
      parts["temperature"] = outputs["temperature"]
  if "category" in outputs:
    parts["category_loss"] = category_loss(outputs["category"], batch["category_index"])
    total += weights["category"] * parts["category_loss"]
  for angle, (band, sigma) in VIEW_LOSS_BANDS.items():
    if angle in outputs:
      labels = angle_bins(batch[angle], outputs[angle].shape[-1])
      parts[f"{angle}_loss"] = soft_view_loss(outputs[angle], labels, band, sigma)
      total += weights["viewpoint"] * parts[f"{angle}_loss"]
  return total, parts
