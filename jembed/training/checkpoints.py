"""Checkpoints of a training run, in `workdir/checkpoints/<step>/` (orbax `CheckpointManager`, kept in this one module).

Each checkpoint has three items, so a reader can take only what it needs (`jembed.load` reads `meta` and `params`):
  params     the network's variables                          (`ocp.args.StandardSave`)
  opt_state  the optimizer's state                            (`ocp.args.StandardSave`)
  meta       JSON: the step, the input iterator's position (so a resumed run sees the same data), the model's
             `ModelSpec` and the dataset's category names
Saves are asynchronous (orbax copies the arrays to the host before `save` returns, so the caller may donate them).
"""

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

ITEMS = ("params", "opt_state", "meta")


def directory(workdir: str) -> str:
  return os.path.join(os.path.abspath(os.path.expanduser(workdir)), "checkpoints")


class Checkpoints:
  """The run's checkpoint manager: save every so often, keep the newest `max_to_keep`, restore the latest."""

  def __init__(self, workdir: str, *, max_to_keep: int | None = None, read_only: bool = False):
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep or None, create=not read_only,
                                           read_only=read_only)
    self._manager = ocp.CheckpointManager(directory(workdir), options=options, item_names=ITEMS)

  @property
  def directory(self) -> str:
    return str(self._manager.directory)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Saves `state` ({'params', 'opt_state', ...}) and the JSON-able `meta` as checkpoint `step`."""
    self._manager.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(state["params"]), opt_state=ocp.args.StandardSave(state["opt_state"]),
        meta=ocp.args.JsonSave(dict(meta, step=int(step)))), force=True)

  def restore_meta(self, step: int | None = None) -> dict[str, Any]:
    step = self._step(step)
    return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore(self, step: int | None, abstract_state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Checkpoint `step` (None: the latest) restored into the shapes and shardings of `abstract_state`.

    Args:
      step: which checkpoint.
      abstract_state: {'params', 'opt_state'} of `jax.ShapeDtypeStruct`s (with shardings), e.g. from `jax.eval_shape`.

    Returns:
      ({'params', 'opt_state'} of arrays, meta dict).
    """
    step = self._step(step)
    got = self._manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_state["params"]),
        opt_state=ocp.args.StandardRestore(abstract_state["opt_state"]), meta=ocp.args.JsonRestore()))
    return {"params": got["params"], "opt_state": got["opt_state"]}, got["meta"]

  def restore_params(self, step: int | None, abstract_params: Any) -> Any:
    """Only the network's variables of checkpoint `step` (None: the latest), shaped like `abstract_params`."""
    step = self._step(step)
    return self._manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_params)))["params"]

  def wait(self) -> None:
    """Blocks until the asynchronous saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def _step(self, step: int | None) -> int:
    step = self._manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self._manager.directory}: run launch/train.py with this workdir")
    return step


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
  """ShapeDtypeStructs of `tree` (arrays or ShapeDtypeStructs) placed with `sharding`: the restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
