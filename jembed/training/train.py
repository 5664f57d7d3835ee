r"""Training: a CNN regresses each image's shape point (paper section 3), data-parallel over all devices.

  python -m launch.train --config=configs/default.py --workdir=/tmp/jembed

The loop: the input pipeline (or the frozen backbone's feature cache), the jitted data-parallel update and validation
steps of `step_fns`, checkpoints, metrics and the end's loss curve.

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
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np

from jembed.backbones import compute
from jembed.backbones import feature_cache
from jembed.data import naming
from jembed.data import pipeline
from jembed.training import checkpoints
from jembed.training import losses
from jembed.training import model as model_lib
from jembed.training import optimizer
from jembed.training import photometric as photometric_lib
from jembed.training import run_metrics
from jembed.training import state as state_lib
from jembed.training import step_fns
from jembed.utils import config_checks as checks
from jembed.workdir import records
from jembed.workdir import stage_checks


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
  mesh = step_fns.create_mesh()
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
  update_fn = step_fns.make_update_fn(
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
  eval_fn = step_fns.make_eval_fn(net, mesh, loss_weights, objective, from_features=cached)
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
        last = dict(step=done, **step_fns.evaluate(eval_fn, state["params"], validation(), shape_points))
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
