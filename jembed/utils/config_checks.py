"""Checks of config values, and the check of a whole config against a table of them.

Each stage declares the rules of its own config fields beside the choices it offers (`CONFIG_RULES` in
`shapes.sources`, `render.backend`, `embedding.shape_embedding`, `data.build`, `data.pipeline`, `training.model`,
`training.optimizer`, `training.train`, `evaluation.image_sets`); `jembed.apps.validate` gathers them. A value out of
range or not among a field's choices is a ValueError naming the field, its value and what it should be, e.g.
`config.mds.dim=0: must be an integer >= 1` -- not an error deep in a stage after hours of descriptors. A rules table
maps dotted fields to checks; a field a config does not have is not checked (so configs that leave sections out, and
branches that add fields, need no change), and a `section.*` rule checks every numeric field of it.
"""

import math

import ml_collections


def integer(lo: int | None = None, hi: int | None = None):
  """An integer >= lo (and <= hi: sizes whose cost grows with their square, capped where a run would fail)."""
  where = f" in [{lo}, {hi}]" if lo is not None and hi is not None else f" >= {lo}" if lo is not None else ""

  def check(v):
    if isinstance(v, bool) or not isinstance(v, int):
      return "must be an integer" + where
    return f"must be an integer{where}" if (lo is not None and v < lo) or (hi is not None and v > hi) else None

  return check


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False):
  """A real number in [lo, hi] (`lo_open`/`hi_open`: the bound itself excluded)."""
  left, right = "(" if lo_open else "[", ")" if hi_open else "]"
  where = (
      f"in {left}{lo}, {hi}{right}"
      if lo is not None and hi is not None
      else f"{'>' if lo_open else '>='} {lo}"
      if lo is not None
      else f"{'<' if hi_open else '<='} {hi}"
  )

  def check(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      return f"must be a finite number {where}"
    bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and (v >= hi if hi_open else v > hi))
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


def _lookup(config: ml_collections.ConfigDict, field: str):
  """(found, value) of a dotted field."""
  node = config
  for part in field.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False, None
    node = node[part]
  return True, node


def problems(config: ml_collections.ConfigDict, rules: dict) -> list[str]:
  """Every rule the config breaks, as 'config.<field>=<value>: <what it must be>' lines."""
  config = config.copy_and_resolve_references()
  found = []
  for field, check in rules.items():
    if field.endswith(".*"):
      present, section = _lookup(config, field[:-2])
      numeric = (
          {
              f"{field[:-2]}.{k}": v
              for k, v in section.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)
          }
          if present
          else {}
      )
      targets = list(numeric.items())
    else:
      present, value = _lookup(config, field)
      targets = [(field, value)] if present else []
    for name, value in targets:
      why = check(value)
      if why:
        found.append(f"config.{name}={value!r}: {why}")
  return found


def validate(config: ml_collections.ConfigDict, rules: dict) -> None:
  """Raises ValueError naming the first field out of range (and how many more there are)."""
  raise_first(problems(config, rules))


def raise_first(found: list[str]) -> None:
  """Raises ValueError with the first of `found` problem lines (and the others after it); nothing if none."""
  if found:
    more = f" (and {len(found) - 1} more: {'; '.join(found[1:])})" if len(found) > 1 else ""
    raise ValueError(found[0] + more)
