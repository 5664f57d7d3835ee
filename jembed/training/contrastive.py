"""Rank-aware losses against the shape points: InfoNCE and Robinson et al.'s hard contrastive loss (HCL).

The paper's loss regresses each image onto its shape's point; nothing in it asks that the right shape be the nearest.
These losses do: each row of a logit matrix (an anchor's similarity to its candidates, temperature folded in) has one
positive column, the other columns are negatives, and the loss is a cross-entropy over them.

HCL (Robinson, Chuang, Sra, Jegelka, ICLR 2021; the batch estimator of joshr17/HCL `image/main.py`), per row with
positive logit s+ and N negative logits s_i:
  w_i = exp(beta * s_i)                                    importance weights: hard negatives count more
  R   = sum_i w_i exp(s_i) / mean_i(w_i)                   reweighted negative mass, N x E_q[e^s]
  Ng  = max((R - tau_plus * N * e^{s+}) / (1 - tau_plus),  N * e^{floor})   debiased, clamped at its minimum
  L   = -log(e^{s+} / (e^{s+} + Ng))
beta = 0, tau_plus = 0 is InfoNCE. Every step here is in log space (logsumexp, log1p), so logits of 1e4 (a temperature
of 0.01) neither overflow nor give NaN gradients in float32.

All functions are pure and jittable; the masks are boolean arrays, not Python control flow.
"""

import jax
import jax.numpy as jnp

_LN2 = 0.6931471805599453


def neg_sq_distance(a: jax.Array, b: jax.Array, temperature: jax.Array | float = 1.0) -> jax.Array:
  """-||a_i - b_j||^2 / temperature, the similarity of the paper's L2 space.

  Args:
    a: float32[B, D] anchors (image points).
    b: float32[N, D] candidates (shape points).
    temperature: a positive scalar (float or float32[]).

  Returns:
    float32[B, N] logits. Computed as 2 a.b - |a|^2 - |b|^2 (one GEMM) and clipped at 0 from above, since rounding can
    make a distance slightly negative.
  """
  a, b = a.astype(jnp.float32), b.astype(jnp.float32)
  d2 = (
      jnp.sum(a * a, -1)[:, None]
      + jnp.sum(b * b, -1)[None, :]
      - 2.0 * jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)
  )
  return -jnp.maximum(d2, 0.0) / temperature


def cosine_similarity(
    a: jax.Array, b: jax.Array, temperature: jax.Array | float = 1.0, eps: float = 1e-12
) -> jax.Array:
  """cos(a_i, b_j) / temperature (CLIP's and HCL's similarity); float32[B, D], float32[N, D] -> float32[B, N]."""
  a, b = a.astype(jnp.float32), b.astype(jnp.float32)
  a = a * jax.lax.rsqrt(jnp.maximum(jnp.sum(a * a, -1, keepdims=True), eps))
  b = b * jax.lax.rsqrt(jnp.maximum(jnp.sum(b * b, -1, keepdims=True), eps))
  return jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST) / temperature


SIMILARITIES = {"neg_sq_distance": neg_sq_distance, "cosine": cosine_similarity}


def similarity(a: jax.Array, b: jax.Array, kind: str, temperature: jax.Array | float) -> jax.Array:
  """The `kind` similarity ('neg_sq_distance' | 'cosine') of a float32[B, D] and b float32[N, D]: float32[B, N]."""
  if kind not in SIMILARITIES:
    raise ValueError(f"similarity {kind!r} is not one of {sorted(SIMILARITIES)}")
  return SIMILARITIES[kind](a, b, temperature)


def logit_floor(kind: str, temperature: jax.Array | float) -> jax.Array | None:
  """The smallest logit the `kind` similarity can give (HCL's clamp): -1/t for cosine, none for distances."""
  return -1.0 / jnp.asarray(temperature, jnp.float32) if kind == "cosine" else None


def _log1mexp(x: jax.Array) -> jax.Array:
  """log(1 - e^x) for x < 0, accurate at both ends (Maechler 2012); x is clipped just below 0."""
  x = jnp.minimum(x, -1e-30)
  return jnp.where(x > -_LN2, jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


def _negatives(logits: jax.Array, positives: jax.Array, exclude: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """(float32[B] positive logits, bool[B, N] which columns are negatives: not the positive, not excluded)."""
  columns = jnp.arange(logits.shape[1])[None, :]
  is_positive = columns == positives[:, None]
  valid = ~is_positive if exclude is None else ~(is_positive | exclude)
  positive_logit = jnp.take_along_axis(logits, positives[:, None], axis=1)[:, 0]
  return positive_logit, valid


def hcl_per_row(
    logits: jax.Array,
    positives: jax.Array,
    exclude: jax.Array | None = None,
    *,
    beta: float | jax.Array = 1.0,
    tau_plus: float | jax.Array = 0.1,
    floor: float | jax.Array | None = None,
) -> jax.Array:
  """HCL of each row (the module docstring's estimator), in log space.

  Args:
    logits: float32[B, N] similarities divided by the temperature; row b = anchor b against N candidates.
    positives: int32[B] the positive column of each row.
    exclude: optional bool[B, N], True = not a negative (e.g. another image of the anchor's shape); the positive
      column is never a negative whatever this says.
    beta: concentration of the importance weights (0 = uniform, as InfoNCE).
    tau_plus: class prior of the debiasing in [0, 1) (the chance that a "negative" is really a positive).
    floor: the smallest possible logit (the clamp Ng >= N e^floor; -1/t for cosine logits). None = each row's
      smallest negative logit, a bound that holds for any similarity (N e^{min s} <= sum e^{s}).

  Returns:
    float32[B] the loss of each row; a row without negatives has loss 0.
  """
  logits = logits.astype(jnp.float32)
  s_pos, valid = _negatives(logits, positives.astype(jnp.int32), exclude)
  count = jnp.sum(valid, axis=1).astype(jnp.float32)
  has_negatives = count > 0
  log_count = jnp.log(jnp.maximum(count, 1.0))
  # A row without negatives reads all its columns (finite) and is zeroed at the end: an all -inf row would give NaN
  # gradients through the final `where`.
  valid = valid | ~has_negatives[:, None]
  # log R = logsumexp((1 + beta) s) - logsumexp(beta s) + log N: w_i e^{s_i} summed, over the mean of the w_i.
  log_r = (
      jax.nn.logsumexp(jnp.where(valid, (1.0 + beta) * logits, -jnp.inf), axis=1)
      - jax.nn.logsumexp(jnp.where(valid, beta * logits, -jnp.inf), axis=1)
      + log_count
  )
  # Debiasing: log(R - tau+ N e^{s+}) = log R + log(1 - e^{log(tau+ N) + s+ - log R}), real only while positive.
  log_tau = jnp.log(jnp.asarray(tau_plus, jnp.float32))
  ratio = log_tau + log_count + s_pos - log_r
  debiased = ratio < 0
  log_ng = log_r + _log1mexp(jnp.where(debiased, ratio, -1.0)) - jnp.log1p(-jnp.asarray(tau_plus, jnp.float32))
  if floor is None:
    row_floor = jnp.min(jnp.where(valid, logits, jnp.inf), axis=1)
  else:
    row_floor = jnp.broadcast_to(jnp.asarray(floor, jnp.float32), s_pos.shape)
  log_floor = log_count + row_floor
  log_ng = jnp.where(debiased & (log_ng >= log_floor), log_ng, log_floor)
  # -log(e^{s+} / (e^{s+} + Ng)) = softplus(log Ng - s+).
  return jnp.where(has_negatives, jax.nn.softplus(log_ng - s_pos), 0.0)


def hcl(
    logits: jax.Array,
    positives: jax.Array,
    exclude: jax.Array | None = None,
    *,
    beta: float | jax.Array = 1.0,
    tau_plus: float | jax.Array = 0.1,
    floor: float | jax.Array | None = None,
) -> jax.Array:
  """The mean over rows of `hcl_per_row` (same arguments): float32[]."""
  return jnp.mean(hcl_per_row(logits, positives, exclude, beta=beta, tau_plus=tau_plus, floor=floor))


def infonce_per_row(logits: jax.Array, positives: jax.Array, exclude: jax.Array | None = None) -> jax.Array:
  """Softmax cross-entropy of each row over its positive and its negatives (excluded columns dropped): float32[B].

  Args:
    logits: float32[B, N] similarities divided by the temperature.
    positives: int32[B] the positive column of each row.
    exclude: optional bool[B, N], True = leave this column out of the row's softmax (never the positive).
  """
  logits = logits.astype(jnp.float32)
  s_pos, valid = _negatives(logits, positives.astype(jnp.int32), exclude)
  keep = valid | (jnp.arange(logits.shape[1])[None, :] == positives[:, None])
  return jax.nn.logsumexp(jnp.where(keep, logits, -jnp.inf), axis=1) - s_pos


def infonce(logits: jax.Array, positives: jax.Array, exclude: jax.Array | None = None) -> jax.Array:
  """The mean over rows of `infonce_per_row`: float32[]."""
  return jnp.mean(infonce_per_row(logits, positives, exclude))


def contrastive_loss(
    logits: jax.Array,
    positives: jax.Array,
    exclude: jax.Array | None = None,
    *,
    objective: str = "hcl",
    beta: float = 1.0,
    tau_plus: float = 0.1,
    floor: float | jax.Array | None = None,
) -> jax.Array:
  """`objective` ('infonce' | 'hcl') of a logit matrix, averaged over rows: float32[]."""
  if objective == "infonce":
    return infonce(logits, positives, exclude)
  if objective == "hcl":
    return hcl(logits, positives, exclude, beta=beta, tau_plus=tau_plus, floor=floor)
  raise ValueError(f"contrastive objective {objective!r} is not 'infonce' or 'hcl'")


def symmetric_hcl(
    image_emb: jax.Array,
    shape_emb: jax.Array,
    shape_ids: jax.Array,
    *,
    similarity_kind: str = "cosine",
    temperature: float | jax.Array = 0.07,
    beta: float | jax.Array = 1.0,
    tau_plus: float | jax.Array = 0.1,
    objective: str = "hcl",
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Multi-modal HCL between paired images and shapes, both directions averaged (as CLIP's symmetric loss).

  Row i of S = sim(image_emb, shape_emb) / t has its own shape i as the positive; a column j != i with the same
  shape id (another image of that shape in the batch, so the same shape embedded again) is not a negative. The
  shape -> image direction is the same on S^T.

  Args:
    image_emb: float32[B, D] image embeddings.
    shape_emb: float32[B, D] the embedding of each image's shape (row i pairs with image i).
    shape_ids: int32[B] the shape index of each pair.
    similarity_kind: 'cosine' | 'neg_sq_distance'.
    temperature: scalar (a learned one may be a traced float32[]).
    beta, tau_plus: HCL's concentration and class prior (0, 0 = InfoNCE).
    objective: 'hcl' | 'infonce'.

  Returns:
    (float32[] the mean of both directions, {'image_to_shape': float32[], 'shape_to_image': float32[]}).
  """
  logits = similarity(image_emb, shape_emb, similarity_kind, temperature)
  same_shape = shape_ids[:, None] == shape_ids[None, :]
  diagonal = jnp.arange(logits.shape[0], dtype=jnp.int32)
  floor = logit_floor(similarity_kind, temperature)
  kwargs = dict(objective=objective, beta=beta, tau_plus=tau_plus, floor=floor)
  parts = {
      "image_to_shape": contrastive_loss(logits, diagonal, same_shape, **kwargs),
      "shape_to_image": contrastive_loss(logits.T, diagonal, same_shape.T, **kwargs),
  }
  return 0.5 * (parts["image_to_shape"] + parts["shape_to_image"]), parts
