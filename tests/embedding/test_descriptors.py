"""LFD-HoG descriptors of a collection: streamed in batches, cached in the workdir, resumable after a kill."""

import json

import numpy as np
import pytest

from configs import tiny
from jembed.embedding import descriptors
from jembed.embedding import hog
from jembed.embedding import hog_input
from jembed.render import backend
from jembed.shapes import sources


class Killed(Exception):
  pass


def _config(limit=2):
  config = tiny.get_config()
  config.shapes.limit = limit  # 6 categories x 2 = 12 shapes, 3 batches of 4.
  return config


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
  config = _config()
  full = descriptors.compute_descriptors(config, str(tmp_path / "full"))
  assert len(full.ids) == 12 and full.features.shape == (12, hog.LFD_DIM)
  assert full.ids == sorted(full.ids) and not full.skipped

  def kill_after_first(n_processed):
    raise Killed(n_processed)

  with pytest.raises(Killed):
    descriptors.compute_descriptors(config, str(tmp_path / "killed"), on_batch=kill_after_first)
  progress = json.loads((tmp_path / "killed/lfd/progress.json").read_text())
  assert progress["n_processed"] == 4 and len(progress["ids"]) == 4
  seen = []
  resumed = descriptors.compute_descriptors(config, str(tmp_path / "killed"), on_batch=seen.append)
  assert seen == [8, 12]  # Only the two missing batches ran.
  assert resumed.ids == full.ids
  np.testing.assert_array_equal(np.asarray(resumed.features), np.asarray(full.features))
  again = []
  descriptors.compute_descriptors(config, str(tmp_path / "killed"), on_batch=again.append)
  assert again == []  # A finished cache is reused as it is.


def test_rows_are_the_hog_pyramids_of_the_lfd_images(tmp_path):
  config = _config(limit=1)
  desc = descriptors.compute_descriptors(config, str(tmp_path))
  refs = sources.list_shapes(config.shapes)
  shape = next(sources.iter_shapes(refs[2:3]))
  images = hog_input.lfd_images(
      backend.get_renderer(config.render.backend),
      shape.vertices,
      shape.faces,
      shape.category,
      size=config.render.size,
      antialias=config.render.antialias,
  )
  expected = np.asarray(hog.lfd_descriptor(images.astype(np.float32)))
  np.testing.assert_allclose(np.asarray(desc.features[2]), expected, rtol=1e-5, atol=1e-6)


def test_changed_listing_starts_over_and_broken_meshes_are_skipped(tmp_path):
  root = tmp_path / "meshes"
  (root / "things").mkdir(parents=True)
  import trimesh  # pylint: disable=g-import-not-at-top

  trimesh.creation.box((1, 2, 3)).export(root / "things" / "a_box.obj")
  trimesh.creation.icosphere().export(root / "things" / "b_ball.obj")
  (root / "things" / "c_broken.obj").write_text("garbage\n")
  config = _config()
  config.shapes.source, config.shapes.root, config.shapes.limit = "folder", str(root), 0
  desc = descriptors.compute_descriptors(config, str(tmp_path / "wd"))
  assert desc.ids == ["things/a_box", "things/b_ball"]
  assert [s[0] for s in desc.skipped] == ["things/c_broken"]
  trimesh.creation.cylinder(radius=0.5, height=1.0).export(root / "things" / "d_can.obj")
  desc = descriptors.compute_descriptors(config, str(tmp_path / "wd"))
  assert desc.ids == ["things/a_box", "things/b_ball", "things/d_can"]


@pytest.mark.slow
def test_beam_pipeline_writes_the_single_host_store(tmp_path):
  """The per-shape work on Beam's DirectRunner: the same rows, ids, categories and skipped meshes, read back by the
  same `load_descriptors` the distance stage uses."""
  pytest.importorskip("apache_beam", reason="Apache Beam is the optional 'beam' extra: pip install -e '.[beam]'")
  from jembed.embedding import beam_descriptors  # pylint: disable=g-import-not-at-top

  root = tmp_path / "meshes"
  (root / "things").mkdir(parents=True)
  import trimesh  # pylint: disable=g-import-not-at-top

  trimesh.creation.box((1, 2, 3)).export(root / "things" / "a_box.obj")
  (root / "things" / "b_broken.obj").write_text("garbage\n")
  trimesh.creation.icosphere().export(root / "things" / "c_ball.obj")
  trimesh.creation.cylinder(radius=0.5, height=1.0).export(root / "things" / "d_can.obj")
  config = _config()
  config.shapes.source, config.shapes.root, config.shapes.limit = "folder", str(root), 0
  single = descriptors.compute_descriptors(config, str(tmp_path / "single"))
  beam = beam_descriptors.compute_descriptors(config, str(tmp_path / "beam"), "DirectRunner")
  assert beam.ids == single.ids == ["things/a_box", "things/c_ball", "things/d_can"]
  assert beam.categories == single.categories and [s[0] for s in beam.skipped] == ["things/b_broken"]
  np.testing.assert_allclose(np.asarray(beam.features), np.asarray(single.features), rtol=1e-5, atol=1e-6)
  reread = descriptors.load_descriptors(str(tmp_path / "beam"))
  assert reread.ids == beam.ids and not (tmp_path / "beam/lfd/beam").exists()
