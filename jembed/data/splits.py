"""Train / validation / test assignment of the synthetic images, per image (the paper) or per shape (held-out shapes).

The paper shuffles its image list (seed 9527) and splits it 90/10 **by image**, so every shape is seen in training.
Evaluating on shapes the network never saw needs a split **by shape**; ours is stratified by category, so each category
gives the same share of its shapes to each split. Both are exact counts (not a coin per item) and depend only on the
seed and the usable shapes (those whose mesh loads), never on the number of workers or hosts.
"""

import dataclasses

from absl import logging
import numpy as np

SPLITS = ("train", "validation", "test")
BY = ("image", "shape")


def split_counts(n: int, fractions) -> list[int]:
  """How many of n items go to each split: largest remainders, and at least one for every nonzero fraction
  whenever n allows (so tiny datasets still have a validation and a test example)."""
  f = np.asarray(fractions, np.float64)
  if f.shape != (len(SPLITS),) or np.any(f < 0) or f.sum() <= 0:
    raise ValueError(
        f"config.data.split_fractions must be 3 non-negative numbers (train, validation, test), got "
        f"{tuple(fractions)}"
    )
  f = f / f.sum()
  counts = np.floor(n * f).astype(int)
  for i in np.argsort(-(n * f - counts), kind="stable")[: n - counts.sum()]:
    counts[i] += 1
  nonzero = np.flatnonzero(f > 0)
  if n >= len(nonzero):
    for i in nonzero:
      if counts[i] == 0:
        counts[i] += 1
        counts[np.argmax(counts)] -= 1
  return counts.tolist()


def assign(
    shape_ids: list[str], categories: list[str], images_per_shape: int, fractions, by: str = "image", seed: int = 0
) -> np.ndarray:
  """The split of every image.

  Args:
    shape_ids: the listed shapes (dataset shape index = position).
    categories: their categories.
    images_per_shape: K.
    fractions: (train, validation, test) shares.
    by: 'image' or 'shape'.
    seed: the config seed.

  Returns:
    int8[N, K]: index into `SPLITS` of image k of shape n.
  """
  if by not in BY:
    raise ValueError(f"config.data.split_by must be one of {BY}, got {by!r}")
  n = len(shape_ids)
  rng = np.random.default_rng([int(seed) % 2**63, 9527])  # 9527: the paper's list-shuffling seed
  if by == "image":
    order = rng.permutation(n * images_per_shape)
    flat = np.empty(n * images_per_shape, np.int8)
    flat[order] = np.repeat(np.arange(len(SPLITS)), split_counts(n * images_per_shape, fractions))
    return flat.reshape(n, images_per_shape)
  # Stratified: rank shapes within their category by a random permutation, interleave categories by relative rank.
  categories = np.asarray(categories)
  rank = np.empty(n, np.float64)
  for category in np.unique(categories):
    members = np.flatnonzero(categories == category)
    rank[members] = (rng.permutation(len(members)) + rng.uniform(size=len(members))) / len(members)
  per_shape = np.empty(n, np.int8)
  per_shape[np.argsort(rank, kind="stable")] = np.repeat(np.arange(len(SPLITS)), split_counts(n, fractions))
  return np.repeat(per_shape[:, None], images_per_shape, axis=1)


@dataclasses.dataclass(frozen=True)
class SplitPlan:
  """Everything `assign` needs but the usable shapes (small and picklable: Beam workers get it as it is)."""

  ids: tuple[str, ...]
  categories: tuple[str, ...]
  images_per_shape: int
  fractions: tuple[float, ...]
  by: str
  seed: int

  def assignment(self, usable: np.ndarray) -> np.ndarray:
    """int8[N, K] index into `SPLITS` of every image; -1 for the shapes that could not be loaded (`usable` False).

    Only usable shapes are assigned, so a skipped mesh never leaves a split empty that its share promised.
    """
    keep = np.flatnonzero(usable)
    out = np.full((len(self.ids), self.images_per_shape), -1, np.int8)
    out[keep] = assign(
        [self.ids[i] for i in keep],
        [self.categories[i] for i in keep],
        self.images_per_shape,
        self.fractions,
        self.by,
        self.seed,
    )
    return out


def present(assignment: np.ndarray, fractions) -> set[int]:
  """The splits that got images; warns about each with a nonzero share that got none."""
  got = set(np.unique(assignment[assignment >= 0]).tolist())
  for index, name in enumerate(SPLITS):
    if fractions[index] > 0 and index not in got:
      logging.warning("split %r has no images (too few usable shapes for its share); it is left out", name)
  return got
