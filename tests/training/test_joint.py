"""Joint image network + shape encoder training: the sharded step, the public embed_shapes, the end-to-end path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from jembed.api import embed
from jembed.training import joint
from jembed.training import model as model_lib
from jembed.training import optimizer
from jembed.training import point_encoder
from jembed.training import step_fns

pytestmark = pytest.mark.usefixtures("fast_compiles")


def _setup(num_shapes=6, points=64, batch=8):
  config = tiny.get_config()
  config.shape_encoder.update(points=points, patches=8, nsample=8, image_init="scratch", total_steps=3)
  config.optax.name = "sgd"  # updates linear in the gradients (Adam would magnify float noise in ~0 gradients)
  config = joint.joint_config(config)
  spec = model_lib.ModelSpec(backbone="small", dim=4, image_size=24, widths=(4,), hidden=(8,), dropout=0.5)
  encoder_spec = point_encoder.spec_from_config(config.shape_encoder, out_dim=4)
  init = joint._init_fn(spec, encoder_spec, points)  # pylint: disable=protected-access
  tx, schedule = optimizer.make_optimizer(config, jax.eval_shape(init, jax.random.key(0), None))
  rng = np.random.default_rng(0)
  shape_index = rng.integers(0, num_shapes, batch).astype(np.int32)
  shape_points = rng.normal(size=(num_shapes, 4)).astype(np.float32)
  batch = dict(
      image=rng.integers(0, 256, (batch, 24, 24, 3), dtype=np.uint8),
      point=shape_points[shape_index],
      shape_index=shape_index,
      azimuth=np.zeros(batch, np.float32),
      tilt=np.zeros(batch, np.float32),
  )
  clouds = rng.uniform(-1, 1, (num_shapes, points, 3)).astype(np.float32)
  return config, spec, encoder_spec, init, tx, schedule, batch, clouds


def test_joint_step_is_the_same_on_1_and_4_devices():
  config, spec, encoder_spec, init, tx, schedule, batch, clouds = _setup()
  results = []
  for n in (1, 4):
    mesh = step_fns.create_mesh(jax.devices()[:n])
    update = joint.make_update_fn(
        model_lib.EmbeddingNet(spec), point_encoder.PointEncoder(encoder_spec), tx, schedule, mesh, config, spread2=2.0
    )
    params = init(jax.random.key(0), None)
    state = dict(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
    for _ in range(2):
      state, metrics = update(state, batch, clouds, jax.random.key(1))
    results.append((jax.device_get(state["params"]), jax.device_get(metrics)))
  (p1, m1), (p4, m4) = results
  assert np.isfinite(m1["loss"]) and m1["hcl_loss"] > 0 and m1["anchor_loss"] > 0
  np.testing.assert_allclose(m4["loss"], m1["loss"], rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), p4, p1)
  # The step moved both networks.
  fresh = init(jax.random.key(0), None)
  for part in ("image", "shape"):
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), p1[part], fresh[part])
    assert max(jax.tree.leaves(moved)) > 0


def test_joint_loss_reduces_to_the_anchors_and_hcl():
  cfg = _setup()[0].shape_encoder
  targets = jnp.asarray([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
  outputs = {"image": targets + 0.5, "shape": targets}
  total, parts = joint.joint_loss(outputs, targets, jnp.arange(3), 1.0, cfg)
  assert float(parts["anchor_loss"]) == 0.0
  np.testing.assert_allclose(float(parts["image_anchor_loss"]), 0.5, rtol=1e-6)  # 0.25 + 0.25 per row
  np.testing.assert_allclose(float(total), float(parts["hcl_loss"]) + cfg.image_anchor * 0.5, rtol=1e-6)


def test_embed_shapes_is_the_encoder_and_keeps_leading_dims():
  spec = point_encoder.EncoderSpec(
      out_dim=5, dim=16, depth=1, heads=1, mlp=16, sa_widths=(8,), sa_dim=8, patches=4, nsample=4
  )
  variables = point_encoder.init_params(spec, jax.random.key(0), 32)
  params = embed.ShapeParams(variables, spec)
  clouds = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 3)).astype(np.float32)
  got = jax.jit(embed.embed_shapes)(params, clouds)
  assert got.shape == (2, 3, 5) and got.dtype == jnp.float32
  want = point_encoder.PointEncoder(spec).apply(variables, clouds.reshape(6, 32, 3))
  np.testing.assert_allclose(np.asarray(got).reshape(6, 5), np.asarray(want), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      np.asarray(jax.vmap(embed.embed_shapes, (None, 0))(params, clouds[0])), np.asarray(got[0]), rtol=1e-5, atol=1e-6
  )
  with pytest.raises(ValueError, match=r"\[\.\.\., P, 3\]"):
    embed.embed_shapes(params, clouds[..., :2])


@pytest.mark.slow
def test_joint_run_evaluates_and_places_new_shapes(tiny_run, tmp_path):
  from jembed.api import encoder_placement  # pylint: disable=g-import-not-at-top
  from jembed.evaluation import evaluate  # pylint: disable=g-import-not-at-top

  workdir = tiny_run[0]
  config = tiny.get_config()
  config.shape_encoder.enabled = True
  final = joint.train_joint(config, str(workdir))
  # (no validation here: the tiny split's 2 validation images do not divide over the 4 test devices)
  assert final["step"] == config.shape_encoder.total_steps and np.isfinite(final["train_hcl_loss"])
  trained = embed.load_shape_encoder(str(workdir))
  assert trained.step == final["step"] and trained.clouds["points"] == config.shape_encoder.points
  results = evaluate.evaluate(config, str(workdir))
  scores = results.scores()
  for name in ("synthetic_clean", "synthetic_clutter"):
    for method in ("shape_encoder", "joint_encoder_placed"):
      row = scores[name][method]
      assert 0.0 <= row["top1"] <= row["top5"] <= 1.0 and row["n_shapes"] == len(trained.shape_ids)
  # Placing the run's own shapes with its encoder gives the encoder's points of them.
  new = tiny.get_config()
  new.shapes.limit = 1
  added = encoder_placement.add_shapes(new, str(tmp_path), str(workdir))
  rows = [list(trained.shape_ids).index(i) for i in added.ids]
  from jembed.evaluation import shape_encoder_method  # pylint: disable=g-import-not-at-top

  np.testing.assert_allclose(
      added.points, shape_encoder_method.encode_workdir_shapes(str(workdir), trained)[rows], rtol=1e-4, atol=1e-5
  )
