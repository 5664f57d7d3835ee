"""The web page's shape map (jembed/apps/serve/pictures.py): drawn once, cached in the workdir under a key of what it
shows, the query's marks drawn on a copy at the places matplotlib put the points (checked on the pixels)."""

import json
import types

import numpy as np
import pytest

from jembed.apps.serve import pictures
from jembed.workdir import checksums
from jembed.workdir import paths

_STAR_RGB = (214, 39, 40)  # "#d62728"


def _map(seed: int = 0) -> pictures.ShapeMap:
  rng = np.random.default_rng(seed)
  xy = rng.normal(size=(30, 2)).astype(np.float32) * [3.0, 1.0]
  categories = np.array(["chair"] * 15 + ["table"] * 15)
  return pictures.draw_base(np.arange(30), xy, categories)


def test_to_pixels_lands_on_the_drawn_points():
  the_map = _map()
  h, w, _ = the_map.picture.shape
  cols, rows = (the_map.xy @ the_map.to_pixels[:, :2].T + the_map.to_pixels[:, 2]).T
  assert np.all((cols > 0) & (cols < w) & (rows > 0) & (rows < h))
  # Oracle: the rendered picture itself. Each point's pixel holds its marker's colour, not the white background.
  under = the_map.picture[np.round(rows).astype(int), np.round(cols).astype(int)]
  assert np.all(under.astype(int).sum(axis=1) < 3 * 240)
  # And a pixel between the markers far from every point is white.
  assert np.all(the_map.picture[5, w // 2] >= 250)


def test_marks_are_drawn_on_a_copy():
  the_map = _map()
  before = the_map.picture.copy()
  query_xy = the_map.xy[:4].mean(axis=0)
  out = pictures.draw_map(the_map, query_xy, ringed=np.array([7]))
  np.testing.assert_array_equal(the_map.picture, before)  # the cached picture is untouched
  col, row = query_xy @ the_map.to_pixels[:, :2].T + the_map.to_pixels[:, 2]
  np.testing.assert_array_equal(out[int(round(row)), int(round(col))], _STAR_RGB)  # the star's centre
  col, row = the_map.xy[7] @ the_map.to_pixels[:, :2].T + the_map.to_pixels[:, 2]
  ring = out[int(round(row)) - 8 : int(round(row)) + 9, int(round(col)) - 8 : int(round(col)) + 9]
  assert np.sum(np.all(ring < 60, axis=-1)) > 20  # a dark circle around shape 7
  assert np.mean(out != before) < 0.01  # and nothing else changed


def _workdir(tmp_path, n: int = 14, seed: int = 0):
  """A workdir with LFD-HoG descriptors (random, 40-D) and a model-like record of its shapes."""
  rng = np.random.default_rng(seed)
  ids = [f"s{i:02d}" for i in range(n)]
  (tmp_path / paths.LFD_DIR).mkdir(exist_ok=True)
  features = rng.random((n, 40), dtype=np.float32)
  np.save(paths.lfd(str(tmp_path), paths.DESCRIPTORS), features)
  progress = {
      "ids": ids,
      "categories": ["chair"] * (n // 2) + ["table"] * (n - n // 2),
      "skipped": [],
      "digests": [[0, n, checksums.digest_array(features)]],  # as the descriptor stage records them
  }
  with open(paths.lfd(str(tmp_path), paths.DESCRIPTOR_PROGRESS), "w") as f:
    json.dump(progress, f)
  return types.SimpleNamespace(
      shape_ids=np.array(ids),
      shape_categories=np.array(progress["categories"]),
      shape_points=rng.normal(size=(n, 8)).astype(np.float32),
  )


def test_the_map_is_drawn_once_and_read_back(tmp_path, monkeypatch):
  model = _workdir(tmp_path)
  first = pictures.build_map(str(tmp_path), model)
  cached = paths.serve_cache(str(tmp_path), f"shape_map-{pictures.map_key(str(tmp_path), model)}.npz")
  assert (tmp_path / "serve").is_dir() and paths.serve_cache(str(tmp_path)) in cached
  monkeypatch.setattr(pictures, "_layout", lambda *a: pytest.fail("laid out again instead of read"))
  again = pictures.build_map(str(tmp_path), model)
  for field in ("rows", "xy", "categories", "picture", "to_pixels"):
    np.testing.assert_array_equal(getattr(again, field), getattr(first, field))
  # What it shows changed (another embedding): another key, so it is laid out and drawn again.
  moved = types.SimpleNamespace(**{**vars(model), "shape_points": model.shape_points + 1.0})
  assert pictures.map_key(str(tmp_path), moved) != pictures.map_key(str(tmp_path), model)
  with pytest.raises(pytest.fail.Exception, match="laid out again"):
    pictures.build_map(str(tmp_path), moved)


def test_placing_several_points_equals_placing_each(tmp_path):
  model = _workdir(tmp_path, seed=1)
  the_map = pictures.build_map(str(tmp_path), model)
  points = model.shape_points[[2, 5, 9]] + 0.05
  together = pictures.place_on_map(the_map, model, points)
  assert together.shape == (3, 2)
  for i, point in enumerate(points):
    np.testing.assert_allclose(pictures.place_on_map(the_map, model, point), together[i], rtol=1e-5, atol=1e-6)
  on_shape = pictures.place_on_map(the_map, model, model.shape_points[the_map.rows[4]])
  np.testing.assert_allclose(on_shape, the_map.xy[4], atol=1e-5)  # distance 0 to it: placed on it
