"""What each artifact of a workdir was made from (`workdir/provenance.json`); the checks of every stage against it
are `stage_checks`.

A workdir's parts are built on each other: the network in checkpoints/ regresses the points of shape_embedding.npz, so
the two must stay a pair. Each stage that writes an artifact records, per artifact:

  {"shape_embedding": {"launcher": "launch.embed_shapes", "path": "shape_embedding.npz",
                       "config": <hash of the settings it depends on>, "settings": {"mds.dim": 128, ...},
                       "fingerprint": <hash of its content>, "inputs": {"shapes": <hash of the shape listing>}},
   "checkpoints":     {"launcher": "launch.train", "path": "checkpoints", "config": ..., "settings": ...,
                       "inputs": {"shape_embedding": <its fingerprint>, "dataset": <the dataset's name>},
                       "built_on": {"shape_embedding": <that artifact's entry when training started>}}}

and every stage that reads one checks it: `embed_shapes` refuses to replace an embedding a network was trained on
(`--force` does it anyway, saying so), `train` refuses to resume checkpoints trained on another embedding or dataset
(`--force` sets them aside), and `jembed.load` (query, evaluate) refuses a network whose embedding was replaced. Each
refusal names both sides and the launcher to run. A workdir without a record (made before it existed) is trusted.

The record carries the SHA-256 of its own entries (`checksum`). A record that is unreadable or fails its checksum is
`Damaged`, and every check it backs fails closed: embed_shapes will not replace an embedding while checkpoints exist
(`--force` replaces it and marks the network's inputs unknown, so train and query refuse it until it is retrained),
train will not resume (`--force` sets the checkpoints aside), query and evaluate refuse the network. The damaged file
is moved to `provenance.json.damaged.<time>` (kept for inspection) only by a run that writes a new record.
"""

import json
import os
import time

from absl import logging
import ml_collections

from jembed.utils import distributed
from jembed.workdir import checksums
from jembed.workdir import files
from jembed.workdir import paths

VERSION = 2  # 2: the record carries the checksum of its entries
# The settings each artifact depends on: whole sections, or single dotted fields.
SHAPE_SIDE = ("shapes", "render.size", "render.antialias", "lfd.hog_size", "mds")
TRAINING = (
    "model",
    "loss",
    "optax",
    "schedule",
    "input.batch_size",
    "train.augment_flip",
    "train.augment_shift",
    "seed",
)


class Mismatch(ValueError):
  """A workdir's parts disagree (the message names both sides and the launcher to rerun)."""


class Damaged(Mismatch, files.DamagedFile):
  """provenance.json is unreadable or fails its checksum: what it backs cannot be checked, so it is refused."""


# Stands for the shape embedding a network was trained on when the record of it was lost (never equals a fingerprint).
UNKNOWN = "unknown (provenance.json was damaged)"


def _checksum(entries: dict) -> str:
  return checksums.digest_bytes(json.dumps(entries, sort_keys=True).encode())


def load(workdir: str) -> dict:
  """The record ({} when there is none).

  Raises:
    Damaged: the file is unreadable, not a record, or fails its checksum (the message names it).
  """
  path = paths.provenance(workdir)
  try:
    with open(path, "rb") as f:
      record = json.loads(f.read().decode("utf-8"))
  except FileNotFoundError:
    return {}
  except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
    raise Damaged(f"{path} is damaged ({type(e).__name__}: {str(e)[:120]})") from None
  if not isinstance(record, dict):
    raise Damaged(f"{path} is damaged (not a record)")
  written = record.pop("checksum", None)
  if (written is not None or record.get("version", 1) != 1) and written != _checksum(record):
    raise Damaged(f"{path} is damaged (its content does not match its checksum)")
  return record


def record(workdir: str, name: str, entry: dict, *, replace_damaged: bool = False) -> None:
  """Sets the entry of artifact `name` (atomically; only process 0 writes on several hosts).

  Args:
    replace_damaged: a damaged record is moved aside and a new one started (callers that have handled what the
      damage means); otherwise it raises `Damaged`.
  """
  if not distributed.is_main():
    return
  try:
    entries = load(workdir)
  except Damaged:
    if not replace_damaged:
      raise
    entries = set_aside(workdir)
  entries[name] = dict(entry, written=time.strftime("%Y-%m-%dT%H:%M:%S"))
  entries["version"] = VERSION
  files.write_json(paths.provenance(workdir), dict(entries, checksum=_checksum(entries)), indent=1)


def set_aside(workdir: str) -> dict:
  """Moves a damaged provenance.json to `provenance.json.damaged.<time>`; returns the record to start from: one that
  marks the network in checkpoints/ (if any) as trained on an unknown embedding, so nothing trusts it unchecked."""
  path = paths.provenance(workdir)
  if distributed.is_main() and os.path.exists(path):
    aside = f"{path}.damaged.{int(time.time())}"
    os.replace(path, aside)
    logging.warning("moved the damaged %s to %s", path, aside)
  if not has_checkpoints(workdir):
    return {}
  return {
      "checkpoints": {"launcher": "launch.train", "path": paths.CHECKPOINTS, "inputs": {"shape_embedding": UNKNOWN}}
  }


def flatten(tree: dict, prefix: str = "") -> dict:
  """{'a': {'b': 1}} -> {'a.b': 1}, tuples as lists (JSON's view of them)."""
  flat = {}
  for k, v in tree.items():
    key = f"{prefix}.{k}" if prefix else str(k)
    if isinstance(v, dict):
      flat.update(flatten(v, key))
    else:
      flat[key] = list(v) if isinstance(v, tuple) else v
  return flat


def settings(config: ml_collections.ConfigDict, fields) -> dict:
  """{dotted field: value} of `fields` (sections flattened; references resolved; fields the config lacks left out)."""
  resolved, picked = config.copy_and_resolve_references().to_dict(), {}
  for field in fields:
    value = resolved
    for part in field.split("."):
      value = value.get(part) if isinstance(value, dict) else None
    if value is not None:
      picked.update(flatten(value, field) if isinstance(value, dict) else {field: value})
  return json.loads(json.dumps(flatten(picked), sort_keys=True, default=str))


def entry(
    launcher: str,
    path: str,
    config: ml_collections.ConfigDict,
    fields,
    *,
    fingerprint: str = "",
    inputs: dict | None = None,
    built_on: dict | None = None,
) -> dict:
  """One artifact's record."""
  values = settings(config, fields)
  out = dict(
      launcher=launcher,
      path=path,
      config=paths.cache_key(values),
      settings=values,
      fingerprint=fingerprint,
      inputs=dict(inputs or {}),
  )
  if built_on:
    out["built_on"] = built_on
  return out


def differences(old: dict, new: dict, limit: int = 6) -> str:
  """'mds.dim 8 -> 16, shapes.limit 3 -> 2' between two `settings` dicts."""
  keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
  text = ", ".join(f"{k} {old.get(k, '(none)')!r} -> {new.get(k, '(none)')!r}" for k in keys[:limit])
  return text + (f" and {len(keys) - limit} more" if len(keys) > limit else "") if keys else "same settings"


def has_checkpoints(workdir: str) -> bool:
  folder = paths.checkpoints(workdir)
  return os.path.isdir(folder) and any(name.isdigit() for name in os.listdir(folder))
