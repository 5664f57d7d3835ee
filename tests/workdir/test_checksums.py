"""Content checksums: bytes flipped at any offset of a sealed artifact are found and named; a damaged cache is made
again, a damaged provenance.json fails closed. Small stand-ins of each artifact (no stage is run here; the tiny run's
own artifacts are damaged in test_provenance.py)."""

import json
import os

import numpy as np
import pytest

from configs import tiny
from jembed.embedding import descriptors
from jembed.embedding import hog
from jembed.embedding import shape_embedding
from jembed.workdir import checksums
from jembed.workdir import files
from jembed.workdir import paths
from jembed.workdir import provenance
from jembed.workdir import records
from jembed.workdir import stage_checks


def flip(path, offset: int, count: int) -> None:
  """`count` bytes inverted in place at `offset` (negative: from the end); the file keeps its size and name."""
  with open(path, "r+b") as f:
    f.seek(offset, os.SEEK_SET if offset >= 0 else os.SEEK_END)
    at = f.tell()
    data = f.read(count)
    f.seek(at)
    f.write(bytes(b ^ 0xFF for b in data))


@pytest.mark.parametrize("offset", [0, 5000, -1])
def test_a_sealed_folder_names_the_file_whose_bytes_changed(tmp_path, offset):
  for name, size in (("a.bin", 10_000), ("sub/b.bin", 7_000), ("c.json", 40)):
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_bytes(np.random.default_rng(len(name)).bytes(size))
  assert not checksums.verify_folder(str(tmp_path), "remake it")  # not sealed yet: nothing to check against
  checksums.write_folder_digests(str(tmp_path))
  assert checksums.verify_folder(str(tmp_path), "remake it")
  flip(tmp_path / "sub/b.bin", offset, 1)
  with pytest.raises(checksums.Mismatch, match=r"sub/b.bin is damaged .*: remake it"):
    checksums.verify_folder(str(tmp_path), "remake it")
  (tmp_path / "sub/b.bin").unlink()
  with pytest.raises(checksums.Mismatch, match=r"sub/b.bin is missing"):
    checksums.verify_folder(str(tmp_path), "remake it")


def _recorded_workdir(tmp_path) -> str:
  """A workdir with a shape embedding and its record (as embed_shapes leaves it) and a fake checkpoint step."""
  workdir = str(tmp_path)
  emb = records.ShapeEmbedding(
      np.array(["a", "b", "c"]), np.array(["x", "x", "y"]), np.eye(3, dtype=np.float32), 0.1, np.zeros(2, np.float32)
  )
  emb.save(paths.shape_embedding(workdir))
  stage_checks.record_shape_embedding(tiny.get_config(), workdir, "listing", emb)
  stage_checks.check_training_inputs(tiny.get_config(), workdir, "dataset-1")
  os.makedirs(os.path.join(paths.checkpoints(workdir), "2"))
  return workdir


@pytest.mark.parametrize("offset", [30, 400, -60])
def test_three_flipped_bytes_in_provenance_fail_every_check_closed(tmp_path, offset):
  workdir = _recorded_workdir(tmp_path)
  stage_checks.check_network_inputs(workdir)  # intact: the network's embedding is the file's
  flip(paths.provenance(workdir), offset, 3)
  with pytest.raises(provenance.Damaged, match=r"provenance.json is damaged.*launch.train --workdir=.* --force"):
    stage_checks.check_network_inputs(workdir)  # query, evaluate
  with pytest.raises(provenance.Damaged, match="pass --force"):
    stage_checks.check_training_inputs(tiny.get_config(), workdir, "dataset-1")  # a resuming train
  with pytest.raises(provenance.Damaged, match="pass --force to replace the embedding"):
    stage_checks.check_shape_embedding_write(tiny.get_config(), workdir, "listing")  # embed_shapes, same settings
  with pytest.raises(provenance.Damaged):
    provenance.record(workdir, "shape_embedding", {})  # nothing silently rewrites it without the checkpoints record


def test_forcing_past_a_damaged_provenance_keeps_the_network_untrusted(tmp_path):
  workdir = _recorded_workdir(tmp_path)
  flip(paths.provenance(workdir), 100, 3)
  assert not stage_checks.check_shape_embedding_write(tiny.get_config(), workdir, "listing", force=True)
  emb = records.load_shape_embedding(workdir)
  stage_checks.record_shape_embedding(tiny.get_config(), workdir, "listing", emb)  # what embed_shapes --force does
  assert [n for n in os.listdir(workdir) if n.startswith("provenance.json.damaged.")]  # kept for inspection
  assert provenance.load(workdir)["checkpoints"]["inputs"]["shape_embedding"] == provenance.UNKNOWN
  with pytest.raises(provenance.Mismatch, match="not the shape embedding the network"):
    stage_checks.check_network_inputs(workdir)
  with pytest.raises(provenance.Mismatch, match="trained on other inputs"):
    stage_checks.check_training_inputs(tiny.get_config(), workdir, "dataset-1")


def test_a_record_from_before_checksums_is_read(tmp_path):
  record = {"version": 1, "shape_embedding": {"fingerprint": "f"}}
  files.write_json(paths.provenance(str(tmp_path)), record)
  assert provenance.load(str(tmp_path)) == record


def _store(tmp_path, rows: int = 3) -> tuple[str, dict]:
  """A finished LFD store of `rows` random descriptor rows, as compute_descriptors leaves it."""
  workdir = str(tmp_path)
  key = {"ids": [f"s{i}" for i in range(rows)], "version": 3}
  features, progress = descriptors.open_store(workdir, key, rows)
  values = np.random.default_rng(0).random((rows, hog.LFD_DIM), np.float32)
  for lo in range(0, rows, 2):  # two batches
    features[lo : lo + 2] = values[lo : lo + 2]
    descriptors.record_rows(progress, lo, values[lo : lo + 2])
  features.flush()
  progress.update(n_processed=rows, ids=key["ids"], categories=["x"] * rows, meshes=["m"] * rows)
  files.write_json(paths.lfd(workdir, paths.DESCRIPTOR_PROGRESS), progress)
  return workdir, key


@pytest.mark.parametrize("offset", [128 + 4 * 1000, 128 + 4 * (2 * hog.LFD_DIM + 7), -64])
def test_64_flipped_bytes_in_the_descriptors_are_found_and_the_cache_starts_over(tmp_path, offset):
  workdir, key = _store(tmp_path)
  assert descriptors.open_store(workdir, key, 3)[1]["n_processed"] == 3  # intact: reused
  flip(paths.lfd(workdir, paths.DESCRIPTORS), offset, 64)
  with pytest.raises(files.DamagedFile, match=r"rows .* fail their SHA-256.*launch.embed_shapes"):
    descriptors.load_descriptors(workdir)
  assert descriptors.open_store(workdir, key, 3)[1]["n_processed"] == 0  # compute_descriptors: made again


def test_flipped_bytes_in_cached_distances_are_computed_again(tmp_path):
  desc = descriptors.Descriptors(
      ids=["a", "b", "c", "d"],
      categories=["x"] * 4,
      features=np.eye(4, 16, dtype=np.float32) * [[1], [2], [3], [4]],
      skipped=[],
  )
  os.makedirs(paths.lfd(str(tmp_path)))  # where the descriptors are
  good = np.array(shape_embedding.cached_distances(desc, str(tmp_path)))
  path = paths.lfd(str(tmp_path), paths.DISTANCES)
  with open(paths.lfd(str(tmp_path), paths.DISTANCES_META)) as f:
    assert json.load(f)["sha256"] == checksums.digest_file(path)
  flip(path, -20, 4)  # inside the last row's values: still a well-formed .npy
  assert not np.array_equal(np.load(path), good)
  np.testing.assert_array_equal(shape_embedding.cached_distances(desc, str(tmp_path)), good)
