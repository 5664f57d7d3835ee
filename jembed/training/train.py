r"""Training: a CNN regresses each image's shape point (paper section 3), data-parallel over all devices.

  python -m launch.train --config=configs/default.py --workdir=/tmp/jembed

The step is a per-device program under `jax.shard_map` over the 1-D ('data',) mesh (DESIGN.md): each device takes
its slice of the global batch, gradients and metrics are averaged with `lax.pmean`, the replicated state is donated.
Dropout masks are keyed by the example's index in the global batch, so one, two or four devices give the same step.

Reads `workdir/shape_embedding.npz` and the dataset in `workdir/tfds`; writes into the workdir
  checkpoints/<step>/   every `train.ckpt_every` steps and at the end (see `jembed.training.checkpoints`); a run
                        restarted on the same workdir resumes from the latest, input position included
  metrics.jsonl         one JSON object a line: train (loss, grad norm, lr, steps/s, images/s) and validation
                        (val_loss, image->shape val_top1/val_top5: is the nearest shape point the image's shape?)
  loss_curve.png        at the end
"""

import functools
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

from jembed.backbones import compute
from jembed.backbones import feature_cache
from jembed.data import naming
from jembed.data import pipeline
from jembed.training import augmentation
from jembed.training import checkpoints
from jembed.training import losses
from jembed.training import model as model_lib
from jembed.training import optimizer
from jembed.training import photometric as photometric_lib
from jembed.training import run_metrics
from jembed.training import state as state_lib
from jembed.utils import config_checks as checks
from jembed.workdir import records
from jembed.workdir import stage_checks

TRAIN_KEYS = (
    "image",
    "features",
    "features_flipped",
    "point",
    "shape_index",
    "category_index",
    "azimuth",
    "elevation",
    "tilt",
)
EVAL_KEYS = tuple(k for k in TRAIN_KEYS if k != "features_flipped")


def create_mesh(devices=None) -> jax.sharding.Mesh:
  """The 1-D ('data',) mesh over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), ("data",), devices=devices)


def check_batch(batch: dict[str, Any], mesh: jax.sharding.Mesh) -> None:
  """Raises ValueError when the global batch does not split evenly over the mesh's devices."""
  size = next(iter(batch.values())).shape[0]
  if size % mesh.size:
    raise ValueError(
        f"the global batch of {size} examples does not divide over the {mesh.size} devices of the "
        f"('data',) mesh: make config.input.batch_size a multiple of {mesh.size}"
    )


def place_batch(batch: dict[str, Any], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """The batch split over 'data' on `mesh`: a no-op for the pipeline's global arrays, a copy for anything else
  (numpy arrays of the whole global batch on a single process, arrays on another mesh)."""
  return jax.device_put(batch, NamedSharding(mesh, P("data")))


def _replicated_points(shape_points, objective, mesh) -> jax.Array | None:
  """The shape points on every device of `mesh` when the objective needs them, else None."""
  if objective is None:
    return None
  if shape_points is None:
    raise ValueError(f"the {objective.objective!r} objective needs the shape points")
  return jax.device_put(np.asarray(shape_points, np.float32), NamedSharding(mesh, P()))


def make_update_fn(
    net: model_lib.EmbeddingNet,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    mesh: jax.sharding.Mesh,
    loss_weights: dict[str, float],
    *,
    flip: bool = False,
    shift: float = 0.0,
    from_features: bool = False,
    shape_points: np.ndarray | None = None,
    objective: losses.RankObjective | None = None,
    photometric: photometric_lib.Photometric | None = None,
) -> Callable:
  """`update_fn(state, batch, rng) -> (state, metrics)`, jitted, state donated.

  Args:
    net: the network.
    tx, schedule: the optimizer and its learning rate (for the metrics).
    mesh: the ('data',) mesh; the batch is split over it.
    loss_weights: {'embedding', 'contrastive', 'category', 'viewpoint'}.
    flip, shift: on-device augmentation (see `augmentation.augment_batch`).
    from_features: batches hold the frozen backbone's cached 'features' (and 'features_flipped') instead of
      images: only the head runs and is differentiated (`jembed.backbones.feature_cache`); param_norm is the head's.
    shape_points: float32[N, D] every shape's point (replicated on every device), needed by `objective`.
    objective: the contrastive term against the shape points (`losses.RankObjective`); None = the regression alone.
    photometric: colour, blur and noise augmentation of the images (`photometric.Photometric`); None = off.

  Returns:
    update_fn(state, batch, rng): `batch` a dict of [B, ...] arrays (`TRAIN_KEYS`; B divisible by the device
    count), `rng` the run's dropout key (folded with the step inside). Returns the new state and float32[] metrics
    averaged over the global batch: loss, each head's loss, grad_norm, param_norm, lr.
  """

  def per_device(state: state_lib.State, batch: dict[str, jax.Array], rng: jax.Array, points: jax.Array | None):
    rng = jax.random.fold_in(rng, state["step"])
    local = batch["point"].shape[0]
    example_ids = lax.axis_index("data") * local + jnp.arange(local, dtype=jnp.int32)
    if from_features:  # the frozen backbone's part of the work was done once, by the feature cache
      batch = augmentation.pick_feature_views(batch, jax.random.fold_in(rng, 1), example_ids)
      inputs, trained = dict(images=None, features=batch["features"]), _head(state["params"])
    else:
      batch = augmentation.augment_batch(batch, jax.random.fold_in(rng, 1), example_ids, flip=flip, shift=shift)
      if photometric is not None and photometric.enabled:
        # At the size the network sees (the model's own stretch is then a no-op): 4x fewer pixels at 64 px.
        images = model_lib.resize_images(batch["image"], net.spec.image_size)
        images = photometric_lib.augment_batch(images, jax.random.fold_in(rng, 2), example_ids, photometric)
        batch = dict(batch, image=images)
      inputs, trained = dict(images=batch["image"]), state["params"]
    rng = jax.random.fold_in(rng, 0)

    def loss_fn(params):
      outputs = net.apply(params, **inputs, train=True, example_ids=example_ids, rngs={"dropout": rng})
      return losses.total_loss(outputs, batch, loss_weights, points, objective, axis_name="data")

    # Differentiate w.r.t. a per-device ('varying') copy of the replicated params, so each device's gradient is its
    # own shard's (differentiating the replicated params directly would already psum it in the transpose), then
    # average: with equal shards the mean of the devices' means is the global batch's mean.
    local_params = lax.pcast(trained, "data", to="varying")
    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(local_params)
    grads, loss, parts = lax.pmean((grads, loss, parts), "data")
    if from_features:  # zeros for the frozen backbone (constants: XLA drops the no-op update of its params)
      grads = {
          "params": dict(grads["params"], backbone=jax.tree.map(jnp.zeros_like, state["params"]["params"]["backbone"]))
      }
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = dict(
        parts,
        loss=loss,
        grad_norm=optax.tree.norm(grads),
        param_norm=optax.tree.norm(_head(params) if from_features else params),
        lr=jnp.asarray(schedule(state["step"]), jnp.float32),
    )
    return dict(step=state["step"] + 1, params=params, opt_state=opt_state), metrics

  step = jax.jit(
      jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("data"), P(), P()), out_specs=(P(), P())), donate_argnums=0
  )
  points = _replicated_points(shape_points, objective, mesh)

  def update_fn(
      state: state_lib.State, batch: dict[str, Any], rng: jax.Array
  ) -> tuple[state_lib.State, dict[str, jax.Array]]:
    check_batch(batch, mesh)
    return step(state, place_batch({k: batch[k] for k in TRAIN_KEYS if k in batch}, mesh), rng, points)

  # For cost analysis in the benchmarks: `update_fn.lower(state, batch, rng).compile()`.
  update_fn.lower = lambda state, batch, rng: step.lower(
      state, place_batch({k: batch[k] for k in TRAIN_KEYS if k in batch}, mesh), rng, points
  )
  return update_fn


def _head(params: dict) -> dict:
  """The network's variables without the backbone's (what the head needs to run on features)."""
  return {"params": {k: v for k, v in params["params"].items() if k != "backbone"}}


def make_eval_fn(
    net: model_lib.EmbeddingNet,
    mesh: jax.sharding.Mesh,
    loss_weights: dict[str, float],
    objective: losses.RankObjective | None = None,
    *,
    from_features: bool = False,
) -> Callable:
  """`eval_fn(params, batch, shape_points) -> metrics` over a global batch, averaged over it.

  Retrieval is image->shape among all N shapes: the rank of the image's own shape (`batch['shape_index']`, its row in
  shape_points float32[N, D]) when the shapes are sorted by L2 distance to the image's point; top-k = rank < k.
  With `from_features` the batches hold cached backbone 'features' instead of images.
  """

  def per_device(params, batch, shape_points):
    if from_features:
      outputs = net.apply(_head(params), None, features=batch["features"], train=False)
    else:
      outputs = net.apply(params, batch["image"], train=False)
    loss, parts = losses.total_loss(outputs, batch, loss_weights, shape_points, objective, axis_name="data")
    d2 = jnp.sum(jnp.square(outputs["point"][:, None, :] - shape_points[None]), axis=-1)  # [b, N]
    own = jnp.take_along_axis(d2, batch["shape_index"][:, None], axis=1)
    rank = jnp.sum(d2 < own, axis=1)
    metrics = dict(
        {f"val_{k}": v for k, v in parts.items()},
        val_loss=loss,
        val_top1=jnp.mean(rank < 1),
        val_top5=jnp.mean(rank < 5),
    )
    if "category" in outputs:
      metrics["val_category_accuracy"] = jnp.mean(jnp.argmax(outputs["category"], -1) == batch["category_index"])
    return lax.pmean(metrics, "data")

  step = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("data"), P()), out_specs=P()))

  def eval_fn(params, batch: dict[str, Any], shape_points: jax.Array) -> dict[str, jax.Array]:
    check_batch(batch, mesh)
    return step(params, place_batch({k: batch[k] for k in EVAL_KEYS if k in batch}, mesh), shape_points)

  return eval_fn


def _validation(config, workdir, mesh) -> Callable[[], Any] | None:
  """A factory of one-pass validation iterators, or None when the split is too small or absent."""
  try:
    size = len(pipeline.data_source(config, workdir, "validation"))
  except (KeyError, ValueError) as e:
    logging.warning("no validation split (%s): training without validation", e)
    return None
  quantum = mesh.size  # all devices of all processes: a multiple of the process count
  batch = min(int(config.train.eval_batch_size or config.input.batch_size), size) // quantum * quantum
  if batch == 0:
    logging.warning("the validation split (%d images) is smaller than the %d devices: no validation", size, quantum)
    return None
  eval_config = config.copy_and_resolve_references()
  eval_config.input.batch_size = batch
  return functools.partial(
      pipeline.create_input_iterator, eval_config, workdir, "validation", mesh=mesh, shuffle=False, num_epochs=1
  )


def _cached_inputs(config, workdir, net, params, spec, mesh) -> tuple[Any, Callable[[], Any] | None]:
  """(train batches, validation factory) from the frozen backbone's feature cache, built first if needed."""
  if float(config.train.augment_shift):
    logging.warning(
        "config.train.augment_shift=%s is not applied with a frozen backbone: pooled features cannot be "
        "shifted (mirroring is exact: the mirrored images' features are cached)",
        config.train.augment_shift,
    )
  folder = feature_cache.build(config, workdir, net, params, spec)
  columns = feature_cache.load_split(config, workdir, folder, "train")
  train = feature_cache.CachedBatches(columns, int(config.input.batch_size), mesh, seed=int(config.seed))
  try:
    val = feature_cache.load_split(config, workdir, folder, "validation")
  except FileNotFoundError:
    logging.warning("no validation split in the feature cache %s: training without validation", folder)
    return train, None
  quantum = mesh.size  # all devices of all processes
  batch = min(int(config.train.eval_batch_size or config.input.batch_size), len(val["point"])) // quantum * quantum
  val.pop("features_flipped", None)
  return train, (lambda: feature_cache.CachedBatches(val, batch, mesh, shuffle=False, num_epochs=1)) if batch else None


def evaluate(eval_fn, params, batches, shape_points) -> dict[str, float]:
  """Means of `eval_fn`'s metrics over the (equal-sized) batches."""
  sums, n = {}, 0
  for batch in batches:
    for k, v in jax.device_get(eval_fn(params, batch, shape_points)).items():
      sums[k] = sums.get(k, 0.0) + float(v)
    n += 1
  if not n:
    logging.warning(
        "the validation split holds fewer images than one evaluation batch: no validation metrics "
        "(lower config.train.eval_batch_size or give validation a larger share)"
    )
  return {k: v / n for k, v in sums.items()}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, force: bool = False) -> dict[str, float]:
  """Trains (or resumes training) the network of `config` on the dataset in `workdir`; returns the last metrics.

  Raises:
    FileNotFoundError: no shape embedding or dataset in `workdir` (the message says what to run).
    ValueError: a bad config value, e.g. a batch that does not divide over the devices; a damaged dataset shard;
      checkpoints trained on another embedding or dataset (`provenance.Mismatch`; `force` sets them aside).
    FloatingPointError: the loss became NaN/inf; the checkpoints written before stay.
  """
  stage_checks.check_training_inputs(config, workdir, naming.config_name(config), force)
  pipeline.check_shards(pipeline.require_dataset(config, workdir))
  mesh = create_mesh()
  with jax.set_mesh(mesh):
    return _train(config, workdir, mesh)


def _train(config: ml_collections.ConfigDict, workdir: str, mesh: jax.sharding.Mesh) -> dict[str, float]:
  embedding = records.load_shape_embedding(workdir)
  points = np.asarray(embedding.points, np.float32)
  objective = losses.RankObjective.from_config(config, points)
  spec, categories = state_lib.model_spec(config, workdir, points, objective)
  net = model_lib.EmbeddingNet(spec)
  init_rng, dropout_rng = jax.random.split(jax.random.key(int(config.seed)))
  tx, schedule = optimizer.make_optimizer(config, jax.eval_shape(lambda: model_lib.init_params(spec, init_rng)))
  loss_weights = {k: float(v) for k, v in config.loss.items()}
  cached = spec.frozen_backbone  # the paper's recipe: features of a frozen backbone computed once, head trained
  update_fn = make_update_fn(
      net,
      tx,
      schedule,
      mesh,
      loss_weights,
      flip=bool(config.train.augment_flip),
      shift=float(config.train.augment_shift),
      from_features=cached,
      shape_points=points,
      objective=objective,
      photometric=photometric_lib.Photometric.from_config(config.get("photometric")),
  )
  eval_fn = make_eval_fn(net, mesh, loss_weights, objective, from_features=cached)
  validation = None if cached else _validation(config, workdir, mesh)
  shape_points = jax.device_put(points, NamedSharding(mesh, P()))
  train_iter = None if cached else pipeline.create_input_iterator(config, workdir, "train", mesh=mesh)
  ckpts = checkpoints.Checkpoints(workdir, max_to_keep=int(config.train.max_to_keep))
  total, every = int(config.train.total_steps), {k: int(config.train[k]) for k in ("ckpt_every", "eval_every")}
  meta = dict(model=spec.to_dict(), categories=list(categories))
  try:
    state, saved = state_lib.restore_or_create_state(ckpts, spec, tx, init_rng, mesh, config.model.backbone_weights)
    if cached:
      train_iter, validation = _cached_inputs(config, workdir, net, state["params"], spec, mesh)
    start = saved["step"] if saved else 0
    if saved:
      train_iter.set_state(saved["input"])  # the resumed run sees the batches the killed one would have
      logging.info("resumed from step %d of %d (%s)", start, total, checkpoints.directory(workdir))
    logging.info(
        "%s: %s parameters, %d devices, global batch %d",
        spec.backbone,
        f"{sum(x.size for x in jax.tree.leaves(state['params'])):,}",
        mesh.size,
        config.input.batch_size,
    )
    writer = run_metrics.MetricWriter(workdir, resume_step=start)
    tracker = run_metrics.StepTracker(
        writer, batch_size=int(config.input.batch_size), log_every=int(config.train.log_every), start=start, total=total
    )
    last = {}
    for step in range(start, total):
      state, metrics = update_fn(state, next(train_iter), dropout_rng)
      done = step + 1
      due = {k: done % v == 0 or done == total for k, v in every.items()}
      tracker.add(done, metrics, flush=any(due.values()))  # raises FloatingPointError before a bad state is saved
      if validation and due["eval_every"]:
        last = dict(step=done, **evaluate(eval_fn, state["params"], validation(), shape_points))
        writer.write(last)
        tracker.show(last)
      if due["ckpt_every"]:
        ckpts.save(done, state, dict(meta, input=train_iter.get_state()))
    tracker.close()
  except FloatingPointError as e:
    raise FloatingPointError(
        f"{e}; stopped. The last good checkpoint is step {ckpts.latest_step()} in "
        f"{checkpoints.directory(workdir)} (lower config.optax.lr or set "
        "config.optax.grad_clip_norm, then rerun to resume from it)"
    ) from None
  finally:
    ckpts.close()
  run_metrics.plot_loss_curve(workdir)
  return {**tracker.last, **last}


# The checks `launch` runs on this stage's config fields before any work (`jembed.utils.config_checks`).
CONFIG_RULES = {
    "loss.*": checks.number(0.0),
    "train.total_steps": checks.integer(1),
    "train.log_every": checks.integer(1),
    "train.eval_every": checks.integer(1),
    "train.ckpt_every": checks.integer(1),
    "train.max_to_keep": checks.integer(1),
    "train.eval_batch_size": checks.integer(0),
    "train.augment_shift": checks.number(0.0, 1.0, hi_open=True),
    **{f"photometric.{op}": checks.number(0.0, 1.0) for op in photometric_lib.OPERATIONS},
    "photometric.brightness_range": checks.number(0.0, 1.0),
    "photometric.contrast_range": checks.number(0.0, 1.0),
    "photometric.saturation_range": checks.number(0.0, 1.0),
    "photometric.hue_range": checks.number(0.0, 0.5),
    "photometric.gamma_range": checks.number(0.0, 2.0),
    "photometric.blur_sigma": checks.number(0.1, 5.0),
    "photometric.noise_std": checks.number(0.0, 1.0),
    "train.compute_dtype": checks.choice(tuple(compute.DTYPES)),
    "train.loss": checks.choice(("regression", "infonce", "hcl")),
    "contrastive.similarity": checks.choice(("neg_sq_distance", "cosine")),
    "contrastive.temperature": checks.number(0.0, lo_open=True),
    "contrastive.beta": checks.number(0.0),
    "contrastive.tau_plus": checks.number(0.0, 1.0, hi_open=True),
    "contrastive.max_negatives": checks.integer(1),
    "contrastive.regression_weight": checks.number(0.0),
    "contrastive.shape_to_image": checks.number(0.0),
}
