"""The network (paper section 3) and its losses: CaffeNet's sizes, Caffe's LRN and pooling, R4CNN's soft view loss."""

import dataclasses

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jembed.training import losses
from jembed.training import model as model_lib

PAPER = model_lib.ModelSpec(
    backbone="caffenet", dim=128, image_size=227, hidden=(4096, 4096), dropout=0.5, normalization="caffe"
)


# Tiny models: XLA's optimizations cost more compile time than they save (conftest.fast_compiles).
pytestmark = pytest.mark.usefixtures("fast_compiles")


def _init(spec: model_lib.ModelSpec) -> dict:
  return jax.jit(model_lib.init_params, static_argnums=0)(spec, jax.random.key(0))


def _counts(tree) -> dict[str, int]:
  return {name: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(layer)) for name, layer in tree.items()}


def test_caffenet_sizes_and_parameter_counts():
  variables = jax.eval_shape(lambda: model_lib.init_params(PAPER, jax.random.key(0)))
  params = variables["params"]
  # Caffe's bvlc_reference_caffenet: weights + biases per layer (conv2, 4, 5 in two groups).
  assert _counts(params["backbone"]) == dict(
      conv1=96 * 3 * 11 * 11 + 96,
      conv2=256 * 48 * 5 * 5 + 256,
      conv3=384 * 256 * 9 + 384,
      conv4=384 * 192 * 9 + 384,
      conv5=256 * 192 * 9 + 256,
  )
  assert params["fc6"]["kernel"].shape == (9216, 4096) and params["fc7"]["kernel"].shape == (4096, 4096)
  assert params["image_embedding"]["kernel"].shape == (4096, 128)
  pool5 = jax.eval_shape(model_lib.CaffeNet().apply, {"params": params["backbone"]}, jnp.zeros((2, 227, 227, 3)))
  assert pool5.shape == (2, 6, 6, 256)  # 256 x 6 x 6 = 9216
  out = jax.eval_shape(model_lib.EmbeddingNet(PAPER).apply, variables, jnp.zeros((2, 227, 227, 3), jnp.uint8))
  assert out["point"].shape == (2, 128) and out["point"].dtype == jnp.float32


def _lrn_reference(x: np.ndarray, n=5, alpha=1e-4, beta=0.75, k=1.0) -> np.ndarray:
  """Caffe's LRNLayer (ACROSS_CHANNELS), written out: scale_c = k + alpha/n * sum_{c' in window} x_c'^2."""
  out = np.empty_like(x)
  channels = x.shape[-1]
  pre = (n - 1) // 2
  for c in range(channels):
    lo, hi = max(0, c - pre), min(channels, c - pre + n)
    scale = k + alpha / n * np.sum(x[..., lo:hi] ** 2, axis=-1)
    out[..., c] = x[..., c] / scale**beta
  return out


def test_lrn_matches_caffe():
  x = np.random.default_rng(0).normal(scale=30.0, size=(2, 3, 4, 11)).astype(np.float32)  # big: the norm matters
  got = np.asarray(model_lib.local_response_norm(jnp.asarray(x)))
  want = _lrn_reference(x.astype(np.float64))
  assert np.max(np.abs(want / x - 1)) > 0.1  # the normalization is not a no-op at this scale
  np.testing.assert_allclose(got, want, rtol=2e-5)


def test_pooling_uses_caffe_ceil_mode():
  x = np.random.default_rng(1).normal(size=(1, 8, 8, 2)).astype(np.float32)
  got = np.asarray(model_lib.caffe_max_pool(jnp.asarray(x)))
  assert got.shape == (1, 4, 4, 2)  # ceil((8 - 3) / 2) + 1 = 4, where floor mode gives 3
  for i in range(4):
    for j in range(4):
      np.testing.assert_array_equal(got[0, i, j], x[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(0, 1)))


def _soft_view_reference(logits: np.ndarray, labels: np.ndarray, band: int, sigma: float) -> float:
  """The CRC layer's forward pass, one sample and one offset at a time."""
  total = 0.0
  for row, v in zip(logits.astype(np.float64), labels):
    log_p = row - row.max() - np.log(np.sum(np.exp(row - row.max())))
    for k in range(-band, band + 1):
      total -= np.exp(-abs(k) / sigma) * log_p[(v + k) % len(row)]
  return total / len(labels)


@pytest.mark.parametrize("band,sigma", [(15, 5.0), (5, 3.0)])
def test_soft_view_loss_matches_brute_force(band, sigma):
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(5, 360)).astype(np.float32)
  labels = np.array([0, 3, 180, 357, 359])  # both ends wrap around
  loss_and_grad = jax.jit(jax.value_and_grad(losses.soft_view_loss), static_argnums=(2, 3))
  got, grad = loss_and_grad(jnp.asarray(logits), jnp.asarray(labels), band, sigma)
  np.testing.assert_allclose(float(got), _soft_view_reference(logits, labels, band, sigma), rtol=1e-5)
  # The layer's gradient: (sum w) * p - w on each sample's logits, divided by the batch size.
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  w = np.zeros_like(p)
  for i, v in enumerate(labels):
    for k in range(-band, band + 1):
      w[i, (v + k) % 360] += np.exp(-abs(k) / sigma)
  np.testing.assert_allclose(np.asarray(grad), (w.sum(1, keepdims=True) * p - w) / len(labels), atol=1e-6)


def test_angle_bins_wrap_like_render_for_cnn():
  degrees = jnp.array([0.0, 359.9, 360.0, -10.0, 45.5, -0.5])
  np.testing.assert_array_equal(losses.angle_bins(degrees), [0, 359, 0, 350, 45, 359])


def test_euclidean_loss_is_caffes():
  pred, target = np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[1.0, 0.0], [3.0, 4.0]])
  assert float(losses.euclidean_loss(pred, target)) == pytest.approx((4 + 25) / (2 * 2))


def test_heads_and_total_loss():
  spec = model_lib.ModelSpec(
      widths=(4, 8),
      hidden=(16,),
      dim=5,
      image_size=24,
      num_categories=3,
      viewpoint_bins=360,
      head_norm=True,
      point_scale=2.0,
  )
  variables = _init(spec)
  images = jnp.asarray(np.random.default_rng(3).integers(0, 256, (2, 40, 30, 3)), jnp.uint8)  # stretched to 24
  out = jax.jit(model_lib.EmbeddingNet(spec).apply)(variables, images)
  assert {k: v.shape for k, v in out.items()} == dict(
      point=(2, 5), category=(2, 3), azimuth=(2, 360), elevation=(2, 360), tilt=(2, 360)
  )
  assert "fc6_norm" in variables["params"]
  unscaled = jax.jit(model_lib.EmbeddingNet(dataclasses.replace(spec, point_scale=1.0)).apply)(variables, images)
  np.testing.assert_allclose(out["point"], 2.0 * unscaled["point"], rtol=1e-6)
  batch = dict(
      point=jnp.zeros((2, 5)),
      category_index=jnp.array([0, 2]),
      azimuth=jnp.array([10.0, 200.0]),
      elevation=jnp.array([-5.0, 30.0]),
      tilt=jnp.array([0.0, 3.0]),
  )
  weights = dict(embedding=1.0, category=0.5, viewpoint=0.25)
  total, parts = jax.jit(losses.total_loss)(out, batch, weights)
  assert set(parts) == {"embedding_loss", "category_loss", "azimuth_loss", "elevation_loss", "tilt_loss"}
  want = (
      parts["embedding_loss"]
      + 0.5 * parts["category_loss"]
      + 0.25 * sum(parts[f"{a}_loss"] for a in model_lib.VIEW_ANGLES)
  )
  np.testing.assert_allclose(total, want, rtol=1e-6)


def test_dropout_masks_follow_the_global_example_index():
  spec = model_lib.ModelSpec(widths=(4,), hidden=(64,), dim=3, image_size=16, dropout=0.5)
  apply = jax.jit(model_lib.EmbeddingNet(spec).apply, static_argnames="train")
  variables = _init(spec)
  images = jnp.asarray(np.random.default_rng(4).integers(0, 256, (8, 16, 16, 3)), jnp.uint8)
  rngs = {"dropout": jax.random.key(7)}
  whole = apply(variables, images, train=True, rngs=rngs)["point"]
  halves = [
      apply(variables, images[i : i + 4], train=True, rngs=rngs, example_ids=jnp.arange(i, i + 4))["point"]
      for i in (0, 4)
  ]
  np.testing.assert_allclose(np.concatenate(halves), whole, rtol=1e-6, atol=1e-6)  # as two devices would see it
  assert not np.allclose(whole, apply(variables, images)["point"])  # dropout is on in training
  np.testing.assert_array_equal(apply(variables, images)["point"], apply(variables, images)["point"])


def test_backbone_weights_from_npz_and_msgpack(tmp_path):
  spec = model_lib.ModelSpec(widths=(4, 8), hidden=(8,), dim=3, image_size=16)
  backbone = jax.tree.map(np.asarray, _init(spec)["params"]["backbone"])
  rng = np.random.default_rng(5)
  theirs = {
      f"{layer}/{name}": rng.normal(size=v.shape).astype(np.float32)
      for layer, d in backbone.items()
      for name, v in d.items()
  }
  caffe = dict(theirs)
  caffe["conv2/kernel"] = theirs["conv2/kernel"].transpose(3, 2, 0, 1)  # Caffe's [out, in, kh, kw]
  np.savez(tmp_path / "w.npz", **caffe)
  loaded = model_lib.load_backbone_weights(str(tmp_path / "w.npz"), backbone)
  for key, value in theirs.items():
    layer, name = key.split("/")
    np.testing.assert_array_equal(loaded[layer][name], value)
  (tmp_path / "w.msgpack").write_bytes(flax.serialization.to_bytes(loaded))
  again = model_lib.load_backbone_weights(str(tmp_path / "w.msgpack"), backbone)
  jax.tree.map(np.testing.assert_array_equal, again, loaded)
  del caffe["conv1/bias"]
  np.savez(tmp_path / "bad.npz", **caffe)
  with pytest.raises(ValueError, match="conv1/bias"):
    model_lib.load_backbone_weights(str(tmp_path / "bad.npz"), backbone)
