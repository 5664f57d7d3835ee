r"""Joint training of the image network and the point-cloud shape encoder with symmetric multi-modal HCL.

  python -m launch.train --config=configs/default.py --workdir=/tmp/jembed --config.shape_encoder.enabled=True

Each step takes a batch of training images, gathers each image's shape cloud (`workdir/point_clouds/`), embeds both
sides and minimises
  symmetric HCL(image points, shape points; negatives = the batch's other shapes, same-shape pairs masked)
  + anchor       x ||shape point - the shape's Sammon point||^2 / spread^2    (the encoder is the out-of-sample map)
  + image_anchor x ||image point - the shape's Sammon point||^2 / spread^2    (the paper's regression, kept)
where spread^2 is the Sammon points' mean squared distance from their mean, so the weights and the temperature of the
'neg_sq_distance' similarity (logit = -d^2 / (temperature x spread^2)) do not depend on the units of the shape space.
Both directions see the *global* batch: the points are gathered over the ('data',) mesh before the loss, so one, two
or four devices give the same step (the gather's transpose hands each device its shard's gradient).

Writes `workdir/shape_encoder/`: checkpoints/ (orbax, both networks; a killed run resumes), metrics.jsonl and
loss_curve.png. The image network starts from the regression run's checkpoint (`image_init='regression'`), so the
contrastive term refines an image network that already lives in the Sammon space, or from scratch.
"""

import functools
import os
from typing import Any, Callable

from absl import logging
import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
import optax

from jembed.shapes import point_clouds
from jembed.training import augmentation
from jembed.training import checkpoints
from jembed.training import contrastive
from jembed.training import model as model_lib
from jembed.training import optimizer
from jembed.training import point_encoder
from jembed.training import run_metrics
from jembed.training import state as state_lib
from jembed.training import step_fns
from jembed.training import train
from jembed.workdir import paths
from jembed.workdir import records

KEYS = ("image", "point", "shape_index", "azimuth", "tilt")


def run_dir(workdir: str) -> str:
  """Where the joint run writes (its own checkpoints and metrics, beside the regression run's)."""
  return paths.shape_encoder(workdir)


def augment_clouds(clouds: jax.Array, rng: jax.Array, example_ids: jax.Array, *, keep: int, scale: float) -> jax.Array:
  """Per example: a random subset of `keep` points and a random anisotropic scale in [1 - scale, 1 + scale].

  clouds float32[B, P, C] (xyz first, then features, which are not scaled) -> float32[B, keep, C].
  """

  def one(cloud, example):
    k_perm, k_scale = jax.random.split(jax.random.fold_in(rng, example))
    cloud = cloud[jax.random.permutation(k_perm, cloud.shape[0])[:keep]] if keep < cloud.shape[0] else cloud
    factor = jax.random.uniform(k_scale, (3,), minval=1.0 - scale, maxval=1.0 + scale)
    return cloud.at[:, :3].multiply(factor)

  return jax.vmap(one)(clouds, example_ids)


def joint_loss(
    outputs: dict[str, jax.Array],
    targets: jax.Array,
    shape_index: jax.Array,
    spread2: float,
    cfg: ml_collections.ConfigDict,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The objective of the module docstring on the global batch.

  Args:
    outputs: {'image': float32[B, D], 'shape': float32[B, D]} the two networks' points.
    targets: float32[B, D] each example's Sammon point.
    shape_index: int32[B] each example's shape (same-shape pairs are not negatives).
    spread2: the Sammon points' mean squared distance from their mean.
    cfg: `config.shape_encoder`.

  Returns:
    (float32[] total, {name: float32[] part}).
  """
  scale = spread2 if cfg.similarity == "neg_sq_distance" else 1.0
  hcl, parts = contrastive.symmetric_hcl(
      outputs["image"],
      outputs["shape"],
      shape_index,
      similarity_kind=cfg.similarity,
      temperature=float(cfg.temperature) * scale,
      beta=float(cfg.beta),
      tau_plus=float(cfg.tau_plus),
      objective=cfg.objective,
  )
  parts = {f"hcl_{k}": v for k, v in parts.items()}
  parts["anchor_loss"] = jnp.mean(jnp.sum(jnp.square(outputs["shape"] - targets), -1)) / spread2
  parts["image_anchor_loss"] = jnp.mean(jnp.sum(jnp.square(outputs["image"] - targets), -1)) / spread2
  total = hcl + float(cfg.anchor) * parts["anchor_loss"] + float(cfg.image_anchor) * parts["image_anchor_loss"]
  return total, dict(parts, hcl_loss=hcl)


def make_update_fn(
    net: model_lib.EmbeddingNet,
    encoder: point_encoder.PointEncoder,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    mesh: jax.sharding.Mesh,
    config: ml_collections.ConfigDict,
    spread2: float,
) -> Callable:
  """`update_fn(state, batch, clouds, rng) -> (state, metrics)`, jitted, state donated.

  `state['params']` is {'image': ..., 'shape': ...}; `batch` holds `KEYS` ([B, ...], B divisible by the devices);
  `clouds` float32[N, P, 3 + F] every shape's cloud (replicated; row = shape_index).
  """
  cfg = config.shape_encoder
  keep = int(cfg.train_points) or int(cfg.points)

  def per_device(state, batch, clouds, rng):
    rng = jax.random.fold_in(rng, state["step"])
    local = batch["image"].shape[0]
    example_ids = lax.axis_index("data") * local + jnp.arange(local, dtype=jnp.int32)
    batch = augmentation.augment_batch(
        batch,
        jax.random.fold_in(rng, 1),
        example_ids,
        flip=bool(config.train.augment_flip),
        shift=float(config.train.augment_shift),
    )
    cloud = augment_clouds(
        clouds[batch["shape_index"]], jax.random.fold_in(rng, 2), example_ids, keep=keep, scale=float(cfg.augment_scale)
    )
    gather = lambda x: lax.all_gather(x, "data", tiled=True)

    def loss_fn(params):
      image = net.apply(
          params["image"],
          batch["image"],
          train=True,
          example_ids=example_ids,
          rngs={"dropout": jax.random.fold_in(rng, 0)},
      )["point"]
      shape = encoder.apply(params["shape"], cloud[..., :3], cloud[..., 3:] if cloud.shape[-1] > 3 else None)
      outputs = {"image": gather(image), "shape": gather(shape)}
      return joint_loss(outputs, gather(batch["point"]), gather(batch["shape_index"]), spread2, cfg)

    local_params = lax.pcast(state["params"], "data", to="varying")  # each device's own gradient (see step_fns.py)
    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(local_params)
    grads = lax.pmean(grads, "data")
    loss, parts = lax.pmean((loss, parts), "data")  # equal on every device already; makes them replicated
    return step_fns.apply_update(tx, schedule, state, grads, dict(parts, loss=loss))

  step = jax.jit(
      jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("data"), P(), P()), out_specs=(P(), P())), donate_argnums=0
  )

  def update_fn(state, batch, clouds, rng):
    step_fns.check_batch(batch, mesh)
    return step(state, step_fns.place_batch({k: batch[k] for k in KEYS}, mesh), clouds, rng)

  update_fn.jitted = step
  return update_fn


@functools.partial(jax.jit, static_argnums=0)
def _encode(encoder: point_encoder.PointEncoder, params, clouds: jax.Array) -> jax.Array:
  return encoder.apply(params, clouds[..., :3], clouds[..., 3:] if clouds.shape[-1] > 3 else None)


def encode_clouds(encoder: point_encoder.PointEncoder, params, clouds: np.ndarray, batch: int = 64) -> np.ndarray:
  """float32[N, P, 3 + F] -> float32[N, D], in fixed-size padded batches (one compiled program)."""
  out = []
  for lo in range(0, len(clouds), batch):
    chunk = np.asarray(clouds[lo : lo + batch], np.float32)
    padded = np.concatenate([chunk, np.repeat(chunk[:1], batch - len(chunk), 0)]) if len(chunk) < batch else chunk
    out.append(np.asarray(_encode(encoder, params, padded))[: len(chunk)])
  return np.concatenate(out)


def stacked_clouds(clouds: point_clouds.PointClouds, ids) -> np.ndarray:
  """float32[N, P, 3 + F]: the clouds (and normals) of `ids`, in that order."""
  rows = clouds.rows_for(ids)
  parts = [clouds.points[rows]] + ([clouds.normals[rows]] if clouds.normals is not None else [])
  return np.concatenate(parts, axis=-1).astype(np.float32)


def joint_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` with the joint run's steps and learning rate in the places the optimizer reads them."""
  out = config.copy_and_resolve_references()
  cfg = out.shape_encoder
  with out.unlocked():
    out.train.total_steps = int(cfg.total_steps)
    out.schedule.warmup_steps = int(cfg.total_steps) // 20
    if float(cfg.lr):
      out.optax.lr = float(cfg.lr)
    out.model.frozen_backbone = False
  return out


def _encoder_spec(config, points: np.ndarray) -> point_encoder.EncoderSpec:
  return point_encoder.spec_from_config(
      config.shape_encoder, out_dim=points.shape[1], point_scale=float(np.sqrt(np.mean(np.var(points, axis=0))))
  )


def _init_fn(spec, encoder_spec, num_points: int) -> Callable:
  """`init(rng, image_params_or_None) -> params`: pure, for the jitted init and for `eval_shape`."""

  def init(rng, image):
    k_image, k_shape = jax.random.split(rng)
    image = model_lib.init_params(spec, k_image) if image is None else image
    return {"image": image, "shape": point_encoder.init_params(encoder_spec, k_shape, num_points)}

  return init


def _regression_params(config, workdir, spec, sharding) -> dict | None:
  """The regression run's image network (`image_init='regression'`), or None ('scratch')."""
  if config.shape_encoder.image_init == "scratch":
    return None
  if config.shape_encoder.image_init != "regression":
    raise ValueError(
        f"config.shape_encoder.image_init must be 'regression' or 'scratch', got "
        f"{config.shape_encoder.image_init!r}"
    )
  ckpts = checkpoints.Checkpoints(workdir, read_only=True)
  try:
    abstract = jax.eval_shape(lambda: model_lib.init_params(spec, jax.random.key(0)))
    return ckpts.restore_params(None, checkpoints.abstract_like(abstract, sharding))
  finally:
    ckpts.close()


def train_joint(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains (or resumes) the joint run of `config.shape_encoder` in `workdir/shape_encoder/`; the last metrics."""
  mesh = step_fns.create_mesh()
  with jax.set_mesh(mesh):
    return _train(joint_config(config), workdir, mesh)


def _train(config, workdir, mesh) -> dict[str, float]:
  embedding = records.load_shape_embedding(workdir)
  points = np.asarray(embedding.points, np.float32)
  spec, categories = state_lib.model_spec(config, workdir, points)
  encoder_spec = _encoder_spec(config, points)
  net, encoder = model_lib.EmbeddingNet(spec), point_encoder.PointEncoder(encoder_spec)
  cfg = config.shape_encoder
  clouds = stacked_clouds(
      point_clouds.workdir_clouds(workdir, count=cfg.points, seed=config.seed, normals=cfg.normals), embedding.ids
  )
  spread2 = float(np.mean(np.sum(np.square(points - points.mean(0)), -1)))
  init_rng, dropout_rng = jax.random.split(jax.random.key(int(config.seed) + 1))
  init = _init_fn(spec, encoder_spec, clouds.shape[1])
  tx, schedule = optimizer.make_optimizer(config, jax.eval_shape(init, init_rng, None))
  update_fn = make_update_fn(net, encoder, tx, schedule, mesh, config, spread2)
  replicated = NamedSharding(mesh, P())
  device_clouds = jax.device_put(clouds, replicated)
  out_dir = run_dir(workdir)
  ckpts = checkpoints.Checkpoints(out_dir, max_to_keep=int(config.train.max_to_keep))
  total, every = int(config.train.total_steps), {k: int(config.train[k]) for k in ("ckpt_every", "eval_every")}
  meta = dict(
      model=spec.to_dict(),
      encoder=encoder_spec.to_dict(),
      categories=list(categories),
      clouds=dict(
          points=int(config.shape_encoder.points), normals=bool(config.shape_encoder.normals), seed=int(config.seed)
      ),
  )
  train_iter = train.pipeline.create_input_iterator(config, workdir, "train", mesh=mesh)
  validation = train._validation(config, workdir, mesh)  # pylint: disable=protected-access
  try:
    state, start = _restore_or_create(
        ckpts, init, init_rng, tx, replicated, train_iter, lambda: _regression_params(config, workdir, spec, replicated)
    )
    writer = run_metrics.MetricWriter(out_dir, resume_step=start)
    tracker = run_metrics.StepTracker(
        writer, batch_size=int(config.input.batch_size), log_every=int(config.train.log_every), start=start, total=total
    )
    logging.info(
        "joint run: image network %s + shape encoder %s parameters, clouds %s, %d devices",
        *(f"{sum(x.size for x in jax.tree.leaves(state['params'][k])):,}" for k in ("image", "shape")),
        clouds.shape,
        mesh.size,
    )
    last = {}
    for step in range(start, total):
      state, metrics = update_fn(state, next(train_iter), device_clouds, dropout_rng)
      done = step + 1
      due = {k: done % v == 0 or done == total for k, v in every.items()}
      tracker.add(done, metrics, flush=any(due.values()))
      if validation and due["eval_every"]:
        shape_points = encode_clouds(encoder, state["params"]["shape"], clouds)
        last = dict(step=done, **validate(net, state["params"]["image"], validation(), shape_points))
        writer.write(last)
        tracker.show(last)
      if due["ckpt_every"]:
        ckpts.save(done, state, dict(meta, input=train_iter.get_state()))
    tracker.close()
  finally:
    ckpts.close()
  run_metrics.plot_loss_curve(out_dir)
  return {**tracker.last, **last}


def _restore_or_create(ckpts, init, rng, tx, replicated, train_iter, image_params) -> tuple[dict, int]:
  """The latest joint checkpoint (input position restored into `train_iter`) or a fresh state."""
  create = lambda key, image: dict(step=jnp.zeros((), jnp.int32), params=(p := init(key, image)), opt_state=tx.init(p))
  step = ckpts.latest_step()
  if step is None:
    return jax.jit(create, out_shardings=replicated)(rng, image_params()), 0
  abstract = jax.eval_shape(create, rng, None)
  restored, meta = ckpts.restore(
      step, checkpoints.abstract_like({"params": abstract["params"], "opt_state": abstract["opt_state"]}, replicated)
  )
  train_iter.set_state(meta["input"])
  logging.info("resumed the joint run from step %d (%s)", step, ckpts.directory)
  return dict(restored, step=jax.device_put(jnp.int32(step), replicated)), step


def validate(net, image_params, batches, shape_points: np.ndarray) -> dict[str, float]:
  """Validation image->shape top-1/top-5 against the encoder's points of all N shapes."""
  ranks = []
  for batch in batches:
    pts = np.asarray(_embed_images(net, image_params, batch["image"]))
    d2 = ((pts[:, None, :] - shape_points[None]) ** 2).sum(-1)
    own = d2[np.arange(len(pts)), np.asarray(batch["shape_index"])][:, None]
    ranks.append((d2 < own).sum(1))
  ranks = np.concatenate(ranks) if ranks else np.zeros(0)
  return dict(val_top1=float(np.mean(ranks < 1)), val_top5=float(np.mean(ranks < 5))) if len(ranks) else {}


@functools.partial(jax.jit, static_argnums=0)
def _embed_images(net, params, images):
  return net.apply(params, images, train=False)["point"]


def latest_meta(workdir: str) -> dict[str, Any] | None:
  """The meta of the joint run's latest checkpoint, or None when the workdir has no trained shape encoder."""
  if not os.path.isdir(checkpoints.directory(run_dir(workdir))):
    return None
  ckpts = checkpoints.Checkpoints(run_dir(workdir), read_only=True)
  try:
    return ckpts.restore_meta() if ckpts.latest_step() is not None else None
  finally:
    ckpts.close()
