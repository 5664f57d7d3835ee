"""The checks of every stage against `workdir/provenance.json` (`provenance`): before the shape side replaces an
embedding, before training resumes, and before a trained network is loaded. Each refusal names both sides and the
launcher to run; a damaged record fails closed (see `provenance`'s docstring for the rules)."""

import os
import time

from absl import logging
import ml_collections

from jembed.utils import distributed
from jembed.workdir import paths
from jembed.workdir import provenance
from jembed.workdir import records


def _damaged_refusal(error: provenance.Damaged, what: str, force_does: str) -> provenance.Damaged:
  """The one line of a check that fails closed on a damaged record."""
  return provenance.Damaged(f"{error}: it cannot tell whether {what}, so it refuses; {force_does}")


def _load_unless_trained(workdir: str, force: bool, what: str, force_does: str) -> dict | None:
  """The record; None when it is damaged but nothing was trained on the workdir yet (or `force`): the caller starts
  a new one.

  Raises:
    provenance.Damaged: it is damaged and checkpoints exist (the refusal of `_damaged_refusal(what, force_does)`),
      unless `force`.
  """
  try:
    return provenance.load(workdir)
  except provenance.Damaged as e:
    if provenance.has_checkpoints(workdir) and not force:
      raise _damaged_refusal(e, what, force_does) from None
    logging.warning("%s; starting a new record%s", e, " (--force)" if force else "")
    return None


def _cmd(launcher: str, workdir: str, extra: str = "") -> str:
  return f"`python -m {launcher} --workdir={workdir}{extra}`"


def check_shape_embedding_write(
    config: ml_collections.ConfigDict, workdir: str, listing: str, force: bool = False
) -> bool:
  """Before the shape side runs: True when `workdir/shape_embedding.npz` is already this config's (reuse it).

  A damaged file made with these settings is made again (the same settings give the same points); one a network was
  trained on is replaced only with `force` when the settings differ, or when the record is damaged (fail closed).

  Raises:
    provenance.Mismatch: the embedding there was made with other settings or shapes and a network was trained on it
      (unless `force`, which replaces it with a warning).
    provenance.Damaged: provenance.json is damaged and checkpoints exist (unless `force`).
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
  new = provenance.entry(
      "launch.embed_shapes", paths.SHAPE_EMBEDDING, config, provenance.SHAPE_SIDE, inputs={"shapes": listing}
  )
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
      provenance.differences(old.get("settings", {}), new["settings"])
      if old.get("config") != new["config"]
      else "the shapes listed changed"
      if old.get("inputs") != new["inputs"]
      else "the file is not the one recorded"
  )
  trained = recorded.get("checkpoints", {}).get("inputs", {}).get("shape_embedding")
  if provenance.has_checkpoints(workdir) and trained in (current, old.get("fingerprint")):
    message = (
        f"{path} was made with other settings than this config ({why}) and the network in "
        f"{paths.checkpoints(workdir)} was trained on it"
    )
    if not force:
      raise provenance.Mismatch(
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
  provenance.record(
      workdir,
      "shape_embedding",
      provenance.entry(
          "launch.embed_shapes",
          paths.SHAPE_EMBEDDING,
          config,
          provenance.SHAPE_SIDE,
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
    base = provenance.load(base_workdir).get("shape_embedding")
  except provenance.Damaged as e:
    raise _damaged_refusal(
        e, "its descriptors were made with this config's LFD settings", "use another --into"
    ) from None
  if base is None:
    return
  views = [f for f in provenance.SHAPE_SIDE if f.startswith(("render.", "lfd."))]
  old = {k: v for k, v in base.get("settings", {}).items() if k in views}
  new = provenance.settings(config, views)
  if old != new:
    raise provenance.Mismatch(
        f"--into={base_workdir}: its descriptors were made with other LFD settings than this config "
        f"({provenance.differences(old, new)}): use its settings for the new shapes"
    )


def check_training_inputs(config: ml_collections.ConfigDict, workdir: str, dataset: str, force: bool = False) -> None:
  """Before training: checkpoints already there must have been trained on this embedding and dataset; records them.

  Raises:
    provenance.Mismatch: they were trained on another shape embedding or dataset, or provenance.json is damaged so
      that cannot be told (unless `force`: the old checkpoints and metrics are then moved to
      `checkpoints.<old fingerprint>/`, nothing is deleted, and training starts over).
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
    recorded = provenance.set_aside(workdir)
  trained = recorded.get("checkpoints")
  emb_entry = recorded.get("shape_embedding", {})
  if trained and provenance.has_checkpoints(workdir):
    changed = _changed_inputs(trained, emb_entry, current, dataset)
    if changed:
      folder = paths.checkpoints(workdir)
      message = f"the network in {folder} was trained on other inputs than this workdir's now: {'; '.join(changed)}"
      if not force:
        raise provenance.Mismatch(
            f"{message}. Train in another --workdir, or pass --force to set the old checkpoints aside "
            f"and train again ({_cmd('launch.train', workdir, ' --force')})"
        )
      aside = f"{folder}.{_file_safe(trained.get('inputs', {}).get('shape_embedding') or 'old')}.{int(time.time())}"
      if distributed.is_main():  # one process moves them (a shared workdir on several hosts)
        os.rename(folder, aside)
        if os.path.exists(paths.metrics(workdir)):
          os.rename(paths.metrics(workdir), os.path.join(aside, paths.METRICS))
      logging.warning("%s; --force: moved them to %s, training from scratch", message, aside)
  if (
      trained is None
      or not provenance.has_checkpoints(workdir)
      or trained.get("inputs", {}).get("shape_embedding") != current
  ):
    provenance.record(
        workdir,
        "checkpoints",
        provenance.entry(
            "launch.train",
            paths.CHECKPOINTS,
            config,
            provenance.TRAINING,
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
        f"({provenance.differences(made, emb_entry.get('settings', made))})"
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
    provenance.Mismatch: shape_embedding.npz is not the one the network was trained on.
  """
  try:
    recorded = provenance.load(workdir)
  except provenance.Damaged as e:
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
  raise provenance.Mismatch(
      f"{paths.shape_embedding(workdir)} ({now}) is not the shape embedding the network in "
      f"{paths.checkpoints(workdir)} was trained on ({was}; {provenance.differences(made, current)}): retrain with "
      f"{_cmd('launch.train', workdir, ' --force')}, or rerun launch.embed_shapes with the config it was "
      "trained on"
  )
