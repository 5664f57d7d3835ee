"""A 2-D map of the shape space: 2-D Sammon of the LFD-HoG distances, category colours and rendered thumbnails."""

import matplotlib

matplotlib.use("Agg")  # Headless: a launch script on a server has no display.
from matplotlib import offsetbox  # pylint: disable=g-import-not-at-top,wrong-import-position
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import ml_collections  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from jembed.embedding import distances  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.embedding import sammon  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.render import thumbnails  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.shapes import sources  # pylint: disable=g-import-not-at-top,wrong-import-position

# The map's 2-D Sammon runs on at most this many shapes (a random subset beyond), so it stays quick for any N.
_MAX_MAP_POINTS = 3000


def spread_indices(xy: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
  """k indices of points spread over the map (greedy farthest-point sampling), for thumbnails that don't overlap."""
  k = min(k, len(xy))
  chosen = [int(np.random.default_rng(seed).integers(len(xy)))]
  dist = np.linalg.norm(xy - xy[chosen[0]], axis=1)
  for _ in range(k - 1):
    chosen.append(int(dist.argmax()))
    dist = np.minimum(dist, np.linalg.norm(xy - xy[chosen[-1]], axis=1))
  return np.array(chosen)


def map_points(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The map's points: (int[M] rows of the shapes on it, all or a random `_MAX_MAP_POINTS`; float32[M, 2] their 2-D
  Sammon points of the LFD-HoG distances of `features`, float32[N, 203760])."""
  n = len(features)
  subset = np.arange(n)
  if n > _MAX_MAP_POINTS:
    subset = np.sort(np.random.default_rng(0).choice(n, _MAX_MAP_POINTS, replace=False))
  d_sub = distances.pairwise_distances(features[subset] if n > _MAX_MAP_POINTS else features)
  return subset, np.asarray(sammon.sammon(d_sub, dim=2, max_iter=500, tol=1e-5, stop="change").points, np.float32)


def _thumbnails(config: ml_collections.ConfigDict, ids: list[str], size: int = 72) -> dict[str, np.ndarray]:
  """`render.thumbnails` of the shapes `ids` of the config's source, uint8[size, size, 3] on white."""
  wanted = set(ids)
  refs = [r for r in sources.list_shapes(config.shapes) if r.id in wanted]
  return thumbnails.thumbnails(refs, config.shapes.up_axis, config.shapes.front, size, config.render.backend)


def write_map(
    config: ml_collections.ConfigDict, features: np.ndarray, embedding, path: str, n_thumbs: int = 36
) -> None:
  """Writes the map PNG.

  Args:
    config: the run's config (shape source and renderer, for the thumbnails).
    features: float32[N, 203760] LFD-HoG descriptors (array or memmap); the map's distances come from them.
    embedding: the `ShapeEmbedding` (ids, categories, stress).
    path: output PNG.
    n_thumbs: shapes shown as thumbnails.
  """
  n = len(embedding.ids)
  subset, xy = map_points(features)
  categories = embedding.categories[subset]
  fig, ax = plt.subplots(figsize=(11, 9), dpi=110)
  names = sorted(set(categories.tolist()))
  cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
  for i, name in enumerate(names):
    m = categories == name
    ax.scatter(xy[m, 0], xy[m, 1], s=14, color=cmap(i % cmap.N), label=f"{name} ({int(m.sum())})", alpha=0.85)
  thumbs_at = spread_indices(xy, n_thumbs)
  thumbs = _thumbnails(config, [str(embedding.ids[subset[i]]) for i in thumbs_at])
  for i in thumbs_at:
    image = thumbs.get(str(embedding.ids[subset[i]]))
    if image is not None:
      color = cmap(names.index(categories[i]) % cmap.N)
      box = offsetbox.AnnotationBbox(
          offsetbox.OffsetImage(image, zoom=0.55),
          xy[i],
          frameon=True,
          bboxprops=dict(edgecolor=color, linewidth=1.5),
          pad=0.1,
      )
      ax.add_artist(box)
  ax.legend(loc="best", fontsize=8, markerscale=1.5)
  ax.set_title(
      f"Shape embedding: {n} shapes, {embedding.points.shape[1]}-D Sammon (stress {embedding.stress:.3g}); "
      f"shown as a 2-D Sammon map of the LFD-HoG distances",
      fontsize=10,
  )
  ax.set_xticks([])
  ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
