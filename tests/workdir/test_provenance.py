"""A workdir that cannot lie: each artifact's record (provenance.json) and every stage's check against it, and damaged
caches and artifacts, by fault injection into copies of the session's tiny run (no stage is recomputed here)."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from configs import tiny
from jembed.api import embed
from jembed.data import naming
from jembed.data import pipeline
from jembed.embedding import descriptors
from jembed.embedding import shape_embedding
from jembed.evaluation import evaluate
from jembed.evaluation import image_sets
from jembed.training import train
from jembed.workdir import files
from jembed.workdir import paths
from jembed.workdir import provenance
from jembed.workdir import records
from jembed.workdir import stage_checks


@pytest.fixture
def run(tiny_run, tmp_path) -> str:
  """A private copy of the trained tiny run (tests damage it)."""
  workdir, _, _ = tiny_run
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("queries", "dataset_cache"))
  return str(copy)


def _replace_embedding(workdir: str, scale: float = 2.0) -> None:
  """What another embed_shapes run (or a copied file) does to the network's targets: other points, same ids."""
  emb = records.load_shape_embedding(workdir)
  records.ShapeEmbedding(emb.ids, emb.categories, emb.points * scale, emb.stress, emb.stress_curve).save(
      paths.shape_embedding(workdir)
  )


def test_the_record_pairs_the_network_with_its_embedding(run):
  record = provenance.load(run)
  assert record["checkpoints"]["inputs"]["shape_embedding"] == record["shape_embedding"]["fingerprint"]
  assert record["shape_embedding"]["fingerprint"] == records.file_fingerprint(run)
  assert record["checkpoints"]["inputs"]["dataset"] == naming.config_name(tiny.get_config())
  assert record["shape_embedding"]["settings"]["mds.dim"] == 8


def test_embed_shapes_with_another_config_refuses_to_replace_a_trained_embedding(run):
  path = paths.shape_embedding(run)
  before, lfd_before = open(path, "rb").read(), os.path.getmtime(paths.lfd(run, "progress.json"))
  with pytest.raises(provenance.Mismatch, match=r"mds\.dim 8 -> 4.*--force") as error:
    shape_embedding.embed_shapes(tiny.get_config("mds.dim=4"), run)
  assert paths.checkpoints(run) in str(error.value) and "launch.train" in str(error.value)
  assert open(path, "rb").read() == before  # refused before any work: the embedding and the LFD cache untouched
  assert os.path.getmtime(paths.lfd(run, "progress.json")) == lfd_before


def test_embed_shapes_with_the_same_config_reuses_the_embedding(run):
  mtime = os.path.getmtime(paths.shape_embedding(run))
  emb = shape_embedding.embed_shapes(tiny.get_config(), run)
  assert os.path.getmtime(paths.shape_embedding(run)) == mtime
  assert emb.fingerprint() == provenance.load(run)["shape_embedding"]["fingerprint"]


def test_query_and_evaluate_notice_an_embedding_the_network_was_not_trained_on(run):
  _replace_embedding(run)
  with pytest.raises(provenance.Mismatch, match="not the shape embedding the network .* was trained on") as error:
    embed.load(run)  # what launch.query and launch.evaluate load
  assert "launch.train" in str(error.value) and paths.shape_embedding(run) in str(error.value)
  with pytest.raises(provenance.Mismatch):
    evaluate.evaluate(tiny.get_config(), run)


def test_train_refuses_checkpoints_of_another_embedding_and_force_sets_them_aside(run):
  config = tiny.get_config()
  _replace_embedding(run)
  steps = sorted(os.listdir(paths.checkpoints(run)))
  with pytest.raises(provenance.Mismatch, match="trained on other inputs.*--force"):
    train.train_and_evaluate(config, run)
  assert sorted(os.listdir(paths.checkpoints(run))) == steps
  stage_checks.check_training_inputs(config, run, naming.config_name(config), force=True)
  aside = [d for d in os.listdir(run) if d.startswith("checkpoints.")]
  assert len(aside) == 1 and not os.path.exists(paths.checkpoints(run))
  assert set(steps) <= set(os.listdir(os.path.join(run, aside[0])))  # nothing a user made is lost
  assert provenance.load(run)["checkpoints"]["inputs"]["shape_embedding"] == records.file_fingerprint(run)


def test_into_the_same_workdir_is_refused_and_leaves_it_unchanged(run, tmp_path):
  progress = paths.lfd(run, "progress.json")
  mtime = os.path.getmtime(progress)
  link = tmp_path / "same"
  link.symlink_to(run)
  for into in (run, str(link)):
    with pytest.raises(ValueError, match="--into must name another workdir"):
      shape_embedding.add_shapes(tiny.get_config(), run, into)
  assert os.path.getmtime(progress) == mtime


def test_into_a_run_with_other_lfd_settings_is_refused(run, tmp_path):
  with pytest.raises(provenance.Mismatch, match=r"render\.size 64 -> 32"):
    shape_embedding.add_shapes(tiny.get_config("render.size=32"), str(tmp_path / "new"), run)


def test_a_dataset_of_another_config_or_none_says_which_launcher_to_run(run, tmp_path):
  with pytest.raises(FileNotFoundError, match=r"data\.images_per_shape 2 -> 3.*launch\.build_dataset"):
    pipeline.require_dataset(tiny.get_config("data.images_per_shape=3"), run)
  empty = tmp_path / "fresh"
  empty.mkdir()
  shutil.copy(paths.shape_embedding(run), empty)
  with pytest.raises(FileNotFoundError, match="launch.build_dataset") as error:
    train.train_and_evaluate(tiny.get_config(), str(empty))
  assert "metadata.json" not in str(error.value)


def test_a_damaged_shape_embedding_is_named_without_allow_pickle(run):
  path = paths.shape_embedding(run)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)
  with pytest.raises(files.DamagedFile, match="launch.embed_shapes") as error:
    embed.load(run)
  assert path in str(error.value) and "pickle" not in str(error.value)
  np.savez(path, ids=np.array([{"a": 1}], dtype=object))  # another program's file: Python objects inside
  with pytest.raises(files.DamagedFile) as error:
    records.ShapeEmbedding.load(path)
  assert path in str(error.value) and "allow_pickle" not in str(error.value)


def test_a_damaged_dataset_shard_is_named_before_training(run):
  dataset = naming.dataset_dir(tiny.get_config(), run)
  assert pipeline.damaged_shard(dataset) is None
  shard = os.path.join(dataset, f"{naming.NAME}-train.array_record-00000-of-00001")
  with open(shard, "r+b") as f:
    f.truncate(os.path.getsize(shard) - 1000)
  with pytest.raises(files.DamagedFile, match="launch.build_dataset") as error:
    train.train_and_evaluate(tiny.get_config(), run)
  assert shard in str(error.value)


@pytest.mark.slow
def test_build_dataset_rebuilds_a_damaged_shard(run):
  from jembed.data import build  # pylint: disable=g-import-not-at-top

  config = tiny.get_config()
  dataset = naming.dataset_dir(config, run)
  shard = os.path.join(dataset, f"{naming.NAME}-train.array_record-00000-of-00001")
  with open(shard, "r+b") as f:
    f.truncate(1000)
  result = build.build_dataset(config, run, workers=1)
  assert not result.reused and pipeline.damaged_shard(dataset) is None


def test_a_damaged_eval_cache_is_made_again(run):
  config = tiny.get_config()
  emb = records.load_shape_embedding(run)
  path = paths.eval_sets(run, "synthetic.npz")
  before = files.load_npz(path)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 3)
  sets = image_sets.synthetic_sets(config, run, emb.ids, emb.categories)
  assert [s.name for s in sets] == list(image_sets.SYNTHETIC)
  for s in sets:  # rendered again from the same seeds: the very images of the cache
    np.testing.assert_array_equal(s.images, before[s.name])
  files.load_npz(path)  # and the cache is whole again


def test_a_damaged_lfd_cache_starts_over_instead_of_failing(run):
  progress = paths.lfd(run, "progress.json")
  with open(progress) as f:
    fingerprint = json.load(f)["fingerprint"]
  with open(progress, "w") as f:
    f.write('{"fingerprint": {"ids": ["cut off')
  features, state = descriptors.open_store(run, fingerprint, len(fingerprint["ids"]))
  assert state["n_processed"] == 0 and features.shape[0] == len(fingerprint["ids"])
  with pytest.raises(files.DamagedFile, match="launch.embed_shapes"):
    os.remove(paths.lfd(run, "descriptors.npy"))
    descriptors.load_descriptors(run)


def test_damaged_cached_distances_are_computed_again(run):
  desc = descriptors.load_descriptors(run)
  good = np.array(shape_embedding.cached_distances(desc, run))
  with open(paths.lfd(run, "distances.npy"), "r+b") as f:
    f.truncate(200)
  np.testing.assert_array_equal(shape_embedding.cached_distances(desc, run), good)


def _flip(path: str, offset: int, count: int) -> None:
  """`count` bytes inverted in place at `offset` (the file keeps its size)."""
  with open(path, "r+b") as f:
    f.seek(offset)
    data = f.read(count)
    f.seek(offset)
    f.write(bytes(b ^ 0xFF for b in data))


def test_flipped_provenance_fails_closed_for_every_stage(run):
  _flip(paths.provenance(run), os.path.getsize(paths.provenance(run)) // 2, 3)
  before = open(paths.shape_embedding(run), "rb").read()
  with pytest.raises(provenance.Damaged, match="pass --force"):
    shape_embedding.embed_shapes(tiny.get_config("mds.dim=4"), run)  # not replaced, checkpoints record kept
  assert open(paths.shape_embedding(run), "rb").read() == before
  with pytest.raises(provenance.Damaged, match=r"launch.train --workdir=.* --force"):
    embed.load(run)
  with pytest.raises(provenance.Damaged):
    train.train_and_evaluate(tiny.get_config(), run)


def test_flipped_bytes_inside_a_shard_are_named_before_training(run):
  dataset = naming.dataset_dir(tiny.get_config(), run)
  shard = os.path.join(dataset, f"{naming.NAME}-train.array_record-00000-of-00001")
  _flip(shard, os.path.getsize(shard) // 2, 16)  # inside the records: the footers still read fine
  assert shard in pipeline.damaged_shard(dataset)
  with pytest.raises(files.DamagedFile, match="launch.build_dataset") as error:
    train.train_and_evaluate(tiny.get_config(), run)
  assert shard in str(error.value)


def test_flipped_params_of_the_newest_checkpoint_fall_back_to_the_one_before(run, caplog):
  newest = max(int(s) for s in os.listdir(paths.checkpoints(run)) if s.isdigit())
  data = [
      os.path.join(root, name)
      for root, _, names in os.walk(os.path.join(paths.checkpoints(run), str(newest), "params"))
      for name in names
  ]
  _flip(max(data, key=os.path.getsize), 64, 8)
  model = embed.load(run)  # what query and evaluate load
  assert model.step < newest and all(bool(np.isfinite(x).all()) for x in jax.tree.leaves(model.params.variables))
  assert f"checkpoint step {newest}" in caplog.text and "launch.train" in caplog.text


def test_flipped_descriptors_are_computed_again_not_reused(run):
  recorded = provenance.load(run)["shape_embedding"]["fingerprint"]
  os.remove(paths.shape_embedding(run))  # so embed_shapes goes to the descriptors instead of reusing the embedding
  _flip(paths.lfd(run, paths.DESCRIPTORS), 128 + 4 * 5000, 64)
  emb = shape_embedding.embed_shapes(tiny.get_config(), run)
  assert emb.fingerprint() == recorded  # the very same points
