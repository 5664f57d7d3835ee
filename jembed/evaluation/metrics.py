"""The paper's retrieval protocols (pipeline §4) as pure numpy functions over distance matrices.

Ranks are positions in a stable ascending sort of a query's distances: a result's rank is 1 + the number of strictly
smaller distances + the number of equal distances at a lower index. MATLAB's `sort(..., 'ascend')`, which the paper's
scripts use, is stable in the same way, and `jembed.api.retrieval.top_k` returns neighbours in this order. Distances
must not be NaN (a NaN has no place in that order; the functions that rank raise ValueError).

- §4.2 image → shape: `ranks` of each photo's ground-truth shape, then `topk_accuracy` for K = 1..250.
- §4.3 shape → image: `first_last_ranks` / `median_first_last` (1 / 5 on ExactMatchChairs in the paper).
- §4.1 image → image: `pr_curve_paper` / `pr_auc_paper`, a line-by-line port of `get_pr_curve_all.m`, with its
  conventions kept on purpose (the query itself counts as a relevant result; the curve is sampled on a 500-point grid
  that ends at 0.999, so a perfect AUC is 0.998), so that the numbers compare with the paper's 0.765 / 0.801 / 0.312.
  `average_precision` is a conventional secondary number over the same rankings.
"""

from typing import Any, Sequence

import numpy as np

# get_pr_curve_all.m: sampling = [0.001:0.002:1], 500 points from 0.001 to 0.999.
PR_RECALL_GRID = 0.001 + 0.002 * np.arange(500)


def _check_finite(distances: np.ndarray) -> None:
  if np.isnan(distances).any():
    raise ValueError("distances contain NaN, which has no rank")


def ranks(distances: Any, targets: Any) -> np.ndarray:
  """1-based rank of each query's target among its N candidates.

  rank = 1 + #(distances < target's) + #(distances == target's at a lower index), i.e. the target's position in
  `np.argsort(distances[q], kind='stable')` plus one.

  Args:
    distances: float[Q, N], query by candidate.
    targets: int[Q], each query's target candidate in [0, N).

  Returns:
    int64[Q] ranks in [1, N].
  """
  distances = np.asarray(distances)
  targets = np.asarray(targets, np.int64).reshape(-1)
  if distances.ndim != 2 or targets.shape[0] != distances.shape[0]:
    raise ValueError(
        f"distances must be [Q, N] with one target per query; got {distances.shape} and " f"{targets.shape[0]} targets"
    )
  if np.any((targets < 0) | (targets >= distances.shape[1])):
    raise ValueError(f"targets must lie in [0, {distances.shape[1]})")
  _check_finite(distances)
  target_dist = distances[np.arange(distances.shape[0]), targets][:, None]
  before = np.arange(distances.shape[1])[None, :] < targets[:, None]
  ahead = (distances < target_dist) | ((distances == target_dist) & before)
  return 1 + np.count_nonzero(ahead, axis=1)


def topk_accuracy(query_ranks: Any, ks: Sequence[int] | np.ndarray = range(1, 251)) -> np.ndarray:
  """Share of queries whose target has rank <= K, for each K (the paper's top-K curve, K = 1..250).

  Args:
    query_ranks: int[Q] 1-based ranks (from `ranks`).
    ks: the K values.

  Returns:
    float64[len(ks)].
  """
  sorted_ranks = np.sort(np.asarray(query_ranks).reshape(-1))
  if sorted_ranks.size == 0:
    raise ValueError("no ranks given")
  return np.searchsorted(sorted_ranks, np.asarray(ks), side="right") / sorted_ranks.size


def first_last_ranks(distances: Any, owner: Any) -> tuple[np.ndarray, np.ndarray]:
  """Shape → image (§4.3): for each shape with images, the ranks of its best- and worst-placed image.

  Each shape ranks all Q images by distance (stable order, 1-based); `first` is the smallest rank among the images it
  owns, `last` the largest.

  Args:
    distances: float[S, Q], shape by image.
    owner: int[Q], the shape of each image in [0, S), or -1 for an image of no shape (it is still ranked).

  Returns:
    (first, last): int64[S'] each, for the S' shapes that own at least one image, in ascending shape index
    (`np.unique(owner[owner >= 0])`).
  """
  distances = np.asarray(distances)
  owner = np.asarray(owner, np.int64).reshape(-1)
  if distances.ndim != 2 or owner.shape[0] != distances.shape[1]:
    raise ValueError(
        f"distances must be [S, Q] with one owner per image; got {distances.shape} and " f"{owner.shape[0]} owners"
    )
  if np.any(owner >= distances.shape[0]):
    raise ValueError(f"owners must lie in [0, {distances.shape[0]}) (or be -1)")
  images = np.flatnonzero(owner >= 0)
  # Each owned image's rank in its own shape's ranking of all images.
  image_ranks = ranks(distances[owner[images]], images)
  shapes, row = np.unique(owner[images], return_inverse=True)
  first = np.full(shapes.size, np.iinfo(np.int64).max)
  last = np.zeros(shapes.size, np.int64)
  np.minimum.at(first, row, image_ranks)
  np.maximum.at(last, row, image_ranks)
  return first, last


def median_first_last(distances: Any, owner: Any) -> tuple[float, float]:
  """(median first rank, median last rank) over the shapes with images (§4.3; the paper: 1 / 5)."""
  first, last = first_last_ranks(distances, owner)
  return float(np.median(first)), float(np.median(last))


def _same_group(groups: Any, n: int) -> np.ndarray:
  """bool[Q, Q]: images i and j share at least one group.

  groups: int[Q] labels (one group per image), or a [M, Q] membership matrix (bool or 0/1; `ground_truth` of §4.1).
  """
  groups = np.asarray(groups)
  if groups.ndim == 1 and groups.shape[0] == n:
    return groups[:, None] == groups[None, :]
  if groups.ndim == 2 and groups.shape[1] == n:
    member = (groups != 0).astype(np.float32)
    return (member.T @ member) > 0  # counts of shared groups, exact in float32 below 2**24 groups
  raise ValueError(f"groups must be int[{n}] labels or a [M, {n}] membership matrix; got shape {groups.shape}")


def _relevance(distances: Any, groups: Any, subset: Any) -> np.ndarray:
  """bool[Q, Q]: row q = for each position of q's stable ascending ranking, is that image relevant to q."""
  distances = np.asarray(distances)
  if distances.ndim != 2 or distances.shape[0] != distances.shape[1]:
    raise ValueError(f"distances must be a square [Q, Q] matrix; got {distances.shape}")
  same = _same_group(groups, distances.shape[0])
  if subset is not None:
    subset = np.asarray(subset)
    subset = np.flatnonzero(subset) if subset.dtype == bool else subset.reshape(-1)
    distances, same = distances[np.ix_(subset, subset)], same[np.ix_(subset, subset)]
  _check_finite(distances)
  order = np.argsort(distances, axis=1, kind="stable")
  relevant = np.take_along_axis(same, order, axis=1)
  lonely = np.flatnonzero(~relevant.any(axis=1))
  if lonely.size:  # get_pr_curve_all.m fails on these too (empty curve)
    raise ValueError(f"queries {lonely[:10].tolist()} belong to no group: their curves are undefined")
  return relevant


def pr_curve_paper(distances: Any, groups: Any, subset: Any = None) -> tuple[np.ndarray, np.ndarray]:
  """Mean precision-recall curve over all queries, exactly as the paper's `get_pr_curve_all.m` (§4.1).

  Per query q (every image is a query):
    1. Rank all Q images by ascending distance (stable), q itself included; q counts as relevant.
    2. The image at position j is relevant iff it shares at least one group with q.
    3. Truncate the list after the last relevant image. With rel the 0/1 list, recall = cumsum(rel) / sum(rel) and
       precision = cumsum(rel) / (1, 2, ..., L).
    4. Keep the first point and every point where recall increases (drop j >= 2 with recall[j] == recall[j − 1]).
    5. Interpolate precision linearly at the recalls `PR_RECALL_GRID` (0.001:0.002:0.999, MATLAB `interp1`); a grid
       recall outside the kept points' recall range (only below the first) gets precision 1 (MATLAB's NaN → 1).
  The curve is the mean of the per-query curves.

  Args:
    distances: float[Q, Q] image by image distances (the paper: `squareform(pdist(embeddings))`).
    groups: int[Q] labels, or a bool/0-1 [M, Q] group membership matrix (the paper's `ground_truth`).
    subset: optional indices or bool[Q] mask of the images to evaluate (the paper's `imlist`); the others are
      neither queries nor results.

  Returns:
    (recall float64[500] = PR_RECALL_GRID, precision float64[500]).

  Raises:
    ValueError: a query in no group (no relevant result, not even itself), or NaN distances.
  """
  relevant = _relevance(distances, groups, subset)
  total = np.zeros(PR_RECALL_GRID.size)
  for rel in relevant:
    position = np.flatnonzero(rel) + 1  # 1-based positions of the relevant images; the curve ends at the last
    count = np.arange(1, position.size + 1)
    recall, precision = count / position.size, count / position
    if position[0] > 1:  # the first result is not relevant: point 1 is kept at recall 0, precision 0
      recall, precision = np.concatenate([[0.0], recall]), np.concatenate([[0.0], precision])
    total += np.interp(PR_RECALL_GRID, recall, precision, left=1.0, right=1.0)
  return PR_RECALL_GRID.copy(), total / relevant.shape[0]


def pr_auc_paper(recall: np.ndarray, precision: np.ndarray) -> float:
  """Trapezoidal area under a `pr_curve_paper` curve over its grid (MATLAB `trapz`; at most 0.998)."""
  return float(np.trapezoid(precision, recall))


def average_precision(distances: Any, groups: Any, subset: Any = None) -> float:
  """Mean over queries of the (non-interpolated) average precision of the same rankings as `pr_curve_paper`.

  AP(q) = mean over q's relevant images of the precision at their positions, the query itself included. Equals
  `sklearn.metrics.average_precision_score(relevant, -distances[q])` when q's distances have no ties (sklearn groups
  tied scores; here they are in stable order).

  Returns:
    float, in (0, 1].
  """
  relevant = _relevance(distances, groups, subset)
  hits = np.cumsum(relevant, axis=1)
  precision_at = hits / np.arange(1, relevant.shape[1] + 1)
  return float(np.mean(np.sum(precision_at * relevant, axis=1) / hits[:, -1]))
