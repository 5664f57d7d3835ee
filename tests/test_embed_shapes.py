"""The shape-embedding launcher end to end, as a user runs it."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image

from configs import tiny
from jembed.embedding import shape_embedding

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_launcher_writes_embedding_map_and_summary(tmp_path):
  workdir = tmp_path / "wd"
  cmd = [sys.executable, "-m", "launch.embed_shapes", "--config=configs/tiny.py", f"--workdir={workdir}"]
  result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
  assert result.returncode == 0, result.stderr[-3000:]
  emb = shape_embedding.ShapeEmbedding.load(str(workdir / "shape_embedding.npz"))
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
  assert Image.open(workdir / "shape_embedding.png").size[0] > 600
  assert (workdir / "skipped_shapes.txt").read_text() == ""
  assert "Sammon stress" in result.stdout


def test_broken_shapes_are_listed_not_fatal(tmp_path, shared_data):
  root = tmp_path / "meshes"
  (root / "chair").mkdir(parents=True)
  for i in range(1, 5):
    (root / "chair" / f"{i:02d}.obj.gz").write_bytes((shared_data / f"objectnet3d_cad/chair/{i:02d}.obj.gz").read_bytes())
  (root / "chair" / "broken.obj").write_text("v 0 0 0\nf 1 1 1\n")
  config = tiny.get_config()
  config.shapes.source, config.shapes.root, config.shapes.limit = "folder", str(root), 0
  config.shapes.up_axis, config.shapes.front = "z", "-y"
  emb = shape_embedding.embed_shapes(config, str(tmp_path / "wd"))
  assert list(emb.ids) == ["chair/01", "chair/02", "chair/03", "chair/04"]
  skipped = (tmp_path / "wd" / "skipped_shapes.txt").read_text().splitlines()
  assert len(skipped) == 1 and skipped[0].startswith("chair/broken\t")


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
