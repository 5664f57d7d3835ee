"""The jitted steps of training: the data-parallel update and validation programs over the ('data',) mesh.

Each is a per-device program under `jax.shard_map` over the 1-D ('data',) mesh (DESIGN.md): each device takes its
slice of the global batch, gradients and metrics are averaged with `lax.pmean`, the replicated state is donated.
Dropout masks are keyed by the example's index in the global batch, so one, two or four devices give the same step.
`train.train_and_evaluate` runs them (and `joint` for the shape encoder); the benchmarks and tests build them
directly.
"""

import functools
from typing import Any, Callable

from absl import logging
import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import optax

from jembed.training import augmentation
from jembed.training import losses
from jembed.training import model as model_lib
from jembed.training import photometric as photometric_lib
from jembed.training import state as state_lib

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

  augment = functools.partial(_augmented_inputs, net.spec.image_size, flip=flip, shift=shift, photometric=photometric)

  def per_device(state: state_lib.State, batch: dict[str, jax.Array], rng: jax.Array, points: jax.Array | None):
    rng = jax.random.fold_in(rng, state["step"])
    local = batch["point"].shape[0]
    example_ids = lax.axis_index("data") * local + jnp.arange(local, dtype=jnp.int32)
    if from_features:  # the frozen backbone's part of the work was done once, by the feature cache
      batch = augmentation.pick_feature_views(batch, jax.random.fold_in(rng, 1), example_ids)
      inputs, trained = dict(images=None, features=batch["features"]), _head(state["params"])
    else:
      batch = augment(batch, rng, example_ids)
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
    return apply_update(tx, schedule, state, grads, dict(parts, loss=loss), normed=_head if from_features else None)

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


def apply_update(tx, schedule, state: state_lib.State, grads, metrics: dict, *, normed=None):
  """One optimizer step from the devices' averaged gradients: (the next state, `metrics` with grad_norm, param_norm
  (of `normed(params)` if given, e.g. the trained head only) and the step's learning rate). Shared by the image
  network's step and the joint step with the shape encoder (`joint`)."""
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  params = optax.apply_updates(state["params"], updates)
  metrics = dict(
      metrics,
      grad_norm=optax.tree.norm(grads),
      param_norm=optax.tree.norm(params if normed is None else normed(params)),
      lr=jnp.asarray(schedule(state["step"]), jnp.float32),
  )
  return dict(step=state["step"] + 1, params=params, opt_state=opt_state), metrics


def _augmented_inputs(
    image_size: int, batch: dict, rng: jax.Array, example_ids: jax.Array, *, flip, shift, photometric
):
  """One device's batch after the on-device augmentation: mirror and shift (`augmentation`), then the photometric
  operations at the size the network sees (the model's own stretch is then a no-op: 4x fewer pixels at 64 px)."""
  batch = augmentation.augment_batch(batch, jax.random.fold_in(rng, 1), example_ids, flip=flip, shift=shift)
  if photometric is None or not photometric.enabled:
    return batch
  images = model_lib.resize_images(batch["image"], image_size)
  return dict(batch, image=photometric_lib.augment_batch(images, jax.random.fold_in(rng, 2), example_ids, photometric))


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
