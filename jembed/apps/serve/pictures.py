"""The shape map of the demo page: the 2-D map of the shape space with a query marked on it."""

import dataclasses

import matplotlib
from matplotlib import figure
from matplotlib.backends import backend_agg
import numpy as np

from jembed.api import embed
from jembed.embedding import descriptors
from jembed.embedding import out_of_sample
from jembed.embedding import shape_map


@dataclasses.dataclass(frozen=True)
class ShapeMap:
  """The 2-D map of the shape space (embedding/shape_map.py's: 2-D Sammon of the LFD-HoG distances).

  Attributes:
    rows: int[M] row of each map point in the shape embedding.
    xy: float32[M, 2].
    categories: str[M].
  """

  rows: np.ndarray
  xy: np.ndarray
  categories: np.ndarray


def build_map(workdir: str, model: embed.TrainedModel) -> ShapeMap:
  """The map of the workdir's shapes, from its cached LFD-HoG descriptors (seconds for a few thousand shapes)."""
  desc = descriptors.load_descriptors(workdir)
  subset, xy = shape_map.map_points(desc.features)
  row = {str(s): i for i, s in enumerate(model.shape_ids)}
  keep = [k for k, i in enumerate(subset) if desc.ids[i] in row]
  rows = np.array([row[desc.ids[subset[k]]] for k in keep], np.int64)
  return ShapeMap(rows=rows, xy=xy[keep], categories=np.asarray(model.shape_categories)[rows].astype(str))


def place_on_map(shape_map_: ShapeMap, model: embed.TrainedModel, point: np.ndarray) -> np.ndarray:
  """float32[2]: where a joint-space point (float32[D]) sits on the map.

  The shape points are a Sammon embedding of the same LFD-HoG distances the map is drawn from, so the point's
  distances to the shapes estimate its LFD-HoG distances; the point is placed out of sample from them (pipeline §1.4),
  as a new shape would be. A point equal to a shape's point lands on that shape.
  """
  a = np.linalg.norm(model.shape_points[shape_map_.rows] - np.asarray(point, np.float32)[None], axis=1)
  return np.asarray(out_of_sample.embed_out_of_sample(shape_map_.xy, a[None].astype(np.float32), sharded=False))[0]


def draw_map(
    shape_map_: ShapeMap, query_xy: np.ndarray | None = None, ringed: np.ndarray | None = None, title: str = ""
) -> np.ndarray:
  """uint8[H, W, 3]: the map's points by category, `ringed` (embedding rows) circled, the query as a star."""
  fig = figure.Figure(figsize=(6.4, 5.2), dpi=100)  # no pyplot: figures drawn by several threads at once
  canvas = backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  names = sorted(set(shape_map_.categories.tolist()))
  cmap = matplotlib.colormaps["tab20" if len(names) > 10 else "tab10"]
  for i, name in enumerate(names):
    m = shape_map_.categories == name
    ax.scatter(
        shape_map_.xy[m, 0],
        shape_map_.xy[m, 1],
        s=12,
        color=cmap(i % cmap.N),
        alpha=0.8,
        label=f"{name} ({int(m.sum())})",
    )
  if ringed is not None and len(ringed):
    on_map = np.isin(shape_map_.rows, ringed)
    ax.scatter(
        shape_map_.xy[on_map, 0],
        shape_map_.xy[on_map, 1],
        s=90,
        facecolors="none",
        edgecolors="black",
        linewidths=1.2,
        label="nearest shapes",
    )
  if query_xy is not None:
    ax.scatter(
        [query_xy[0]],
        [query_xy[1]],
        s=320,
        marker="*",
        color="#d62728",
        edgecolors="black",
        linewidths=1.0,
        label="your photo",
        zorder=5,
    )
  ax.legend(loc="best", fontsize=7, markerscale=0.9)
  ax.set_title(title or "shape map (2-D Sammon of the LFD-HoG distances)", fontsize=9)
  ax.set_xticks([])
  ax.set_yticks([])
  fig.tight_layout()
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()
