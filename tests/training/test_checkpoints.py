"""Checkpoints: a damaged newest step is named and skipped, the newest intact one restored, nothing deleted."""

import pathlib

import jax
import numpy as np
import pytest

from jembed.training import checkpoints


def _state(step):
  return {"params": {"w": np.full((4, 3), step, np.float32)}, "opt_state": {"m": np.arange(3, dtype=np.float32)}}


def _save_steps(workdir, steps):
  ckpts = checkpoints.Checkpoints(str(workdir))
  for step in steps:
    ckpts.save(step, _state(step), {"model": {}})
  ckpts.close()


def _truncate(workdir, step):
  """What a full disk or a cut copy leaves: the step's array data files cut to a few bytes."""
  data = [
      p
      for p in (pathlib.Path(workdir) / "checkpoints" / str(step) / "params").rglob("*")
      if p.is_file() and p.parent.name == "d"
  ]
  assert data
  for path in data:
    path.write_bytes(path.read_bytes()[:7])


def _restore(ckpts):
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = checkpoints.abstract_like(_state(0), sharding)
  return lambda step: ckpts.restore(step, target)


def test_damaged_newest_step_is_skipped_and_set_aside(tmp_path):
  _save_steps(tmp_path, [1, 2, 3])
  _truncate(tmp_path, 3)
  reader = checkpoints.Checkpoints(str(tmp_path), read_only=True)
  step, (state, meta) = reader.newest_intact(_restore(reader))
  reader.close()
  assert step == 2 and meta["step"] == 2
  np.testing.assert_array_equal(state["params"]["w"], 2.0)
  assert (tmp_path / "checkpoints" / "3").is_dir()  # a reader changes nothing
  writer = checkpoints.Checkpoints(str(tmp_path))
  step, _ = writer.newest_intact(_restore(writer))
  assert step == 2 and writer.all_steps() == [1, 2]  # a resuming run will write step 3 again...
  assert (tmp_path / "damaged_checkpoints" / "3" / "params").is_dir()  # ...and the damaged one is kept aside
  writer.save(3, _state(33), {"model": {}})
  writer.close()
  reader = checkpoints.Checkpoints(str(tmp_path), read_only=True)
  step, (state, _) = reader.newest_intact(_restore(reader))
  assert step == 3 and float(state["params"]["w"][0, 0]) == 33.0


def test_every_step_damaged_is_one_error_listing_them(tmp_path):
  _save_steps(tmp_path, [1, 2])
  _truncate(tmp_path, 1)
  _truncate(tmp_path, 2)
  reader = checkpoints.Checkpoints(str(tmp_path), read_only=True)
  with pytest.raises(ValueError, match=r"can be restored \(step 2: .*; step 1: .*\)"):
    reader.newest_intact(_restore(reader))


def test_an_incompatible_checkpoint_is_an_error_not_skipped(tmp_path):
  _save_steps(tmp_path, [1, 2])
  reader = checkpoints.Checkpoints(str(tmp_path), read_only=True)

  def restore(step):
    raise checkpoints.Incompatible(f"step {step} is of another network")

  with pytest.raises(checkpoints.Incompatible, match="step 2"):
    reader.newest_intact(restore)


def test_no_checkpoint_names_the_launcher(tmp_path):
  reader = checkpoints.Checkpoints(str(tmp_path), read_only=True)
  with pytest.raises(FileNotFoundError, match="launch/train.py"):
    reader.newest_intact(lambda step: step)
