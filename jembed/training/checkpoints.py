"""Checkpoints of a training run, in `workdir/checkpoints/<step>/` (orbax `CheckpointManager`, kept in this one module).

Each checkpoint has three items, so a reader can take only what it needs (`jembed.load` reads `meta` and `params`):
  params     the network's variables                          (`ocp.args.StandardSave`)
  opt_state  the optimizer's state                            (`ocp.args.StandardSave`)
  meta       JSON: the step, the input iterator's position (so a resumed run sees the same data), the model's
             `ModelSpec` and the dataset's category names
Saves are asynchronous (orbax copies the arrays to the host before `save` returns, so the caller may donate them).

Each finished step is sealed with `<step>/digests.json`, the SHA-256 of every file orbax wrote (by process 0, once
the save is on disk: at the next save, `wait` or `close`). Every restore first checks the step against it, so a
checkpoint with flipped bits is damaged like a truncated one: `newest_intact` skips it (naming it) for the one before,
and a resumed run sets it aside. A step without digests (written before they existed, or by a run killed between the
save and the seal) is read unchecked.
"""

import os
from typing import Any, Callable, TypeVar

from absl import logging
import jax
import orbax.checkpoint as ocp

from jembed.utils import distributed
from jembed.workdir import checksums
from jembed.workdir import paths

T = TypeVar("T")

ITEMS = ("params", "opt_state", "meta")


def directory(workdir: str) -> str:
  return paths.checkpoints(os.path.abspath(os.path.expanduser(workdir)))


class Incompatible(ValueError):
  """A checkpoint that reads fine but is of another network or run: an error for the user, never skipped over."""


class Checkpoints:
  """The run's checkpoint manager: save every so often, keep the newest `max_to_keep`, restore the latest."""

  def __init__(self, workdir: str, *, max_to_keep: int | None = None, read_only: bool = False):
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep or None, create=not read_only, read_only=read_only)
    self._read_only = read_only
    self._manager = ocp.CheckpointManager(directory(workdir), options=options, item_names=ITEMS)
    self._verified: set[int] = set()

  @property
  def directory(self) -> str:
    return str(self._manager.directory)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Saves `state` ({'params', 'opt_state', ...}) and the JSON-able `meta` as checkpoint `step`."""
    self._seal()  # the previous save is finished by now (orbax waits for it anyway before starting this one)
    self._manager.save(
        step,
        args=ocp.args.Composite(
            params=ocp.args.StandardSave(state["params"]),
            opt_state=ocp.args.StandardSave(state["opt_state"]),
            meta=ocp.args.JsonSave(dict(meta, step=int(step))),
        ),
        force=True,
    )

  def restore_meta(self, step: int | None = None) -> dict[str, Any]:
    step = self._checked_step(step)
    return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore(self, step: int | None, abstract_state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Checkpoint `step` (None: the latest) restored into the shapes and shardings of `abstract_state`.

    Args:
      step: which checkpoint.
      abstract_state: {'params', 'opt_state'} of `jax.ShapeDtypeStruct`s (with shardings), e.g. from `jax.eval_shape`.

    Returns:
      ({'params', 'opt_state'} of arrays, meta dict).
    """
    step = self._checked_step(step)
    got = self._manager.restore(
        step,
        args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract_state["params"]),
            opt_state=ocp.args.StandardRestore(abstract_state["opt_state"]),
            meta=ocp.args.JsonRestore(),
        ),
    )
    return {"params": got["params"], "opt_state": got["opt_state"]}, got["meta"]

  def restore_params(self, step: int | None, abstract_params: Any) -> Any:
    """Only the network's variables of checkpoint `step` (None: the latest), shaped like `abstract_params`."""
    step = self._checked_step(step)
    return self._manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract_params)))[
        "params"
    ]

  def newest_intact(self, restore: Callable[[int], T], steps: list[int] | None = None) -> tuple[int, T]:
    """`restore(step)` of the newest checkpoint that restores whole, logging each newer one that is damaged.

    A checkpoint whose files were truncated or lost (a disk filled up, a copy was cut short) fails somewhere inside
    orbax or tensorstore, with whatever exception their storage layer raises: each such step is skipped with one
    warning naming it and the first line of the reason. `Incompatible` (the checkpoint is of another network) is
    not damage and propagates at once.

    Args:
      restore: reads checkpoint `step` completely and returns what the caller needs.
      steps: the candidates (default: all, newest first).

    Raises:
      FileNotFoundError: there is no checkpoint.
      ValueError: every checkpoint is damaged (the message lists each step and why).
    """
    steps = sorted(self.all_steps() if steps is None else steps, reverse=True)
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {self.directory}: run launch/train.py with this workdir")
    damaged = []
    for step in steps:
      try:
        result = restore(step)
      except Incompatible:
        raise
      except Exception as e:  # pylint: disable=broad-except  (orbax/tensorstore raise many types for bad files)
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:400]
        logging.warning(
            "checkpoint step %d in %s is damaged (%s: %s); trying the one before",
            step,
            self.directory,
            type(e).__name__,
            reason,
        )
        damaged.append(f"step {step}: {type(e).__name__}: {reason}")
        continue
      if damaged:
        logging.warning(
            "using checkpoint step %d; skipped %d damaged newer one(s): %s", step, len(damaged), "; ".join(damaged)
        )
        if not self._read_only:  # a resumed run will save those steps again: move the damaged ones aside
          self._set_aside([int(d.split(":")[0].split()[1]) for d in damaged])
      return step, result
    raise ValueError(
        f"no checkpoint in {self.directory} can be restored ({'; '.join(damaged)}): train again with "
        f"`python -m launch.train --workdir={os.path.dirname(self.directory)} --force`, or use a new workdir"
    )

  def _set_aside(self, steps: list[int]) -> None:
    """Moves damaged step folders to `workdir/damaged_checkpoints/<step>` (kept for inspection, never deleted)."""
    aside = os.path.join(os.path.dirname(self.directory), "damaged_checkpoints")
    os.makedirs(aside, exist_ok=True)
    for step in steps:
      target = os.path.join(aside, str(step))
      if os.path.exists(target):
        target = f"{target}.{len(os.listdir(aside))}"
      os.replace(os.path.join(self.directory, str(step)), target)
      logging.warning("moved damaged checkpoint step %d to %s", step, target)
    self._manager.reload()

  def wait(self) -> None:
    """Blocks until the asynchronous saves are on disk (and sealed)."""
    self._seal()

  def close(self) -> None:
    self._seal()
    self._manager.close()

  def _seal(self) -> None:
    """Writes `digests.json` into every finished step that has none (process 0; module docstring)."""
    self._manager.wait_until_finished()
    if self._read_only or not distributed.is_main():
      return
    for step in self._manager.all_steps():
      folder = os.path.join(self.directory, str(step))
      if os.path.isdir(folder) and not os.path.exists(os.path.join(folder, checksums.DIGESTS)):
        checksums.write_folder_digests(folder)
        self._verified.add(step)

  def _checked_step(self, step: int | None) -> int:
    """`_step(step)`, its files checked against its digests (once per step and object).

    Raises:
      checksums.Mismatch: the step's files are not those it was sealed with (names the file and `launch.train`).
    """
    step = self._step(step)
    if step not in self._verified:
      remake = f"train again with `python -m launch.train --workdir={os.path.dirname(self.directory)}`"
      checksums.verify_folder(os.path.join(self.directory, str(step)), remake)
      self._verified.add(step)
    return step

  def _step(self, step: int | None) -> int:
    step = self._manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self._manager.directory}: run launch/train.py with this workdir")
    return step


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
  """ShapeDtypeStructs of `tree` (arrays or ShapeDtypeStructs) placed with `sharding`: the restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
