"""The optimizer from `config.optax` and `config.schedule`: Caffe's SGD (the paper) or AdamW (the small default).

Caffe's solver, reproduced exactly (paper-pipeline section 3):
  g <- g + weight_decay * w          weight decay as L2 added to the gradient (decay_mult 0 for biases)
  g <- lr_mult * g                   per-layer learning-rate multipliers (new fc layers 10, their biases 20)
  v <- momentum * v - lr(step) * g   the velocity carries the learning rate, as Caffe's does
  w <- w + v
AdamW decouples the weight decay instead (added to Adam's update, scaled by the learning rate).
Layers under `backbone` get no update at all when `config.model.frozen_backbone` (and keep no optimizer state).
"""

import jax
import ml_collections
import optax

from jembed.utils import config_checks as checks


def make_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """The learning rate per step.

  `config.schedule.type`:
    'step'           lr * decay_factor ** floor(step / decay_every) (Caffe's 'step' policy)
    'warmup_cosine'  linear 0 -> lr over warmup_steps, then cosine to lr * end_factor at train.total_steps
    'constant'       lr
  """
  lr, sched = float(config.optax.lr), config.schedule
  if sched.type == "step":
    return optax.exponential_decay(
        lr, transition_steps=int(sched.decay_every), decay_rate=float(sched.decay_factor), staircase=True
    )
  if sched.type == "warmup_cosine":
    total = int(config.train.total_steps)
    warmup = min(int(sched.warmup_steps), max(total - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps=warmup, decay_steps=max(total, warmup + 1), end_value=lr * float(sched.end_factor)
    )
  if sched.type == "constant":
    return optax.constant_schedule(lr)
  raise ValueError(f"unknown config.schedule.type {sched.type!r} (use 'step', 'warmup_cosine' or 'constant')")


def _path_names(path) -> list[str]:
  return [str(getattr(k, "key", k)) for k in path]


def lr_multiplier(path, config: ml_collections.ConfigDict) -> float:
  """Caffe's lr_mult of the parameter at `path`: `config.optax.lr_mults[layer]` (default 1), x bias_lr_mult if bias."""
  names, mults = _path_names(path), config.optax.lr_mults
  layer = next((n for n in names if n in mults), None)
  return float(mults[layer] if layer else 1.0) * (float(config.optax.bias_lr_mult) if names[-1] == "bias" else 1.0)


def _decay_mask(params):
  """Weight decay on kernels only (Caffe's decay_mult 0 on biases; no decay of LayerNorm scales either)."""
  return jax.tree_util.tree_map_with_path(lambda path, _: _path_names(path)[-1] == "kernel", params)


def _scale_by_lr_mult(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  # By path at update time, so it works on the partial trees `multi_transform` hands its inner optimizer.
  return optax.stateless(
      lambda updates, params=None: jax.tree_util.tree_map_with_path(
          lambda path, u: u * lr_multiplier(path, config), updates
      )
  )


def make_optimizer(config: ml_collections.ConfigDict, params) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optimizer, schedule) for the network's variables `params` (arrays or ShapeDtypeStructs: only the tree is used)."""
  opt, schedule = config.optax, make_schedule(config)
  parts = [optax.clip_by_global_norm(float(opt.grad_clip_norm))] if float(opt.grad_clip_norm) > 0 else []
  decay = optax.add_decayed_weights(float(opt.weight_decay), mask=_decay_mask)
  mults = _scale_by_lr_mult(config)
  if opt.name == "sgd":
    parts += [decay, mults, optax.scale_by_learning_rate(schedule), optax.trace(decay=float(opt.momentum))]
  elif opt.name == "adamw":
    parts += [
        optax.scale_by_adam(b1=float(opt.b1), b2=float(opt.b2)),
        decay,
        mults,
        optax.scale_by_learning_rate(schedule),
    ]
  else:
    raise ValueError(f"unknown config.optax.name {opt.name!r} (use 'sgd' or 'adamw')")
  tx = optax.chain(*parts)
  if config.model.frozen_backbone:
    labels = jax.tree_util.tree_map_with_path(
        lambda path, _: "frozen" if "backbone" in _path_names(path) else "trained", params
    )
    tx = optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, labels)
  return tx, schedule


# The checks `launch` runs on this stage's config fields before any work (`jembed.utils.config_checks`).
CONFIG_RULES = {
    "optax.name": checks.choice(("adamw", "sgd")),
    "optax.base_lr": checks.number(0.0, lo_open=True),
    "optax.momentum": checks.number(0.0, 1.0),
    "optax.b1": checks.number(0.0, 1.0, hi_open=True),
    "optax.b2": checks.number(0.0, 1.0, hi_open=True),
    "optax.weight_decay": checks.number(0.0),
    "optax.grad_clip_norm": checks.number(0.0),
    "optax.bias_lr_mult": checks.number(0.0),
    "schedule.type": checks.choice(("warmup_cosine", "step", "constant")),
    "schedule.warmup_steps": checks.integer(0),
    "schedule.end_factor": checks.number(0.0),
    "schedule.decay_every": checks.integer(1),
    "schedule.decay_factor": checks.number(0.0, lo_open=True),
}
