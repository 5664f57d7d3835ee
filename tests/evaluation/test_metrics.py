"""The paper's protocols on hand-worked cases, against stable argsort, and against sklearn/scipy as an independent
port of `get_pr_curve_all.m`."""

import numpy as np
import pytest
from scipy import interpolate
from scipy.spatial import distance as scipy_distance
from sklearn import metrics as sk_metrics

from jembed.evaluation import metrics

# Four images on a line, x = 0, 1, 3, 7, in groups 0, 0, 1, 0 (worked through in test_pr_curve_by_hand).
_LINE_X = np.array([0.0, 1.0, 3.0, 7.0])
_LINE_GROUPS = np.array([0, 0, 1, 0])


def _line_distances() -> np.ndarray:
  return np.abs(_LINE_X[:, None] - _LINE_X[None, :])


def test_ranks_by_hand():
  distances = np.array(
      [
          [0.5, 0.2, 0.9, 0.1],  # target 0: 0.2 and 0.1 are smaller -> rank 3
          [0.3, 0.3, 0.3, 0.0],  # target 2: 0.0 smaller, two equal ones at lower indices -> rank 4
          [0.7, 0.1, 0.1, 0.4],  # target 1: nothing smaller, the equal one is at a higher index -> rank 1
      ]
  )
  np.testing.assert_array_equal(metrics.ranks(distances, [0, 2, 1]), [3, 4, 1])


def test_ranks_are_stable_argsort_positions():
  rng = np.random.default_rng(0)
  distances = rng.integers(0, 6, (50, 40)).astype(np.float32)  # many ties
  targets = rng.integers(0, 40, 50)
  order = np.argsort(distances, axis=1, kind="stable")
  want = 1 + np.argmax(order == targets[:, None], axis=1)
  np.testing.assert_array_equal(metrics.ranks(distances, targets), want)


def test_ranks_errors():
  with pytest.raises(ValueError, match="NaN"):
    metrics.ranks(np.array([[0.0, np.nan]]), [0])
  with pytest.raises(ValueError, match="targets"):
    metrics.ranks(np.zeros((2, 3)), [0, 3])


def test_topk_accuracy_by_hand():
  # ranks 1, 3, 2, 10: one of four within K = 1, two within 2, three within 3 and 5, all within 10.
  got = metrics.topk_accuracy([1, 3, 2, 10], [1, 2, 3, 5, 10, 11])
  np.testing.assert_allclose(got, [0.25, 0.5, 0.75, 0.75, 1.0, 1.0])
  assert metrics.topk_accuracy([1, 300]).shape == (250,)  # the paper's K = 1..250


def test_first_last_by_hand():
  distances = np.array(
      [
          [0.1, 0.5, 0.2, 0.3, 0.9],  # shape 0 ranks images 0, 2, 3, 1, 4: its images 0 and 1 at 1 and 4
          [0.0, 0.0, 0.0, 0.0, 0.0],  # shape 1 owns no image: left out
          [0.4, 0.4, 0.4, 0.1, 0.4],  # shape 2 ranks 3, 0, 1, 2, 4 (stable): its images 2, 3, 4 at 4, 1, 5
      ]
  )
  first, last = metrics.first_last_ranks(distances, [0, 0, 2, 2, 2])
  np.testing.assert_array_equal(first, [1, 1])
  np.testing.assert_array_equal(last, [4, 5])
  assert metrics.median_first_last(distances, [0, 0, 2, 2, 2]) == (1.0, 4.5)
  # Image 1 of no shape: still ranked, shape 0 keeps only image 0 (rank 1).
  first, last = metrics.first_last_ranks(distances, [0, -1, 2, 2, 2])
  np.testing.assert_array_equal(first, [1, 1])
  np.testing.assert_array_equal(last, [1, 5])


def test_pr_curve_by_hand():
  # Rankings (stable, query first) and relevance, truncated after the last relevant image:
  #   q0 (x=0): 0, 1, 2, 3 -> rel 1 1 0 1: kept points (1/3, 1), (2/3, 1), (1, 3/4)
  #   q1 (x=1): 1, 0, 2, 3 -> rel 1 1 0 1: the same curve
  #   q2 (x=3): 2, 1, 0, 3 -> rel 1: the single point (1, 1); every grid recall is below it -> 1
  #   q3 (x=7): 3, 2, 1, 0 -> rel 1 0 1 1: recall 1/3, 1/3, 2/3, 1 -> kept (1/3, 1), (2/3, 2/3), (1, 3/4)
  # At recall 0.501: q0, q1, q2 give 1; q3 gives 1 - (0.501 - 1/3) = 0.832333; mean 0.958083.
  # At recall 0.999: q0, q1 give 1.5 - 0.75 * 0.999 = 0.75075; q2 1; q3 0.5 + 0.999 / 4 = 0.74975; mean 0.8128125.
  recall, precision = metrics.pr_curve_paper(_line_distances(), _LINE_GROUPS)
  assert recall.shape == precision.shape == (500,)
  assert recall[0] == 0.001 and recall[250] == pytest.approx(0.501) and recall[-1] == pytest.approx(0.999)
  assert precision[0] == 1.0
  assert precision[250] == pytest.approx((3 + 4 / 3 - 0.501) / 4, abs=1e-12)
  assert precision[-1] == pytest.approx(0.8128125, abs=1e-12)
  # Exact integral of the mean curve over [0.001, 0.999] (fractions, by hand): 54095591/57600000 = 0.939159566.
  # The trapezoid rule only errs in the two grid cells that hold the kinks at 1/3 and 2/3 (< 1e-6 each).
  assert metrics.pr_auc_paper(recall, precision) == pytest.approx(54095591 / 57600000, abs=2e-6)
  # AP: q0, q1: (1/1 + 2/2 + 3/4) / 3 = 11/12; q2: 1; q3: (1/1 + 2/3 + 3/4) / 3 = 29/36; mean 131/144.
  assert metrics.average_precision(_line_distances(), _LINE_GROUPS) == pytest.approx(131 / 144, abs=1e-12)


def test_membership_matrix_means_any_shared_group():
  # Labels and their one-hot membership matrix are the same thing.
  onehot = np.stack([_LINE_GROUPS == 0, _LINE_GROUPS == 1])
  np.testing.assert_array_equal(
      metrics.pr_curve_paper(_line_distances(), onehot)[1], metrics.pr_curve_paper(_line_distances(), _LINE_GROUPS)[1]
  )
  # Overlapping groups {0, 1} and {1, 2}; images at x = 0, 2, 1. Image 1 shares a group with everyone, 0 and 2 share
  # none. q0 ranks 0, 2, 1 -> rel 1 0 1 -> points (1/2, 1), (1, 2/3); q2 ranks 2, 0, 1 -> the same; q1 -> all 1.
  # At recall 0.999: (2 * (1 - (2/3) * 0.499) + 1) / 3 = 0.7782222.
  x = np.array([0.0, 2.0, 1.0])
  groups = np.array([[1, 1, 0], [0, 1, 1]])
  precision = metrics.pr_curve_paper(np.abs(x[:, None] - x[None, :]), groups)[1]
  assert precision[-1] == pytest.approx((2 * (1 - 2 / 3 * 0.499) + 1) / 3, abs=1e-12)
  assert precision[248] == 1.0 and precision[250] < 1.0  # the kink at recall 1/2 (grid 0.497, 0.501)


def test_subset_and_errors():
  distances = _line_distances()
  full = metrics.pr_curve_paper(distances[:3, :3], _LINE_GROUPS[:3])[1]
  np.testing.assert_array_equal(metrics.pr_curve_paper(distances, _LINE_GROUPS, subset=[0, 1, 2])[1], full)
  np.testing.assert_array_equal(metrics.pr_curve_paper(distances, _LINE_GROUPS, subset=np.arange(4) < 3)[1], full)
  with pytest.raises(ValueError, match="no group"):
    metrics.pr_curve_paper(distances, np.array([[1, 1, 0, 0]]))
  with pytest.raises(ValueError, match="groups"):
    metrics.pr_curve_paper(distances, np.zeros(5, int))


def _oracle_curve(distances: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """get_pr_curve_all.m rewritten from sklearn's precision/recall points and scipy's interp1d.

  With no tied distances, sklearn's curve has one point per ranking position, from the first result up to the one
  reaching full recall, in reverse order, plus an extra (recall 0, precision 1) end point.
  """
  grid = np.arange(0.001, 1.0, 0.002)
  total = np.zeros(grid.size)
  for q in range(distances.shape[0]):
    precision, recall, _ = sk_metrics.precision_recall_curve(labels == labels[q], -distances[q])
    precision, recall = precision[:-1][::-1], recall[:-1][::-1]
    keep = [0] + [j for j in range(1, recall.size) if recall[j] != recall[j - 1]]
    recall, precision = recall[keep], precision[keep]
    if recall.size == 1:
      resampled = np.where(grid == recall[0], precision[0], np.nan)
    else:
      resampled = interpolate.interp1d(recall, precision, bounds_error=False, fill_value=np.nan)(grid)
    total += np.where(np.isnan(resampled), 1.0, resampled)
  return total / distances.shape[0]


def test_pr_curve_matches_an_independent_port():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 4, 80)
  points = rng.normal(size=(80, 5)) + 1.5 * labels[:, None]  # related groups, imperfect retrieval
  distances = scipy_distance.cdist(points, points)  # the diagonal is exactly 0, no other ties
  recall, precision = metrics.pr_curve_paper(distances, labels)
  np.testing.assert_allclose(recall, np.arange(0.001, 1.0, 0.002), atol=1e-15)
  np.testing.assert_allclose(precision, _oracle_curve(distances, labels), atol=1e-12)
  auc = metrics.pr_auc_paper(recall, precision)
  assert 0.3 < auc < 0.95
  want_ap = np.mean([sk_metrics.average_precision_score(labels == labels[q], -distances[q]) for q in range(80)])
  assert metrics.average_precision(distances, labels) == pytest.approx(want_ap, abs=1e-12)


def test_perfect_retrieval_scores_0_998():
  labels = np.repeat(np.arange(5), 6)
  points = 100.0 * labels[:, None] + np.random.default_rng(2).normal(size=(30, 3))  # well-separated clusters
  recall, precision = metrics.pr_curve_paper(scipy_distance.cdist(points, points), labels)
  np.testing.assert_array_equal(precision, 1.0)
  assert metrics.pr_auc_paper(recall, precision) == pytest.approx(0.998, abs=1e-12)
  assert metrics.average_precision(scipy_distance.cdist(points, points), labels) == 1.0


def test_random_retrieval_scores_about_the_prevalence():
  rng = np.random.default_rng(3)
  labels = np.arange(1200) % 4  # prevalence 1/4
  distances = rng.random((1200, 1200))
  np.fill_diagonal(distances, 0.0)
  auc = metrics.pr_auc_paper(*metrics.pr_curve_paper(distances, labels))
  assert auc == pytest.approx(0.25, abs=0.02)
