"""The one parser of `--config=configs/<name>.py:<arg>` overrides, used by every config.

`arg` is `key=value` items separated by commas, e.g. `root=/data/ShapeNetCore.v1,limit=8,categories=chair+table`:

  * a bare key names a field of `config.shapes` (the fields people set most: `root`, `categories`, `limit`, ...),
    unless the config maps it elsewhere (configs/ikea.py: `backgrounds` -> `data.backgrounds`);
  * a dotted key names any field: `data.images_per_shape=10`, `train.total_steps=500`;
  * the value is parsed as the field's current type: int, float, bool (`true`/`false`/`1`/`0`), str, or a tuple
    whose items are separated by `+` (`categories=chair+table`, `model.widths=32+64`).

An unknown key or a value of the wrong type is a ValueError that names the key and what it expected, before any
work starts, so a typo never becomes a silent new field.
"""

import ml_collections

_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _parse(key: str, value: str, current):
  """`value` as the type of `current` (the field's default)."""
  try:
    if isinstance(current, bool):
      if value.lower() not in _BOOLS:
        raise ValueError
      return _BOOLS[value.lower()]
    if isinstance(current, int):
      return int(value)
    if isinstance(current, float):
      return float(value)
    if isinstance(current, tuple):
      items = [v for v in value.split("+") if v]
      kinds = {type(v) for v in current}
      kind = kinds.pop() if len(kinds) == 1 else str
      return tuple(_parse(key, v, kind()) if kind in (bool, int, float) else v for v in items)
  except ValueError:
    raise ValueError(
        f"config override {key}={value!r}: expected {type(current).__name__} " f"(the field's default is {current!r})"
    ) from None
  return value


def apply(
    config: ml_collections.ConfigDict, arg: str | None, aliases: dict[str, str] | None = None
) -> ml_collections.ConfigDict:
  """Sets the fields `arg` names (see the module docstring) and returns `config`.

  Args:
    config: the config to change in place.
    arg: `key=value,...` or None / '' for no change.
    aliases: bare keys that mean another field than `shapes.<key>`, as {key: dotted path}.

  Raises:
    ValueError: an item without '=', an unknown field (the message lists the fields of its section), or a value that
      does not parse as the field's type.
  """
  for item in (arg or "").split(","):
    if not item.strip():
      continue
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
      raise ValueError(f"config override {item!r}: expected key=value (e.g. root=/data,limit=8)")
    path = (aliases or {}).get(key) or (key if "." in key else f"shapes.{key}")
    *parents, field = path.split(".")
    section = config
    for i, name in enumerate(parents):
      if not isinstance(section, ml_collections.ConfigDict) or name not in section:
        raise ValueError(f"config override {key!r}: no section {'.'.join(parents[:i + 1])!r} in the config")
      section = section[name]
    if not isinstance(section, ml_collections.ConfigDict) or field not in section:
      known = ", ".join(sorted(section.keys())) if isinstance(section, ml_collections.ConfigDict) else ""
      where = ".".join(parents) or "the config"
      raise ValueError(f"config override {key!r}: {where} has no field {field!r} (its fields: {known})")
    section[field] = _parse(key, value.strip(), section[field])
  return config
