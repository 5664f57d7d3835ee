"""What each artifact of a workdir was made from (`workdir/provenance.json`), and the checks of every stage against it.

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
from jembed.workdir import records

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


def _damaged_refusal(error: Damaged, what: str, force_does: str) -> Damaged:
  """The one line of a check that fails closed on a damaged record."""
  return Damaged(f"{error}: it cannot tell whether {what}, so it refuses; {force_does}")


def _load_unless_trained(workdir: str, force: bool, what: str, force_does: str) -> dict | None:
  """The record; None when it is damaged but nothing was trained on the workdir yet (or `force`): the caller starts
  a new one.

  Raises:
    Damaged: it is damaged and checkpoints exist (the refusal of `_damaged_refusal(what, force_does)`), unless `force`.
  """
  try:
    return load(workdir)
  except Damaged as e:
    if has_checkpoints(workdir) and not force:
      raise _damaged_refusal(e, what, force_does) from None
    logging.warning("%s; starting a new record%s", e, " (--force)" if force else "")
    return None


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


def _cmd(launcher: str, workdir: str, extra: str = "") -> str:
  return f"`python -m {launcher} --workdir={workdir}{extra}`"


def check_shape_embedding_write(
    config: ml_collections.ConfigDict, workdir: str, listing: str, force: bool = False
) -> bool:
  """Before the shape side runs: True when `workdir/shape_embedding.npz` is already this config's (reuse it).

  A damaged file made with these settings is made again (the same settings give the same points); one a network was
  trained on is replaced only with `force` when the settings differ, or when the record is damaged (fail closed).

  Raises:
    Mismatch: the embedding there was made with other settings or shapes and a network was trained on it (unless
      `force`, which replaces it with a warning).
    Damaged: provenance.json is damaged and checkpoints exist (unless `force`).
  """
  path = paths.shape_embedding(workdir)
  if not os.path.exists(path):
    return False
  recorded = _load_unless_trained(
      workdir,
      force,
      f"the network in {paths.checkpoints(workdir)} was trained on {path}",
      f"pass --force to replace the embedding anyway (then retrain with {_cmd('launch.train', workdir, ' --force')})",
  )
  if recorded is None:  # computed again, and recorded anew
    return False
  old = recorded.get("shape_embedding")
  new = entry("launch.embed_shapes", paths.SHAPE_EMBEDDING, config, SHAPE_SIDE, inputs={"shapes": listing})
  try:
    current = records.file_fingerprint(workdir)
  except ValueError as e:  # a damaged file: made again below
    logging.warning("%s", e)
    current = None
  if old is None:
    logging.warning("%s has no record of what it was made from; computing it again", path)
    return False
  same = old.get("config") == new["config"] and old.get("inputs") == new["inputs"]
  if same and old.get("fingerprint") == current:
    return True
  if same and current is None:  # damaged: the same settings make the same points again
    return False
  why = (
      differences(old.get("settings", {}), new["settings"])
      if old.get("config") != new["config"]
      else "the shapes listed changed"
      if old.get("inputs") != new["inputs"]
      else "the file is not the one recorded"
  )
  trained = recorded.get("checkpoints", {}).get("inputs", {}).get("shape_embedding")
  if has_checkpoints(workdir) and trained in (current, old.get("fingerprint")):
    message = (
        f"{path} was made with other settings than this config ({why}) and the network in "
        f"{paths.checkpoints(workdir)} was trained on it"
    )
    if not force:
      raise Mismatch(
          f"{message}: use another --workdir, or the config it was made with, or pass --force to replace "
          f"it (then retrain with {_cmd('launch.train', workdir, ' --force')})"
      )
    logging.warning("%s; replacing it (--force): retrain with %s", message, _cmd("launch.train", workdir, " --force"))
  else:
    logging.warning("replacing %s, made with other settings (%s)", path, why)
  return False


def record_shape_embedding(
    config: ml_collections.ConfigDict, workdir: str, listing: str, embedding, into: str = ""
) -> None:
  """Records the shape embedding just written (`embedding`: a `ShapeEmbedding`)."""
  inputs = {"shapes": listing}
  if into:
    inputs["into"] = os.path.abspath(into)
  record(
      workdir,
      "shape_embedding",
      entry(
          "launch.embed_shapes",
          paths.SHAPE_EMBEDDING,
          config,
          SHAPE_SIDE,
          inputs=inputs,
          fingerprint=embedding.fingerprint(),
      ),
      replace_damaged=True,  # check_shape_embedding_write let it through: no checkpoints, or --force
  )


def check_same_views(config: ml_collections.ConfigDict, workdir: str, base_workdir: str) -> None:
  """`--into`: the base run must be another workdir, its descriptors made with this config's LFD settings.

  Raises:
    ValueError: `workdir` is `base_workdir` (the base would start over), or the LFD settings differ.
  """
  if os.path.realpath(workdir) == os.path.realpath(base_workdir):
    raise ValueError(
        f"--into={base_workdir} is the --workdir itself: --into must name another workdir (the finished "
        "embedding to place the shapes into, which stays unchanged)"
    )
  try:
    base = load(base_workdir).get("shape_embedding")
  except Damaged as e:
    raise _damaged_refusal(
        e, "its descriptors were made with this config's LFD settings", "use another --into"
    ) from None
  if base is None:
    return
  views = [f for f in SHAPE_SIDE if f.startswith(("render.", "lfd."))]
  old = {k: v for k, v in base.get("settings", {}).items() if k in views}
  new = settings(config, views)
  if old != new:
    raise Mismatch(
        f"--into={base_workdir}: its descriptors were made with other LFD settings than this config "
        f"({differences(old, new)}): use its settings for the new shapes"
    )


def check_training_inputs(config: ml_collections.ConfigDict, workdir: str, dataset: str, force: bool = False) -> None:
  """Before training: checkpoints already there must have been trained on this embedding and dataset; records them.

  Raises:
    Mismatch: they were trained on another shape embedding or dataset, or provenance.json is damaged so that cannot
      be told (unless `force`: the old checkpoints and metrics are then moved to `checkpoints.<old fingerprint>/`,
      nothing is deleted, and training starts over).
  """
  current = records.file_fingerprint(workdir)
  if current is None:
    raise FileNotFoundError(f"{workdir} has no shape embedding: run {_cmd('launch.embed_shapes', workdir)} first")
  recorded = _load_unless_trained(
      workdir,
      force,
      f"the network in {paths.checkpoints(workdir)} was trained on this shape embedding and dataset",
      f"pass --force to set the checkpoints aside and train again ({_cmd('launch.train', workdir, ' --force')})",
  )
  if recorded is None:
    recorded = set_aside(workdir)
  trained = recorded.get("checkpoints")
  emb_entry = recorded.get("shape_embedding", {})
  if trained and has_checkpoints(workdir):
    changed = _changed_inputs(trained, emb_entry, current, dataset)
    if changed:
      folder = paths.checkpoints(workdir)
      message = f"the network in {folder} was trained on other inputs than this workdir's now: {'; '.join(changed)}"
      if not force:
        raise Mismatch(
            f"{message}. Train in another --workdir, or pass --force to set the old checkpoints aside "
            f"and train again ({_cmd('launch.train', workdir, ' --force')})"
        )
      aside = f"{folder}.{_file_safe(trained.get('inputs', {}).get('shape_embedding') or 'old')}.{int(time.time())}"
      if distributed.is_main():  # one process moves them (a shared workdir on several hosts)
        os.rename(folder, aside)
        if os.path.exists(paths.metrics(workdir)):
          os.rename(paths.metrics(workdir), os.path.join(aside, paths.METRICS))
      logging.warning("%s; --force: moved them to %s, training from scratch", message, aside)
  if trained is None or not has_checkpoints(workdir) or trained.get("inputs", {}).get("shape_embedding") != current:
    record(
        workdir,
        "checkpoints",
        entry(
            "launch.train",
            paths.CHECKPOINTS,
            config,
            TRAINING,
            inputs={"shape_embedding": current, "dataset": dataset},
            built_on={"shape_embedding": emb_entry},
        ),
        replace_damaged=True,
    )


def _changed_inputs(trained: dict, emb_entry: dict, current: str, dataset: str) -> list[str]:
  """What differs between the inputs a network was trained on and the workdir's now ([] when nothing)."""
  was, changed = trained.get("inputs", {}), []
  if was.get("shape_embedding") != current:
    made = trained.get("built_on", {}).get("shape_embedding", {}).get("settings", {})
    changed.append(
        f"shape embedding {was.get('shape_embedding')} -> {current} "
        f"({differences(made, emb_entry.get('settings', made))})"
    )
  if was.get("dataset") != dataset:
    changed.append(f"dataset {was.get('dataset')} -> {dataset}")
  return changed


def _file_safe(name: str) -> str:
  return "".join(c if c.isalnum() else "-" for c in name)[:40]


def check_network_inputs(workdir: str, fingerprint: str | None = None) -> None:
  """Before a trained network is used with the workdir's shape points (`jembed.load`: query, evaluate).

  Args:
    workdir: the run.
    fingerprint: of the shape embedding the caller read (default: read the file now). A reader that passes the
      embedding it holds checks that very content, even if another process replaces the file meanwhile.

  Raises:
    Mismatch: shape_embedding.npz is not the one the network was trained on.
  """
  try:
    recorded = load(workdir)
  except Damaged as e:
    raise _damaged_refusal(
        e,
        f"the network in {paths.checkpoints(workdir)} was trained on {paths.shape_embedding(workdir)}",
        f"retrain with {_cmd('launch.train', workdir, ' --force')}",
    ) from None
  trained = recorded.get("checkpoints")
  if not trained:
    return
  was = trained.get("inputs", {}).get("shape_embedding")
  now = records.file_fingerprint(workdir) if fingerprint is None else fingerprint
  if was == now:
    return
  made = trained.get("built_on", {}).get("shape_embedding", {}).get("settings", {})
  current = recorded.get("shape_embedding", {}).get("settings", made)
  raise Mismatch(
      f"{paths.shape_embedding(workdir)} ({now}) is not the shape embedding the network in "
      f"{paths.checkpoints(workdir)} was trained on ({was}; {differences(made, current)}): retrain with "
      f"{_cmd('launch.train', workdir, ' --force')}, or rerun launch.embed_shapes with the config it was "
      "trained on"
  )
