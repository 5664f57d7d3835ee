"""Render for CNN's viewpoint metrics (jembed/evaluation/viewpoint.py) against scipy's rotations, and the baselines'
view estimates."""

import numpy as np
import pytest
from scipy import linalg
from scipy.spatial.transform import Rotation

from jembed.data import viewpoints
from jembed.evaluation import viewpoint


def _random_views(rng, n):
  """float32-exact angles: `camera.Views` holds angles as float32 (2e-5 degrees apart near 360)."""
  views = np.stack([rng.uniform(0, 360, n), rng.uniform(-89, 89, n), rng.uniform(-180, 180, n)], axis=1)
  return views.astype(np.float32).astype(np.float64)


def test_geodesic_error_is_render_for_cnn_formula_by_scipy():
  """Δ = ‖logm(R1ᵀR2)‖_F/√2, R = angle2dcm(az, el, θ) ('ZYX'), θ = Render for CNN's tilt label = −our tilt."""
  rng = np.random.default_rng(0)
  a, b = _random_views(rng, 500), _random_views(rng, 500)
  ours = viewpoint.geodesic_error(a, b)

  def r4cnn(v):
    return Rotation.from_euler("ZYX", np.stack([v[:, 0], v[:, 1], -v[:, 2]], 1), degrees=True)

  oracle = np.degrees((r4cnn(a).inv() * r4cnn(b)).magnitude())
  np.testing.assert_allclose(ours, oracle, atol=1e-6)
  # the paper's matrix-log form on a few pairs (scipy.linalg.logm), rotation matrices as MATLAB's angle2dcm (DCM =
  # transposed active rotation)
  for i in range(5):
    ra, rb = r4cnn(a[i : i + 1]).as_matrix()[0].T, r4cnn(b[i : i + 1]).as_matrix()[0].T
    delta = np.linalg.norm(np.real(linalg.logm(ra.T @ rb)), "fro") / np.sqrt(2)
    assert ours[i] == pytest.approx(np.degrees(delta), abs=1e-5)


def test_geodesic_error_on_known_rotations():
  truth = np.array([[10.0, 0.0, 0.0], [0.0, 20.0, 0.0], [0.0, 0.0, 5.0], [30.0, -10.0, 2.0], [0.0, 0.0, 0.0]])
  predicted = np.array(
      [
          [50.0, 0.0, 0.0],  # azimuth off by 40 at the equator: 40
          [0.0, 50.0, 0.0],  # elevation off by 30: 30
          [0.0, 0.0, -5.0],  # tilt off by 10: 10
          [390.0, 350.0, 362.0],  # the same view written mod 360: 0
          [180.0, 0.0, 0.0],
      ]
  )  # the opposite side: 180
  np.testing.assert_allclose(viewpoint.geodesic_error(predicted, truth), [40, 30, 10, 0, 180], atol=1e-6)
  with pytest.raises(ValueError, match=r"\[N, 3\]"):
    viewpoint.geodesic_error(predicted[:, :2], truth[:, :2])


def test_scores_per_category_and_their_mean():
  errors = np.array([5.0, 40.0, 10.0, 29.9, 31.0, 100.0])
  categories = np.array(["chair", "chair", "chair", "car", "car", "car"])
  scores = viewpoint.viewpoint_scores(errors, categories)
  assert scores["per_category"]["chair"] == dict(acc_pi6=pytest.approx(2 / 3), med_err=10.0, n_queries=3)
  assert scores["per_category"]["car"] == dict(acc_pi6=pytest.approx(1 / 3), med_err=31.0, n_queries=3)
  assert scores["acc_pi6"] == pytest.approx(0.5) and scores["med_err"] == pytest.approx(20.5)  # class means
  assert scores["acc_pi6_all"] == pytest.approx(0.5) and scores["med_err_all"] == pytest.approx(30.45)


def test_modal_view_of_histograms_and_view_files():
  # chairs: the heaviest azimuth bin is 0 (weight 93), the heaviest elevation bin j = 10 (315): 15 degrees
  assert viewpoint.modal_view(viewpoints.paper_distribution("chair")) == (0.0, 15.0, 0.0)
  samples = np.array([[91, 31, 2, 3], [88, 29, -1, 3], [200, 0, 0, 3], [90.5, 34, 0, 3]], np.float32)
  assert viewpoint.modal_view(viewpoints.SampledViews(samples)) == (90.0, 35.0, 0.0)
  modes = viewpoint.category_mode_views(np.array(["chair", "car", "chair"]))
  np.testing.assert_array_equal(modes[0], modes[2])
  assert modes[1][1] == 5.0  # cars: seen from 5 degrees above most often


def test_nearest_lfd_views_are_the_views_of_the_winning_shape():
  categories = np.array(["chair", "airplane"])
  got = viewpoint.nearest_lfd_views(np.array([5, 20 + 3, 20 + 12]), categories)
  # chair view 5: azimuth 90 at elevation 20; airplane views: azimuth-major over elevations (-30, 0)
  np.testing.assert_allclose(got, [[90, 20, 0], [36, 0, 0], [216, -30, 0]])
