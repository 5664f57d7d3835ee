"""Contrastive losses: HCL against a float64 transcription of the reference estimator, a hand-worked case, extremes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special
from scipy.spatial import distance

from configs import tiny
from jembed.training import contrastive
from jembed.training import losses

pytestmark = pytest.mark.usefixtures("fast_compiles")


def _reference_hcl(logits, positives, exclude, beta, tau_plus, floor=None):
  """joshr17/HCL image/main.py's estimator, row by row in float64 exp space (only for moderate logits)."""
  losses = []
  for row, pos_col, excl in zip(np.asarray(logits, np.float64), positives, exclude):
    neg = np.array([s for j, s in enumerate(row) if j != pos_col and not excl[j]])
    if len(neg) == 0:
      losses.append(0.0)
      continue
    pos, n = np.exp(row[pos_col]), len(neg)
    imp = np.exp(beta * neg)
    reweight = (imp * np.exp(neg)).sum() / imp.mean()
    lower = n * np.exp(neg.min() if floor is None else floor)
    ng = max((-tau_plus * n * pos + reweight) / (1 - tau_plus), lower)
    losses.append(-np.log(pos / (pos + ng)))
  return np.array(losses)


def _reference_infonce(logits, positives, exclude):
  """Cross-entropy over the kept columns with scipy's softmax, float64."""
  out = []
  for row, pos_col, excl in zip(np.asarray(logits, np.float64), positives, exclude):
    keep = ~excl.copy()
    keep[pos_col] = True
    p = special.softmax(row[keep])
    out.append(-np.log(p[np.flatnonzero(keep).tolist().index(pos_col)]))
  return np.array(out)


def _random_case(seed, b=6, n=9, scale=2.0):
  rng = np.random.default_rng(seed)
  logits = rng.normal(scale=scale, size=(b, n)).astype(np.float32)
  positives = rng.integers(0, n, b).astype(np.int32)
  exclude = rng.random((b, n)) < 0.25
  exclude[0] = False
  return logits, positives, exclude


def test_hcl_is_infonce_at_beta_0_tau_0():
  logits, positives, exclude = _random_case(0)
  want = _reference_infonce(logits, positives, exclude)
  np.testing.assert_allclose(contrastive.infonce_per_row(logits, positives, exclude), want, rtol=1e-5)
  np.testing.assert_allclose(
      contrastive.hcl_per_row(logits, positives, exclude, beta=0.0, tau_plus=0.0), want, rtol=1e-5
  )
  # Their gradients too: softmax over the kept columns minus the one-hot positive, the same for both.
  g_hcl = jax.grad(lambda x: contrastive.hcl(x, positives, exclude, beta=0.0, tau_plus=0.0))(logits)
  g_nce = jax.grad(lambda x: contrastive.infonce(x, positives, exclude))(logits)
  np.testing.assert_allclose(g_hcl, g_nce, atol=1e-6)
  assert np.all(g_nce[exclude & (np.arange(9)[None] != positives[:, None])] == 0)  # excluded columns get no push


@pytest.mark.parametrize("beta,tau_plus", [(0.5, 0.05), (1.0, 0.1), (2.0, 0.3), (0.0, 0.1)])
@pytest.mark.parametrize("floor", [None, -3.0])
def test_hcl_matches_the_reference_estimator(beta, tau_plus, floor):
  logits, positives, exclude = _random_case(1)
  if floor is not None:
    logits = np.maximum(logits, floor)  # a floor is the smallest possible logit
  want = _reference_hcl(logits, positives, exclude, beta, tau_plus, floor)
  got = contrastive.hcl_per_row(logits, positives, exclude, beta=beta, tau_plus=tau_plus, floor=floor)
  np.testing.assert_allclose(got, want, rtol=2e-5)


def test_hand_worked_three_shapes():
  """Three images of three shapes; logits are logs of small integers so every step is a fraction.

  Row 0 (positive e^s = 4, negatives 1, 2): weights w = (1, 2), R = (1*1 + 2*2) / 1.5 = 10/3,
    Ng = (10/3 - 0.1*2*4) / 0.9 = 76/27 (above the floor 2*e^0 = 2), loss = log((4 + 76/27) / 4) = log(46/27).
  Row 1 (positive 3, negatives 1, 1): R = 2, (2 - 0.1*2*3) / 0.9 = 14/9 < floor 2 -> Ng = 2, loss = log(5/3).
  Row 2 (positive 1, negatives 2 and 8, but 8 is another image of shape 2: excluded): N = 1, R = 2,
    Ng = (2 - 0.1*1*1) / 0.9 = 19/9 > floor 2, loss = log(1 + 19/9) = log(28/9).
  InfoNCE: log(7/4), log(5/3), log(3).
  """
  logits = np.log(np.array([[4.0, 1.0, 2.0], [1.0, 3.0, 1.0], [2.0, 8.0, 1.0]], np.float32))
  positives = np.array([0, 1, 2], np.int32)
  exclude = np.zeros((3, 3), bool)
  exclude[2, 1] = True
  got = contrastive.hcl_per_row(logits, positives, exclude, beta=1.0, tau_plus=0.1)
  np.testing.assert_allclose(got, np.log([46 / 27, 5 / 3, 28 / 9]), rtol=1e-6)
  np.testing.assert_allclose(
      contrastive.hcl(logits, positives, exclude, beta=1.0, tau_plus=0.1),
      np.mean(np.log([46 / 27, 5 / 3, 28 / 9])),
      rtol=1e-6,
  )
  np.testing.assert_allclose(
      contrastive.infonce_per_row(logits, positives, exclude), np.log([7 / 4, 5 / 3, 3]), rtol=1e-6
  )


@pytest.mark.parametrize("objective", ["infonce", "hcl"])
def test_finite_at_extreme_similarities(objective):
  """Logits of +-1e4 (|cos| = 100 at temperature 0.01) and a row with no negatives at all."""
  logits = np.array([[1e4, -1e4, -1e4], [-1e4, 1e4, 1e4], [1e4, 1e4, -1e4], [5.0, 1.0, 2.0]], np.float32)
  positives = np.array([0, 0, 2, 0], np.int32)
  exclude = np.zeros((4, 3), bool)
  exclude[3, 1:] = True  # row 3: every other column excluded
  fn = lambda x: contrastive.contrastive_loss(x, positives, exclude, objective=objective, beta=1.0, tau_plus=0.1)
  per_row = (
      contrastive.infonce_per_row(logits, positives, exclude)
      if objective == "infonce"
      else contrastive.hcl_per_row(logits, positives, exclude, beta=1.0, tau_plus=0.1)
  )
  loss, grad = jax.jit(jax.value_and_grad(fn))(logits)
  assert np.isfinite(loss) and np.all(np.isfinite(grad))
  assert per_row[0] < 1e-3 and per_row[3] == 0.0  # an easy row costs nothing, a row without negatives is 0
  assert 1.9e4 < per_row[1] < 2.1e4 and 1.9e4 < per_row[2] < 2.1e4  # ~ the gap of 2e4 to the hardest negative
  # Cosine similarities at temperature 0.01 through the symmetric loss, gradients w.r.t. the embeddings and t.
  rng = np.random.default_rng(0)
  emb = rng.normal(size=(2, 4, 8)).astype(np.float32)
  ids = np.array([0, 1, 1, 2], np.int32)
  sym = lambda e, t: contrastive.symmetric_hcl(e[0], e[1] * 1e3, ids, temperature=t, objective=objective)[0]
  value, grads = jax.jit(jax.value_and_grad(sym, argnums=(0, 1)))(emb, jnp.float32(0.01))
  assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)


def test_similarities_match_scipy():
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(5, 7)).astype(np.float32), rng.normal(size=(6, 7)).astype(np.float32)
  np.testing.assert_allclose(
      contrastive.similarity(a, b, "neg_sq_distance", 0.5),
      -distance.cdist(a, b, "sqeuclidean") / 0.5,
      rtol=1e-5,
      atol=1e-4,
  )
  np.testing.assert_allclose(
      contrastive.similarity(a, b, "cosine", 0.1), (1 - distance.cdist(a, b, "cosine")) / 0.1, rtol=1e-5, atol=1e-5
  )
  np.testing.assert_array_equal(contrastive.similarity(a, a, "neg_sq_distance", 1.0).diagonal() <= 0, True)
  with pytest.raises(ValueError, match="similarity 'dot'"):
    contrastive.similarity(a, b, "dot", 1.0)


@pytest.mark.parametrize("kind", ["cosine", "neg_sq_distance"])
def test_symmetric_hcl_masks_same_shape_negatives(kind):
  """Both directions against the reference row by row, the pairs of one shape never each other's negatives."""
  rng = np.random.default_rng(3)
  images, shapes = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
  ids = np.array([0, 1, 1, 2, 3, 3], np.int32)
  t = 0.5
  loss, parts = jax.jit(
      lambda i, s: contrastive.symmetric_hcl(i, s, ids, similarity_kind=kind, temperature=t, beta=1.0, tau_plus=0.1)
  )(images, shapes)
  if kind == "cosine":
    sim = (1 - distance.cdist(images, shapes, "cosine")) / t
    floor = -1 / t
  else:
    sim, floor = -distance.cdist(images, shapes, "sqeuclidean") / t, None
  same = ids[:, None] == ids[None, :]
  diag = np.arange(6)
  want_i2s = _reference_hcl(sim, diag, same, 1.0, 0.1, floor).mean()
  want_s2i = _reference_hcl(sim.T, diag, same.T, 1.0, 0.1, floor).mean()
  np.testing.assert_allclose(parts["image_to_shape"], want_i2s, rtol=1e-4)
  np.testing.assert_allclose(parts["shape_to_image"], want_s2i, rtol=1e-4)
  np.testing.assert_allclose(loss, (want_i2s + want_s2i) / 2, rtol=1e-4)
  # Without the mask the duplicate of shape 1 would be a (very hard) negative: a different, larger loss.
  unmasked = _reference_hcl(sim, diag, np.zeros_like(same), 1.0, 0.1, floor).mean()
  assert not np.isclose(unmasked, want_i2s, rtol=1e-3)


def test_traced_hyperparameters_under_jit():
  """beta, tau_plus and a learned temperature may be traced values (one compile for a sweep)."""
  logits, positives, exclude = _random_case(4)
  fn = jax.jit(lambda x, b, tp: contrastive.hcl(x, positives, exclude, beta=b, tau_plus=tp))
  for beta, tau_plus in [(0.5, 0.05), (2.0, 0.3)]:
    np.testing.assert_allclose(
        fn(logits, beta, tau_plus), _reference_hcl(logits, positives, exclude, beta, tau_plus).mean(), rtol=2e-5
    )
  with pytest.raises(ValueError, match="objective 'triplet'"):
    contrastive.contrastive_loss(logits, positives, objective="triplet")


def _objective(**kw):
  config = tiny.get_config()
  config.train.loss = kw.pop("loss", "hcl")
  config.contrastive.update(**kw)
  return config


def test_rank_objective_from_config():
  points = np.random.default_rng(5).normal(scale=3.0, size=(12, 4)).astype(np.float32)
  assert losses.RankObjective.from_config(_objective(loss="regression"), points) is None
  obj = losses.RankObjective.from_config(_objective(similarity="neg_sq_distance", temperature=0.2), points)
  np.testing.assert_allclose(obj.spread, distance.cdist(points, points, "sqeuclidean").mean(), rtol=1e-6)
  assert obj.unit == obj.spread and obj.temperature == 0.2
  cosine = losses.RankObjective.from_config(_objective(similarity="cosine"), points)
  assert cosine.unit == 1.0 and cosine.spread == obj.spread  # the regression term is scaled alike for both
  with pytest.raises(ValueError, match="config.train.loss must be .* got 'triplet'"):
    losses.RankObjective.from_config(_objective(loss="triplet"), points)
  with pytest.raises(ValueError, match="config.contrastive.similarity"):
    losses.RankObjective.from_config(_objective(similarity="dot"), points)


@pytest.mark.parametrize("kind", ["neg_sq_distance", "cosine"])
def test_rank_loss_over_all_shapes_and_the_hardest_k(kind):
  """All shapes as negatives, then only each image's hardest k: against the reference on the k columns picked by
  brute force (scipy distances, numpy argsort)."""
  rng = np.random.default_rng(6)
  shapes = rng.normal(size=(40, 6)).astype(np.float32)
  index = rng.integers(0, 40, 10).astype(np.int32)
  images = shapes[index] + rng.normal(scale=0.7, size=(10, 6)).astype(np.float32)
  obj = losses.RankObjective.from_config(_objective(similarity=kind, temperature=0.3, beta=1.0, tau_plus=0.1), shapes)
  if kind == "cosine":
    logits, floor = (1 - distance.cdist(images, shapes, "cosine")) / 0.3, -1 / 0.3
  else:
    logits, floor = -distance.cdist(images, shapes, "sqeuclidean") / (obj.unit * 0.3), None
  no_mask = np.zeros(logits.shape, bool)
  got = jax.jit(losses.rank_loss, static_argnums=3)(images, shapes, index, obj, 0.3)
  np.testing.assert_allclose(got, _reference_hcl(logits, index, no_mask, 1.0, 0.1, floor).mean(), rtol=1e-4)
  k = 7
  hard = dataclasses.replace(obj, max_negatives=k)
  picked = []
  for row, own in zip(logits, index):
    others = np.delete(np.arange(40), own)
    picked.append(np.concatenate([[row[own]], row[others[np.argsort(-row[others], kind="stable")[:k]]]]))
  want = _reference_hcl(np.array(picked), np.zeros(10, np.int32), np.zeros((10, k + 1), bool), 1.0, 0.1, floor)
  np.testing.assert_allclose(
      jax.jit(losses.rank_loss, static_argnums=3)(images, shapes, index, hard, 0.3), want.mean(), rtol=1e-4
  )


@pytest.mark.parametrize("kind", ["neg_sq_distance", "cosine"])
def test_shape_to_image_rows_against_brute_force(kind):
  """Each image's shape point against every image of the batch: softmax cross-entropy with its own image the
  positive and the shape's other images left out, from scipy distances and a plain numpy loop."""
  rng = np.random.default_rng(7)
  shapes = rng.normal(size=(5, 4)).astype(np.float32)
  index = np.array([0, 1, 2, 0, 3, 2, 2, 4], np.int32)
  images = shapes[index] + rng.normal(scale=0.5, size=(8, 4)).astype(np.float32)
  obj = losses.RankObjective.from_config(_objective(loss="infonce", similarity=kind, temperature=0.3), shapes)
  if kind == "cosine":
    logits = (1 - distance.cdist(shapes[index], images, "cosine")) / 0.3
  else:
    logits = -distance.cdist(shapes[index], images, "sqeuclidean") / (obj.unit * 0.3)
  want = []
  for i, row in enumerate(logits):
    keep = [j for j in range(8) if j == i or index[j] != index[i]]
    want.append(np.log(np.sum(np.exp(row[keep]))) - row[i])
  got = jax.jit(losses.shape_to_image_loss, static_argnums=3)(images, shapes, index, obj, 0.3)
  np.testing.assert_allclose(got, np.mean(want), rtol=1e-5)
