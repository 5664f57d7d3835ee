"""The training state: a fresh one (jitted init, optionally with converted backbone weights), or the newest intact
checkpoint's, and the network spec a config, dataset and shape points call for.

  state = create_state(spec, tx, rng, mesh)                          # replicated over the mesh
  state, meta = restore_or_create_state(ckpts, spec, tx, rng, mesh)  # resumes a run, input position in meta
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
import optax

from jembed.data import naming
from jembed.data import pipeline
from jembed.training import checkpoints
from jembed.training import losses
from jembed.training import model as model_lib

State = dict[str, Any]  # {'step': int32[], 'params': {'params': ...}, 'opt_state': ...}, replicated


def _init_fn(spec: model_lib.ModelSpec, tx: optax.GradientTransformation) -> Callable:
  """`init(rng, backbone_params_or_None) -> State`: one function for the jitted init and for `eval_shape`."""

  def init(rng, backbone):
    params = model_lib.init_params(spec, rng)
    if backbone is not None:
      params = {"params": dict(params["params"], backbone=backbone)}
    return dict(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

  return init


def create_state(
    spec: model_lib.ModelSpec,
    tx: optax.GradientTransformation,
    rng: jax.Array,
    mesh: jax.sharding.Mesh,
    backbone_weights: str = "",
) -> State:
  """A fresh training state, replicated over `mesh` (created in place by a jitted init).

  With `backbone_weights` the backbone's params come from that file (see `model.load_backbone_weights`).
  """
  backbone = None
  if backbone_weights:
    abstract = jax.eval_shape(lambda: model_lib.init_params(spec, rng))
    backbone = model_lib.load_backbone_weights(
        backbone_weights, abstract["params"]["backbone"], arch=spec.backbone, image_size=spec.image_size
    )
  return jax.jit(_init_fn(spec, tx), out_shardings=NamedSharding(mesh, P()))(rng, backbone)


def restore_or_create_state(
    ckpts: checkpoints.Checkpoints,
    spec: model_lib.ModelSpec,
    tx: optax.GradientTransformation,
    rng: jax.Array,
    mesh: jax.sharding.Mesh,
    backbone_weights: str = "",
) -> tuple[State, dict | None]:
  """The newest intact checkpoint's state and meta (with the input position) if there is one, else a fresh state.

  Damaged checkpoints (truncated files) are skipped with a warning naming them (`Checkpoints.newest_intact`).
  """
  if ckpts.latest_step() is None:
    return create_state(spec, tx, rng, mesh, backbone_weights), None
  replicated = NamedSharding(mesh, P())
  abstract = jax.eval_shape(_init_fn(spec, tx), rng, None)  # shapes only: nothing is initialized
  target = checkpoints.abstract_like({"params": abstract["params"], "opt_state": abstract["opt_state"]}, replicated)

  def restore(step):
    saved = model_lib.ModelSpec.from_dict(ckpts.restore_meta(step)["model"])
    changed = {
        k: (v, getattr(spec, k))
        for k, v in saved.to_dict().items()
        if v != getattr(spec, k) and k not in spec.TRAINING_ONLY
    }
    if changed:  # (a new dropout rate, compute dtype or remat policy is fine: they change no parameter)
      raise checkpoints.Incompatible(
          f"the checkpoint of step {step} in {ckpts.directory} is of another network (checkpoint vs config: "
          f"{changed}): train in a new workdir, or delete {ckpts.directory} to start over"
      )
    return ckpts.restore(step, target)

  step, (restored, meta) = ckpts.newest_intact(restore)
  return dict(restored, step=jax.device_put(np.int32(step), replicated)), meta


def model_spec(
    config: ml_collections.ConfigDict, workdir: str, points: np.ndarray, objective: losses.RankObjective | None = None
) -> tuple[model_lib.ModelSpec, list[str]]:
  """The network for this config, dataset, shape points float32[N, D] and objective (a learned temperature is a
  variable of the network), and the dataset's category names."""
  categories = pipeline.read_metadata(naming.dataset_dir(config, workdir))["categories"]
  if config.model.frozen_backbone and not config.model.backbone_weights:
    raise ValueError(
        "config.model.frozen_backbone needs config.model.backbone_weights: a frozen random backbone " "learns nothing"
    )
  return (
      model_lib.ModelSpec.from_config(
          config.model,
          dim=points.shape[1],
          image_size=config.model.image_size or config.data.image_size,
          num_categories=len(categories),
          point_scale=float(np.sqrt(np.mean(np.var(points, axis=0)))),
          temperature=objective.temperature if objective and config.contrastive.learn_temperature else 0.0,
          flip_trained=config.train.augment_flip,
          compute_dtype=config.train.get("compute_dtype", "float32"),
      ),
      categories,
  )
