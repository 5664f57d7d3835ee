"""Checkpoints: a damaged newest step is named and skipped, the newest intact one restored, nothing deleted."""

import json
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


def _flip(path: pathlib.Path, offset: int, count: int) -> None:
  """Bits flipped in place (the file keeps its size: what a bad disk or a bad copy does, unlike truncation)."""
  data = bytearray(path.read_bytes())
  offset %= max(1, len(data) - count)
  data[offset : offset + count] = bytes(b ^ 0xFF for b in data[offset : offset + count])
  path.write_bytes(bytes(data))


def test_steps_are_sealed_with_the_digests_of_their_files(tmp_path):
  _save_steps(tmp_path, [1, 2])
  for step in (1, 2):
    folder = tmp_path / "checkpoints" / str(step)
    digests = json.loads((folder / "digests.json").read_text())
    listed = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "digests.json"}
    assert set(digests) == listed and any(name.startswith("params/") for name in listed)


@pytest.mark.parametrize("item,offset", [("params", 40), ("params", -9), ("opt_state", 3), ("meta", 1)])
def test_flipped_bytes_in_a_step_are_found_and_the_step_before_is_used(tmp_path, item, offset):
  _save_steps(tmp_path, [1, 2])
  biggest = max(
      (p for p in (tmp_path / "checkpoints" / "2" / item).rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
  )
  _flip(biggest, offset, 8)
  reader = checkpoints.Checkpoints(str(tmp_path), read_only=True)
  step, (state, _) = reader.newest_intact(_restore(reader))
  assert step == 1
  np.testing.assert_array_equal(state["params"]["w"], 1.0)
  with pytest.raises(ValueError, match=r"checkpoints/2/.* is damaged .*: train again with `python -m launch.train"):
    reader.restore_meta(2)


def test_a_step_without_digests_is_read_unchecked(tmp_path):
  """Checkpoints written before the digests existed (or killed between save and seal) still restore."""
  _save_steps(tmp_path, [1, 2])
  (tmp_path / "checkpoints" / "2" / "digests.json").unlink()
  reader = checkpoints.Checkpoints(str(tmp_path), read_only=True)
  step, (state, _) = reader.newest_intact(_restore(reader))
  assert step == 2 and float(state["params"]["w"][0, 0]) == 2.0
