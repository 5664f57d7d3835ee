"""Training: the sharded step equals the single-device step, resuming after a kill, the non-finite stop."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import shapenet_chairs
from configs import tiny
from jembed.training import augmentation
from jembed.training import checkpoints
from jembed.training import losses
from jembed.training import model as model_lib
from jembed.training import optimizer
from jembed.training import state as state_lib
from jembed.training import step_fns
from jembed.training import train

from conftest import tiny_train_config
from conftest import workdir_on

SPEC = model_lib.ModelSpec(
    widths=(4, 8), hidden=(16,), dim=5, image_size=24, dropout=0.5, num_categories=3, viewpoint_bins=360
)
WEIGHTS = dict(embedding=1.0, category=0.5, viewpoint=0.1)


# Tiny models: XLA's optimizations cost more compile time than they save (conftest.fast_compiles).
pytestmark = pytest.mark.usefixtures("fast_compiles")


def _batch(size: int) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  return dict(
      image=rng.integers(0, 256, (size, 24, 24, 3), dtype=np.uint8),
      point=rng.normal(size=(size, 5)).astype(np.float32),
      category_index=rng.integers(0, 3, size).astype(np.int32),
      azimuth=rng.uniform(0, 360, size).astype(np.float32),
      elevation=rng.uniform(-20, 40, size).astype(np.float32),
      tilt=rng.uniform(-5, 5, size).astype(np.float32),
  )


def _optimizer(spec: model_lib.ModelSpec = SPEC):
  config = tiny.get_config()
  config.optax.update(name="sgd", lr=0.05, weight_decay=1e-3)
  return optimizer.make_optimizer(config, jax.eval_shape(lambda: model_lib.init_params(spec, jax.random.key(0))))


def _steps(devices: int, state: dict, batch: dict, steps: int = 2, spec: model_lib.ModelSpec = SPEC, **objective):
  """`steps` updates of `spec` (SGD with momentum, dropout, augmentation) from `state` on the same global batch, on a
  mesh of the first `devices`; `objective` = (shape_points, objective) of a contrastive run."""
  mesh = step_fns.create_mesh(jax.devices()[:devices])
  tx, schedule = _optimizer(spec)
  update_fn = step_fns.make_update_fn(
      model_lib.EmbeddingNet(spec), tx, schedule, mesh, WEIGHTS, flip=True, shift=0.1, **objective
  )
  state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.P()))
  for _ in range(steps):
    state, metrics = update_fn(state, batch, jax.random.key(1))
  return jax.device_get(state["params"]), jax.device_get(metrics)


@pytest.mark.slow
def test_same_step_on_one_two_and_four_devices():
  assert jax.device_count() == 4  # conftest forces 4 CPU devices
  batch = _batch(8)
  tx, _ = _optimizer()
  state = jax.device_get(state_lib.create_state(SPEC, tx, jax.random.key(0), step_fns.create_mesh(jax.devices()[:1])))
  want, want_metrics = _steps(1, state, batch)
  for devices in (2, 4):
    got, got_metrics = _steps(devices, state, batch)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)
    for key in ("loss", "embedding_loss", "category_loss", "azimuth_loss", "grad_norm"):
      np.testing.assert_allclose(got_metrics[key], want_metrics[key], rtol=1e-5)
  assert not np.allclose(state["params"]["params"]["fc6"]["kernel"], want["params"]["fc6"]["kernel"])  # it trained


def test_contrastive_step_is_the_same_on_one_two_and_four_devices():
  """HCL against all shape points with a learned temperature and the shape -> image term: every device needs every
  shape point, the shape -> image rows see the global batch's images (gathered), and the temperature's gradient is
  averaged like the network's."""
  spec = dataclasses.replace(SPEC, temperature=0.2)
  batch = _batch(8)
  points = np.random.default_rng(1).normal(scale=2.0, size=(6, 5)).astype(np.float32)
  batch["shape_index"] = np.array([0, 1, 2, 3, 4, 5, 0, 2], np.int32)
  batch["point"] = points[batch["shape_index"]]
  config = tiny.get_config()
  config.train.loss = "hcl"
  config.contrastive.update(beta=1.0, tau_plus=0.1, regression_weight=2.0, shape_to_image=0.5)
  objective = dict(shape_points=points, objective=losses.RankObjective.from_config(config, points))
  tx, _ = _optimizer(spec)
  state = jax.device_get(state_lib.create_state(spec, tx, jax.random.key(0), step_fns.create_mesh(jax.devices()[:1])))
  want, want_metrics = _steps(1, state, batch, spec=spec, **objective)
  for devices in (2, 4):
    got, got_metrics = _steps(devices, state, batch, spec=spec, **objective)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)
    for key in ("loss", "rank_loss", "shape_to_image_loss", "embedding_loss", "temperature", "grad_norm"):
      np.testing.assert_allclose(got_metrics[key], want_metrics[key], rtol=1e-5)
  assert want_metrics["rank_loss"] > 0 and want_metrics["shape_to_image_loss"] > 0
  assert want["params"]["log_temperature"] != np.log(0.2)  # it trained
  spread = objective["objective"].spread
  np.testing.assert_allclose(
      want_metrics["loss"]
      - want_metrics["category_loss"] * WEIGHTS["category"]
      - sum(want_metrics[f"{a}_loss"] for a in model_lib.VIEW_ANGLES) * WEIGHTS["viewpoint"],
      want_metrics["rank_loss"]
      + 2.0 / spread * want_metrics["embedding_loss"]
      + 0.5 * want_metrics["shape_to_image_loss"],
      rtol=1e-5,
  )
  with pytest.raises(ValueError, match="'hcl' objective needs the shape points"):
    _steps(1, state, batch, spec=spec, objective=objective["objective"])


def test_batch_that_does_not_divide_is_a_clear_error():
  mesh = step_fns.create_mesh(jax.devices()[:4])
  with pytest.raises(ValueError, match="batch of 6 examples does not divide over the 4 devices"):
    step_fns.check_batch(_batch(6), mesh)
  config = tiny.get_config()
  abstract = jax.eval_shape(lambda: model_lib.init_params(SPEC, jax.random.key(0)))
  tx, schedule = optimizer.make_optimizer(config, abstract)
  update_fn = step_fns.make_update_fn(model_lib.EmbeddingNet(SPEC), tx, schedule, mesh, WEIGHTS)
  with pytest.raises(ValueError, match="multiple of 4"):
    update_fn(None, _batch(6), jax.random.key(0))


def test_sgd_is_caffes_solver():
  """The paper's solver: L2 decay in the gradient (not on biases), lr_mult 10/20 on the new layer, biases x2,
  momentum on the lr-scaled step, lr x0.1 every `decay_every` steps; a frozen backbone never moves."""
  config = shapenet_chairs.get_config()
  config.optax.lr = 0.1
  config.schedule.decay_every = 2
  config.model.frozen_backbone = True
  rng = np.random.default_rng(0)
  shapes = {"backbone": {"conv1": (3, 2)}, "fc6": (4, 3), "image_embedding": (3, 2)}
  params = {"params": {"backbone": {"conv1": {"kernel": rng.normal(size=(3, 2)), "bias": rng.normal(size=2)}}}}
  for layer in ("fc6", "image_embedding"):
    params["params"][layer] = {"kernel": rng.normal(size=shapes[layer]), "bias": rng.normal(size=shapes[layer][1])}
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  grads = [jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params) for _ in range(5)]
  tx, _ = optimizer.make_optimizer(config, params)
  update = jax.jit(tx.update)
  state, got = tx.init(params), params
  for g in grads:
    updates, state = update(g, state, got)
    got = optax.apply_updates(got, updates)

  want = {}
  for layer in ("fc6", "image_embedding"):
    for name in ("kernel", "bias"):
      w, v = np.asarray(params["params"][layer][name], np.float64), 0.0
      mult = (10.0 if layer == "image_embedding" else 1.0) * (2.0 if name == "bias" else 1.0)
      for step, g in enumerate(grads):
        g = np.asarray(g["params"][layer][name], np.float64) + (5e-4 * w if name == "kernel" else 0.0)
        v = 0.9 * v - 0.1 * 0.1 ** (step // 2) * mult * g
        w = w + v
      want[layer, name] = w
  for (layer, name), w in want.items():
    np.testing.assert_allclose(got["params"][layer][name], w, rtol=1e-5, atol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, got["params"]["backbone"], params["params"]["backbone"])


def test_augmentation_mirrors_the_viewpoint_with_the_image():
  batch = {k: jnp.asarray(v) for k, v in _batch(16).items()}
  out = jax.jit(augmentation.augment_batch, static_argnames=("flip", "shift"))(
      batch, jax.random.key(3), jnp.arange(16), flip=True, shift=0.0
  )
  mirrored = []
  for i in range(16):
    same = np.array_equal(out["image"][i], batch["image"][i])
    assert same or np.array_equal(out["image"][i], batch["image"][i][:, ::-1])
    mirrored.append(not same)
    want_az = batch["azimuth"][i] if same else (360.0 - batch["azimuth"][i]) % 360.0
    np.testing.assert_allclose(out["azimuth"][i], want_az, rtol=1e-6)
    np.testing.assert_allclose(out["tilt"][i], batch["tilt"][i] * (1 if same else -1))
    np.testing.assert_array_equal(out["elevation"][i], batch["elevation"][i])
  assert 0 < sum(mirrored) < 16
  shifted = jax.jit(augmentation.augment_batch, static_argnames=("flip", "shift"))(
      batch, jax.random.key(3), jnp.arange(16), flip=False, shift=0.25
  )
  assert shifted["image"].shape == batch["image"].shape
  assert not np.array_equal(shifted["image"], batch["image"])


def _params(workdir: str, step: int) -> dict:
  ckpts = checkpoints.Checkpoints(workdir, read_only=True)
  try:
    meta = ckpts.restore_meta(step)
    spec = model_lib.ModelSpec.from_dict(meta["model"])
    abstract = jax.eval_shape(lambda: model_lib.init_params(spec, jax.random.key(0)))
    return jax.device_get(
        ckpts.restore_params(
            step, checkpoints.abstract_like(abstract, jax.sharding.SingleDeviceSharding(jax.devices()[0]))
        )
    )
  finally:
    ckpts.close()


def _lines(workdir: str) -> list[dict]:
  with open(f"{workdir}/metrics.jsonl") as f:
    return [json.loads(line) for line in f]


def test_killed_run_resumes_to_the_same_params(train_dataset, tmp_path, monkeypatch):
  config = tiny_train_config()
  straight = workdir_on(train_dataset, tmp_path, "straight")
  final = train.train_and_evaluate(config, straight)
  assert final["step"] == 6 and 0.0 <= final["val_top1"] <= 1.0
  assert os.path.exists(f"{straight}/loss_curve.png")

  # The same run, killed during step 5 (after the checkpoint of step 4), then started again.
  killed = workdir_on(train_dataset, tmp_path, "killed")
  make_update_fn = step_fns.make_update_fn

  def dies_at_step_5(*args, **kwargs):
    update_fn, calls = make_update_fn(*args, **kwargs), []

    def wrapped(state, batch, rng):
      calls.append(1)
      if len(calls) == 5:
        raise KeyboardInterrupt("killed")
      return update_fn(state, batch, rng)

    return wrapped

  monkeypatch.setattr(step_fns, "make_update_fn", dies_at_step_5)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, killed)
  assert checkpoints.Checkpoints(killed, read_only=True).latest_step() == 4
  monkeypatch.setattr(step_fns, "make_update_fn", make_update_fn)
  train.train_and_evaluate(config, killed)

  other = tiny_train_config()
  other.model.hidden = (8,)
  with pytest.raises(ValueError, match=r"checkpoint of step 6 .* another network .*'hidden': \(\(32,\), \(8,\)\)"):
    train.train_and_evaluate(other, straight)  # a changed config on an old workdir: a clear refusal

  want, got = _params(straight, 6), _params(killed, 6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6), got, want)
  assert not np.allclose(_params(straight, 2)["params"]["fc6"]["kernel"], want["params"]["fc6"]["kernel"])
  # The log of the resumed run reads as one run: the same lines, the same losses (timings aside).
  strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_per_s")} for r in rows]
  for a, b in zip(strip(_lines(killed)), strip(_lines(straight)), strict=True):
    assert a.keys() == b.keys() and a["step"] == b["step"]
    np.testing.assert_allclose([a[k] for k in sorted(a)], [b[k] for k in sorted(b)], rtol=1e-5)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(train_dataset, tmp_path, monkeypatch):
  make_schedule = optimizer.make_schedule
  # A learning rate that turns NaN from the 4th update on: the params of step 4 are NaN, its checkpoint must not
  # be written.
  monkeypatch.setattr(
      optimizer, "make_schedule", lambda config: lambda step: jnp.where(step >= 3, jnp.nan, make_schedule(config)(step))
  )
  workdir = workdir_on(train_dataset, tmp_path, "nan")
  with pytest.raises(FloatingPointError, match=r"non-finite .* step 4.*last good checkpoint is step 2"):
    train.train_and_evaluate(tiny_train_config(), workdir)
  assert checkpoints.Checkpoints(workdir, read_only=True).all_steps() == [2]
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(_params(workdir, 2)))


def _loss_curve(spec: model_lib.ModelSpec, batches: list[dict], points: np.ndarray, steps: int) -> np.ndarray:
  """The per-step loss of `steps` AdamW updates of `spec` with the default objective (InfoNCE both ways plus the
  regression), cycling over `batches`, on one device, from the same initial params whatever the compute dtype."""
  config = tiny.get_config()
  config.optax.update(lr=1e-2, weight_decay=1e-4)
  config.schedule.type = "constant"
  objective = losses.RankObjective.from_config(config, points)
  tx, schedule = optimizer.make_optimizer(
      config, jax.eval_shape(lambda: model_lib.init_params(spec, jax.random.key(0)))
  )
  mesh = step_fns.create_mesh(jax.devices()[:1])
  update_fn = step_fns.make_update_fn(
      model_lib.EmbeddingNet(spec), tx, schedule, mesh, WEIGHTS, flip=True, shape_points=points, objective=objective
  )
  state, curve = state_lib.create_state(spec, tx, jax.random.key(0), mesh), []
  for step in range(steps):
    state, metrics = update_fn(state, batches[step % len(batches)], jax.random.key(1))
    curve.append(float(metrics["loss"]))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves((state["params"], state["opt_state"])) if x.ndim)
  return np.array(curve)


def test_a_bf16_run_tracks_the_float32_run():
  """train.compute_dtype='bfloat16' (bf16 activations, matmuls and convolutions; float32 params, optimizer state and
  losses) follows the float32 run's loss curve: every step within 2 % of it, over 12 steps in which the loss falls by
  a third or more. (Measured: at most 0.53 %; bf16 keeps 8 bits of mantissa, ~0.4 % per rounding.)"""
  spec = dataclasses.replace(
      SPEC, widths=(16, 32), hidden=(64,), dropout=0.0, head_norm=True, num_categories=0, viewpoint_bins=0
  )
  points = np.random.default_rng(1).normal(scale=2.0, size=(6, 5)).astype(np.float32)
  batches = []
  for seed in range(3):
    batch = _batch(16)
    batch["image"] = np.random.default_rng(seed).integers(0, 256, batch["image"].shape, dtype=np.uint8)
    batch["shape_index"] = np.random.default_rng(seed).integers(0, 6, 16).astype(np.int32)
    batch["point"] = points[batch["shape_index"]]
    batches.append(batch)
  want = _loss_curve(spec, batches, points, 12)
  got = _loss_curve(dataclasses.replace(spec, compute_dtype="bfloat16"), batches, points, 12)
  assert np.mean(want[-3:]) < 0.7 * want[0]  # it trained
  np.testing.assert_allclose(got, want, rtol=0.02)
  assert not np.array_equal(got, want)  # the bf16 run did compute in bf16


def test_a_checkpoint_resumes_under_another_compute_dtype_or_remat(tmp_path):
  """The compute dtype and the remat policy change no parameter: a float32 checkpoint resumes in bfloat16 (and with
  remat), as a new dropout rate does; another architecture is refused. A checkpoint written before the fields
  existed reads as float32 without remat."""
  tx, _ = _optimizer()
  mesh = step_fns.create_mesh(jax.devices()[:1])
  state = state_lib.create_state(SPEC, tx, jax.random.key(0), mesh)
  old_meta = {
      k: v for k, v in SPEC.to_dict().items() if k not in ("compute_dtype", "remat", "trunk_width", "trunk_depth")
  }
  ckpts = checkpoints.Checkpoints(str(tmp_path))
  ckpts.save(3, state, dict(model=old_meta, input={}))
  ckpts.wait()
  assert model_lib.ModelSpec.from_dict(ckpts.restore_meta(3)["model"]) == SPEC
  for changed in (dict(compute_dtype="bfloat16"), dict(remat="full", dropout=0.1)):
    restored, meta = state_lib.restore_or_create_state(
        ckpts, dataclasses.replace(SPEC, **changed), tx, jax.random.key(5), mesh
    )
    assert meta["step"] == 3 and int(restored["step"]) == 3
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored["params"]), jax.device_get(state["params"]))
  with pytest.raises(checkpoints.Incompatible, match=r"'widths': \(\(4, 8\), \(4, 16\)\)"):
    state_lib.restore_or_create_state(ckpts, dataclasses.replace(SPEC, widths=(4, 16)), tx, jax.random.key(5), mesh)
  ckpts.close()
