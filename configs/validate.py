"""The whole config checked before any work starts (`validate`, which every launcher calls through launch/common.py).

A value out of range or not among a field's choices is a ValueError naming the field, its value and what it should
be, e.g. `config.mds.dim=0: must be an integer >= 1` -- not an error deep in a stage after hours of descriptors.
`RULES` maps dotted fields to checks; a field a config does not have is not checked (so configs that leave sections
out, and branches that add fields, need no change here), and a `section.*` rule checks every numeric field of it.
"""

import ml_collections

from jembed.data import splits
from jembed.data import synthesis
from jembed.evaluation import photo_sets
from jembed.render import backend
from jembed.shapes import loading
from jembed.shapes import sources


def integer(lo: int | None = None):
  def check(v):
    if isinstance(v, bool) or not isinstance(v, int):
      return "must be an integer" + (f" >= {lo}" if lo is not None else "")
    return f"must be an integer >= {lo}" if lo is not None and v < lo else None
  return check


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False):
  """A real number in [lo, hi] (`lo_open`/`hi_open`: the bound itself excluded)."""
  left, right = "(" if lo_open else "[", ")" if hi_open else "]"
  where = (f"in {left}{lo}, {hi}{right}" if lo is not None and hi is not None else
           f"{'>' if lo_open else '>='} {lo}" if lo is not None else f"{'<' if hi_open else '<='} {hi}")

  def check(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
      return f"must be a number {where}"
    bad = ((lo is not None and (v <= lo if lo_open else v < lo)) or
           (hi is not None and (v >= hi if hi_open else v > hi)))
    return f"must be {where}" if bad else None
  return check


def choice(options):
  options = tuple(options)
  return lambda v: None if v in options else f"must be one of {', '.join(map(repr, options))}"


def each(check, n: int | None = None):
  """A tuple whose items each pass `check` (exactly `n` of them when given)."""
  def check_all(v):
    if not isinstance(v, (tuple, list)) or (n is not None and len(v) != n):
      return f"must be a tuple of {n or 'some'} values (written a+b in overrides)"
    for item in v:
      why = check(item)
      if why:
        return f"each item {why}"
    return None
  return check_all


def low_high(lo: float, hi: float | None = None):
  """A (low, high) pair within [lo, hi] with low <= high."""
  inner = each(number(lo, hi), 2)
  return lambda v: inner(v) or ("must be (low, high) with low <= high" if v[0] > v[1] else None)


def fractions(v):
  why = each(number(0.0), 3)(v)
  if why:
    return why + " (train, validation, test)"
  return "must give the train split a share > 0" if v[0] <= 0 else None


RULES = {
    "seed": integer(),
    "shapes.source": choice(sources.SOURCES),
    "shapes.limit": integer(0),
    "shapes.up_axis": choice(loading.UP_AXES),
    "shapes.front": choice(loading.FRONTS),
    "render.backend": choice(backend.NAMES),
    "render.size": integer(16),
    "render.antialias": integer(1),
    "lfd.hog_size": integer(8),
    "lfd.batch_shapes": integer(1),
    "mds.dim": integer(1),
    "mds.max_iter": integer(1),
    "mds.tol": number(0.0, lo_open=True),
    "mds.method": choice(("auto", "exact", "landmark")),
    "mds.exact_max_n": integer(3),
    "mds.landmarks": integer(3),
    "data.images_per_shape": integer(1),
    "data.image_size": integer(8),
    "data.render_size": integer(0),
    "data.antialias": integer(1),
    "data.distance": number(0.0, lo_open=True),
    "data.max_lamps": integer(0),
    "data.ambient": low_high(0.0),
    "data.albedo": choice(synthesis.ALBEDO_MODES),
    "data.albedo_range": low_high(0.0, 1.0),
    "data.tint": number(0.0),
    "data.truncation": number(0.0, 1.0, hi_open=True),
    "data.clutter_ratio": number(0.0, 1.0),
    "data.background_scale": number(0.0),
    "data.procedural_share": number(0.0, 1.0),
    "data.context": number(0.0),
    "data.occluders": number(0.0, 1.0),
    "data.split_by": choice(splits.BY),
    "data.split_fractions": fractions,
    "data.workers": integer(0),
    "data.sample_sheet": integer(0),
    "input.batch_size": integer(1),
    "input.num_epochs": integer(0),
    "input.read_threads": integer(1),
    "input.prefetch": integer(0),
    "input.decode_processes": integer(0),
    "model.backbone": choice(("small", "caffenet")),
    "model.image_size": integer(0),
    "model.widths": each(integer(1)),
    "model.hidden": each(integer(1)),
    "model.dropout": number(0.0, 1.0, hi_open=True),
    "model.normalization": choice(("unit", "caffe")),
    "loss.*": number(0.0),
    "train.total_steps": integer(1),
    "train.log_every": integer(1),
    "train.eval_every": integer(1),
    "train.ckpt_every": integer(1),
    "train.max_to_keep": integer(1),
    "train.eval_batch_size": integer(0),
    "train.augment_shift": number(0.0, 1.0, hi_open=True),
    "train.loss": choice(("regression", "infonce", "hcl")),
    "contrastive.similarity": choice(("neg_sq_distance", "cosine")),
    "contrastive.temperature": number(0.0, lo_open=True),
    "contrastive.beta": number(0.0),
    "contrastive.tau_plus": number(0.0, 1.0, hi_open=True),
    "contrastive.max_negatives": integer(1),
    "contrastive.regression_weight": number(0.0),
    "contrastive.shape_to_image": number(0.0),
    "optax.name": choice(("adamw", "sgd")),
    "optax.base_lr": number(0.0, lo_open=True),
    "optax.momentum": number(0.0, 1.0),
    "optax.b1": number(0.0, 1.0, hi_open=True),
    "optax.b2": number(0.0, 1.0, hi_open=True),
    "optax.weight_decay": number(0.0),
    "optax.grad_clip_norm": number(0.0),
    "optax.bias_lr_mult": number(0.0),
    "schedule.type": choice(("warmup_cosine", "step", "constant")),
    "schedule.warmup_steps": integer(0),
    "schedule.end_factor": number(0.0),
    "schedule.decay_every": integer(1),
    "schedule.decay_factor": number(0.0, lo_open=True),
    "eval.sets": each(choice(("synthetic",))),
    "eval.images_per_shape": integer(1),
    "eval.max_shapes": integer(0),
    "eval.photo_set": choice(("",) + tuple(photo_sets.KINDS)),
    "eval.gallery_queries": integer(0),
}


def _lookup(config: ml_collections.ConfigDict, field: str):
  """(found, value) of a dotted field."""
  node = config
  for part in field.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False, None
    node = node[part]
  return True, node


def problems(config: ml_collections.ConfigDict) -> list[str]:
  """Every rule the config breaks, as 'config.<field>=<value>: <what it must be>' lines."""
  config = config.copy_and_resolve_references()
  found = []
  for field, check in RULES.items():
    if field.endswith(".*"):
      present, section = _lookup(config, field[:-2])
      numeric = {f"{field[:-2]}.{k}": v for k, v in section.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)} if present else {}
      targets = list(numeric.items())
    else:
      present, value = _lookup(config, field)
      targets = [(field, value)] if present else []
    for name, value in targets:
      why = check(value)
      if why:
        found.append(f"config.{name}={value!r}: {why}")
  return found


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field out of range (and how many more there are)."""
  found = problems(config)
  if found:
    more = f" (and {len(found) - 1} more: {'; '.join(found[1:])})" if len(found) > 1 else ""
    raise ValueError(found[0] + more)
