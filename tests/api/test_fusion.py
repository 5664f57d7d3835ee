"""Fusing several photos' points into one ranking (jembed/api/fusion.py), against brute-force numpy."""

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from jembed.api import fusion


@pytest.fixture(scope="module")
def points():
  rng = np.random.default_rng(0)
  return rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(40, 5)).astype(np.float32)


def test_each_fusion_against_brute_force(points):
  photos, shapes = points
  d = distance.cdist(photos.astype(np.float64), shapes)
  expected = {
      "points": distance.cdist(photos.mean(0, keepdims=True), shapes)[0],
      "distances": d.mean(0),
      "ranks": stats.rankdata(d, method="ordinal", axis=1).mean(0),
  }
  for how in fusion.FUSIONS:
    np.testing.assert_allclose(fusion.fused_distances(photos, shapes, how), expected[how], rtol=1e-5, atol=1e-5)


def test_one_photo_ranks_as_itself(points):
  photos, shapes = points
  alone = np.argsort(distance.cdist(photos[:1], shapes)[0], kind="stable")
  for how in fusion.FUSIONS:
    np.testing.assert_array_equal(np.argsort(fusion.fused_distances(photos[:1], shapes, how), kind="stable"), alone)


def test_the_mean_point_follows_an_outlier_ranks_and_distances_do_not():
  """Two photos at shape A, one far off: their centroid lands on shape C between them; mean ranks and mean
  distances keep A first."""
  shapes = np.array([[0.0, 0.0], [1.0, 0.0], [30.0, 0.0], [100.0, 0.0]], np.float32)  # A, B, C, D
  photos = np.array([[0.0, 0.1], [0.05, 0.0], [90.0, 0.0]], np.float32)
  assert np.argmin(fusion.fused_distances(photos, shapes, "points")) == 2
  assert np.argmin(fusion.fused_distances(photos, shapes, "ranks")) == 0
  assert np.argmin(fusion.fused_distances(photos, shapes, "distances")) == 0


def test_groups_equal_fusing_each_group_alone(points):
  photos, shapes = points
  groups = np.array([3, 1, 3, 1, 1, 7, 3])
  for how in fusion.FUSIONS:
    labels, fused = fusion.fused_groups(photos, groups, shapes, how)
    np.testing.assert_array_equal(labels, [1, 3, 7])
    for label, row in zip(labels, fused):
      np.testing.assert_allclose(row, fusion.fused_distances(photos[groups == label], shapes, how), rtol=1e-6)


def test_bad_arguments_say_what_is_wrong(points):
  photos, shapes = points
  with pytest.raises(ValueError, match="unknown fusion 'vote'"):
    fusion.fused_distances(photos, shapes, "vote")
  with pytest.raises(ValueError, match="M >= 1"):
    fusion.fused_distances(photos[:0], shapes)
