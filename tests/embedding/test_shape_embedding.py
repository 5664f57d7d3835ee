"""The shape-embedding launcher end to end, as a user runs it."""

import json

import numpy as np
from PIL import Image
import pytest

from configs import tiny
from jembed.embedding import sammon
from jembed.embedding import shape_embedding
from jembed.workdir import records

from conftest import run_launcher


@pytest.mark.slow
def test_launcher_writes_embedding_map_and_summary(tmp_path):
  workdir = tmp_path / "wd"
  result = run_launcher("embed_shapes", "--config=configs/tiny.py", f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-3000:]
  emb = records.ShapeEmbedding.load(str(workdir / "shape_embedding.npz"))
  config = tiny.get_config()
  assert len(emb.ids) == 6 * config.shapes.limit and list(emb.ids) == sorted(emb.ids)
  assert emb.points.shape == (len(emb.ids), config.mds.dim) and emb.points.dtype == np.float32
  assert np.isfinite(emb.points).all() and 0 <= emb.stress < 0.05
  # The LFD-HoG space groups categories: most shapes' nearest neighbour is of their own category.
  d = np.linalg.norm(emb.points[:, None] - emb.points[None], axis=-1)
  np.fill_diagonal(d, np.inf)
  same = (emb.categories[d.argmin(1)] == emb.categories).mean()
  assert same >= 0.75, same
  summary = json.loads((workdir / "shape_embedding.json").read_text())
  assert summary["n_shapes"] == len(emb.ids) and set(summary["seconds"]) >= {"descriptors", "distances", "sammon"}
  assert summary["stopped"] in sammon.STOPPED[1:]  # mdscale's reason, as MATLAB words it
  if summary["stopped"] == "criterion less than TolFun":
    assert emb.stress < config.mds.tol
  assert Image.open(workdir / "shape_embedding.png").size[0] > 600
  assert (workdir / "skipped_shapes.txt").read_text() == ""
  assert "Sammon stress" in result.stdout


@pytest.mark.slow
def test_broken_shapes_are_listed_not_fatal(tmp_path, shared_data):
  root = tmp_path / "meshes"
  (root / "chair").mkdir(parents=True)
  for i in range(1, 5):
    source = shared_data / f"objectnet3d_cad/chair/{i:02d}.obj.gz"
    (root / "chair" / f"{i:02d}.obj.gz").write_bytes(source.read_bytes())
  (root / "chair" / "broken.obj").write_text("v 0 0 0\nf 1 1 1\n")
  config = tiny.get_config()
  config.shapes.source, config.shapes.root, config.shapes.limit = "folder", str(root), 0
  config.shapes.up_axis, config.shapes.front = "z", "-y"
  emb = shape_embedding.embed_shapes(config, str(tmp_path / "wd"))
  assert list(emb.ids) == ["chair/01", "chair/02", "chair/03", "chair/04"]
  skipped = (tmp_path / "wd" / "skipped_shapes.txt").read_text().splitlines()
  assert len(skipped) == 1 and skipped[0].startswith("chair/broken\t")


@pytest.mark.slow
def test_landmark_variant_agrees_with_exact_on_neighbours(tmp_path):
  config = tiny.get_config()
  exact = shape_embedding.embed_shapes(config, str(tmp_path))
  config.mds.method, config.mds.landmarks = "landmark", 12
  landmark = shape_embedding.embed_shapes(config, str(tmp_path))  # Same workdir: the descriptors are reused.
  assert list(landmark.ids) == list(exact.ids) and landmark.points.shape == exact.points.shape
  assert np.isfinite(landmark.points).all() and landmark.stress < 0.1

  def nearest(points):
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d.argmin(1)

  # The 6 shapes placed out of sample mostly keep the category of their nearest neighbour.
  same = (exact.categories[nearest(landmark.points)] == exact.categories).mean()
  assert same >= 0.7, same


@pytest.mark.slow
def test_new_shapes_are_placed_next_to_their_own_kind(tmp_path):
  base_config = tiny.get_config()
  base = shape_embedding.embed_shapes(base_config, str(tmp_path / "base"))
  new_config = tiny.get_config()
  new_config.shapes.limit = 4  # The catalog's 4th shape of each category is new to the base (limit 3).
  added = shape_embedding.add_shapes(new_config, str(tmp_path / "new"), str(tmp_path / "base"))
  assert len(added.ids) == 24 and added.points.shape == (24, base.points.shape[1])
  # Shapes the base already holds land on (almost) their own points; the new ones land near their category.
  index = {shape_id: i for i, shape_id in enumerate(base.ids)}
  known = [i for i, shape_id in enumerate(added.ids) if shape_id in index]
  np.testing.assert_allclose(added.points[known], base.points[[index[added.ids[i]] for i in known]], atol=1e-3)
  new = [i for i, shape_id in enumerate(added.ids) if shape_id not in index]
  d = np.linalg.norm(added.points[new][:, None] - base.points[None], axis=-1)
  assert (base.categories[d.argmin(1)] == added.categories[new]).mean() >= 4 / 6
