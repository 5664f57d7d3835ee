"""Verification by rendering (jembed/api/verify.py): its distance transform against scipy's, its scores against
brute-force NumPy, the fusion's formula and limits, and a shape recognised among decoys at its own pose."""

import numpy as np
import pytest
from scipy import ndimage

from configs import default
from jembed.api import verify
from jembed.api import verify_grid
from jembed.evaluation import viewpoint
from jembed.render import backend
from jembed.render import camera
from jembed.shapes import catalog
from jembed.shapes import sources
from jembed.utils import config_checks


def test_distance_transform_is_scipys_exact_edt():
  rng = np.random.default_rng(0)
  edges = rng.random((3, 64, 64)) < np.array([0.002, 0.02, 0.2])[:, None, None]
  edges[0, 5, 60] = True  # at least one edge in each image
  ours = np.asarray(verify.distance_transform(edges))
  for e, d in zip(edges, ours):
    np.testing.assert_allclose(d, ndimage.distance_transform_edt(~e), rtol=1e-6, atol=1e-5)


def test_photo_edges_outline_a_square_and_ignore_its_colour():
  image = np.full((1, 64, 64), 255, np.uint8)
  image[0, 20:44, 16:48] = 40
  edges = np.asarray(verify.photo_edges(image))[0]
  dark = np.asarray(verify.photo_edges(255 - image))[0]  # the same square, light on dark
  np.testing.assert_array_equal(edges, dark)
  rows, cols = np.nonzero(edges)
  assert rows.min() >= 18 and rows.max() <= 45 and cols.min() >= 14 and cols.max() <= 49
  assert not edges[25:39, 21:43].any()  # nothing inside the flat square


def test_render_edges_are_the_silhouette_and_creases():
  alpha = np.zeros((1, 32, 32), np.uint8)
  alpha[0, 8:24, 8:24] = 255
  gray = np.full((1, 32, 32), 255, np.uint8)
  gray[0, 8:24, 8:16], gray[0, 8:24, 16:24] = 80, 160  # two faces of different shading: a crease at column 16
  edges = np.asarray(verify.render_edges(gray, alpha))[0]
  outline = np.zeros((32, 32), bool)
  outline[8:24, 8:24] = True
  outline[9:23, 9:23] = False
  assert (edges & outline).sum() == outline.sum()  # the whole silhouette
  inner = edges & ~outline
  assert inner.any() and set(np.nonzero(inner)[1]) <= {15, 16}  # the crease, nothing else inside
  assert not edges[~(alpha[0] > 127)].any()


def test_hypothesis_distances_are_brute_force():
  rng = np.random.default_rng(1)
  q, n, h, f, p, k = 4, 7, 5, 12, 16, 3
  photo_hog, photo_dt = rng.random((q, f), np.float32), rng.random((q, p), np.float32)
  view_hog, view_edges = rng.random((n, h, f), np.float32), rng.random((n, h, p), np.float32)
  candidates = np.stack([rng.permutation(n)[:k] for _ in range(q)]).astype(np.int32)
  hog_d, chamfer = (
      np.asarray(x) for x in verify.hypothesis_distances(photo_hog, photo_dt, view_hog, view_edges, candidates)
  )
  for i in range(q):
    for j, c in enumerate(candidates[i]):
      np.testing.assert_allclose(hog_d[i, j], np.linalg.norm(view_hog[c] - photo_hog[i], axis=1), rtol=1e-4)
      np.testing.assert_allclose(chamfer[i, j], view_edges[c] @ photo_dt[i], rtol=1e-5)


def _z(x, axes):
  return (x - x.mean(axis=axes, keepdims=True)) / (x.std(axis=axes, keepdims=True) + 1e-6)


def test_verify_candidates_is_its_formula():
  rng = np.random.default_rng(2)
  joint, hog_d, chamfer, prior = rng.random((3, 6)), rng.random((3, 6, 8)), rng.random((3, 6, 8)), rng.random((3, 6, 8))
  w = np.array([2.0, 0.5, 1.0])
  fused, best = (np.asarray(x) for x in verify.verify_candidates(joint, hog_d, chamfer, w, prior))
  score = w[0] * _z(hog_d, (1, 2)) + w[1] * _z(chamfer, (1, 2)) + w[2] * prior
  np.testing.assert_allclose(fused, _z(joint, 1) + score.min(2), rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(best, score.argmin(2))


def test_zero_weights_keep_the_joint_order_and_a_matching_render_wins():
  rng = np.random.default_rng(3)
  joint = np.sort(rng.random((1, 10)), axis=1)
  hog_d, chamfer = rng.uniform(1, 2, (2, 1, 10, 12))
  fused, _ = verify.verify_candidates(joint, hog_d, chamfer, np.zeros(3))
  np.testing.assert_array_equal(np.argsort(np.asarray(fused)[0]), np.arange(10))
  hog_d[0, 6, 4], chamfer[0, 6, 4] = 0.0, 0.0  # candidate 6 looks exactly like the photo at hypothesis 4
  fused, best = (np.asarray(x) for x in verify.verify_candidates(joint, hog_d, chamfer, np.array([2.0, 1.0, 0.0])))
  assert np.argmin(fused[0]) == 6 and best[0, 6] == 4


def test_pose_angle_is_the_evaluations_geodesic_error():
  rng = np.random.default_rng(4)
  a = np.stack([rng.uniform(0, 360, 50), rng.uniform(-60, 60, 50), rng.normal(0, 10, 50)], 1)
  b = np.stack([rng.uniform(0, 360, 50), rng.uniform(-60, 60, 50), rng.normal(0, 10, 50)], 1)
  np.testing.assert_allclose(verify.pose_angle(a, b), viewpoint.geodesic_error(a, b), atol=0.05)
  prior = verify.head_prior(np.broadcast_to(a[:, None, None], (50, 2, 3, 3)), b)
  np.testing.assert_allclose(prior[:, 1, 2], viewpoint.geodesic_error(a, b) / 180, atol=1e-3)
  assert not verify.head_prior(np.zeros((2, 3, 4, 3)), None).any()


def test_grid_views_cover_the_training_views():
  views = verify.grid_views("chair", 24, 3)
  assert len(views) == 72 and np.all(views.tilt == 0)
  np.testing.assert_array_equal(np.unique(views.elevation), [5, 15, 25])  # the chair histogram's heaviest bins
  np.testing.assert_allclose(np.unique(views.azimuth), np.arange(24) * 15)
  fine = verify.refine_views(355.0, 15.0)
  assert len(fine) == 9 and (fine.azimuth[0], fine.elevation[0]) == (355.0, 15.0)
  assert set(np.round(fine.azimuth, 1)) == {347.5, 355.0, 2.5}


def test_the_default_config_passes_its_rules():
  config = default.get_config()
  assert not config_checks.problems(config, verify.CONFIG_RULES)
  config.verify.k = 0
  assert config_checks.problems(config, verify.CONFIG_RULES)


@pytest.fixture(scope="module")
def renderer():
  return backend.get_renderer("auto")


def test_a_render_is_recognised_among_decoys_at_its_pose(renderer):
  """A photo made by rendering one catalog shape at a grid pose (with other lights and on a gray background): the
  shape and pose verification picks, with the joint distances all equal, are that shape and pose."""
  shapes = list(sources.iter_shapes(catalog.catalog_refs(categories=("chair",), limit=6)))
  settings = verify.Settings(azimuths=12, elevations=2)
  feats = [verify_grid.render_grid_shape(renderer, s, settings) for s in shapes]
  angles, view_hog, view_edges = (np.stack(x) for x in zip(*feats))
  truth, pose = 3, 7
  a, e, _ = angles[truth, pose]
  rgba = renderer.render(
      shapes[truth].vertices, shapes[truth].faces, camera.Views.make(a + 4.0, e - 3.0), size=160, albedo=0.7
  ).rgba[0]
  top, bottom, left, right = (
      np.flatnonzero(rgba[..., 3].any(1))[[0, -1]].tolist() + np.flatnonzero(rgba[..., 3].any(0))[[0, -1]].tolist()
  )
  crop = rgba[top : bottom + 1, left : right + 1].astype(np.float32)
  photo = crop[..., :3] * crop[..., 3:] / 255 + 120 * (1 - crop[..., 3:] / 255)
  photo_gray = verify.photo_crops(np.round(photo).astype(np.uint8)[None])
  photo_hog, photo_dt = verify.photo_features(photo_gray)
  candidates = np.arange(len(shapes), dtype=np.int32)[None]
  hog_d, chamfer = verify.hypothesis_distances(photo_hog, photo_dt, view_hog, view_edges, candidates)
  fused, best = (
      np.asarray(x) for x in verify.verify_candidates(np.zeros((1, 6)), hog_d, chamfer, np.array([2.0, 0.5, 0.0]))
  )
  assert np.argmin(fused[0]) == truth
  assert verify.pose_angle(angles[truth, best[0, truth]], angles[truth, pose]) < 20


def test_shortlist_scores_are_scipy_zscores_and_bring_in_the_hog_match():
  """The shortlist's scores are z(joint) + α · z(HoG-NN) over each photo's shapes (scipy's zscore as the oracle),
  the joint distances themselves at α = 0; a shape far down the joint ranking but HoG-NN's clear first enters the
  top K once HoG-NN has weight."""
  from scipy import stats  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(5)
  joint, hog_nn = rng.random((2, 4, 30)).astype(np.float32)
  np.testing.assert_array_equal(verify.shortlist_scores(joint, None, 0.0), joint)
  np.testing.assert_allclose(
      verify.shortlist_scores(joint, hog_nn, 0.5),
      stats.zscore(joint, axis=1) + 0.5 * stats.zscore(hog_nn, axis=1),
      rtol=1e-4,
      atol=1e-4,
  )
  joint[0] = np.arange(30)  # shape 25 is 26th in the joint embedding ...
  hog_nn[0, 25] = -5.0  # ... and far nearer than any other by HoG-NN
  k = 10
  assert 25 not in np.argsort(verify.shortlist_scores(joint, hog_nn, 0.0)[0])[:k]
  assert 25 in np.argsort(verify.shortlist_scores(joint, hog_nn, 1.0)[0])[:k]
