"""The shape map of the demo page: the 2-D map of the shape space, drawn once, with each query marked on a copy.

The map (every shape by category, the legend) is drawn once per workdir with matplotlib and cached in
`workdir/serve/` under a key of what it shows (the shape embedding's fingerprint, the LFD-HoG descriptors it is laid
out from, the drawing's version), so a restarted server neither lays it out (a 2-D Sammon) nor draws it again. A
query costs a copy of that picture with its star and the rings of its nearest shapes drawn on it (Pillow, a few
milliseconds), not a matplotlib figure (over a second on a loaded 2-core machine). The shapes' thumbnails are kept
there too (`thumbnail_folder`), one file each, rendered the first time a shape is shown.
"""

import dataclasses
import os

import matplotlib
from matplotlib import figure
from matplotlib import lines
from matplotlib.backends import backend_agg
import numpy as np
from PIL import Image
from PIL import ImageDraw

from jembed.api import embed
from jembed.embedding import descriptors
from jembed.embedding import out_of_sample
from jembed.embedding import shape_map
from jembed.render import thumbnails
from jembed.workdir import files
from jembed.workdir import paths
from jembed.workdir import records

_VERSION = 2  # of the drawing: a change of style gives new cache keys
_STAR, _RING = "#d62728", (0, 0, 0)
_STAR_RADIUS, _RING_RADIUS = 13, 7  # pixels: matplotlib's s=320 star and s=90 circle at 100 dpi


@dataclasses.dataclass(frozen=True)
class ShapeMap:
  """The 2-D map of the shape space (embedding/shape_map.py's: 2-D Sammon of the LFD-HoG distances), drawn.

  Attributes:
    rows: int[M] row of each map point in the shape embedding.
    xy: float32[M, 2].
    categories: str[M].
    picture: uint8[H, W, 3] the map: the points by category, the legend (with the query's marks in it).
    to_pixels: float64[2, 3] the affine map from a point (x, y, 1) to its (column, row) in `picture`.
  """

  rows: np.ndarray
  xy: np.ndarray
  categories: np.ndarray
  picture: np.ndarray
  to_pixels: np.ndarray


def _layout(workdir: str, model: embed.TrainedModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(rows, xy, categories) of the workdir's shapes, from its cached LFD-HoG descriptors (seconds for thousands)."""
  desc = descriptors.load_descriptors(workdir)
  subset, xy = shape_map.map_points(desc.features)
  row = {str(s): i for i, s in enumerate(model.shape_ids)}
  keep = [k for k, i in enumerate(subset) if desc.ids[i] in row]
  rows = np.array([row[desc.ids[subset[k]]] for k in keep], np.int64)
  return rows, xy[keep], np.asarray(model.shape_categories)[rows].astype(str)


def draw_base(rows: np.ndarray, xy: np.ndarray, categories: np.ndarray, title: str = "") -> ShapeMap:
  """The map drawn with matplotlib: `ShapeMap` with its picture and the pixel transform of its axes."""
  fig = figure.Figure(figsize=(6.4, 5.2), dpi=100)  # no pyplot: figures drawn by several threads at once
  canvas = backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  names = sorted(set(categories.tolist()))
  cmap = matplotlib.colormaps["tab20" if len(names) > 10 else "tab10"]
  for i, name in enumerate(names):
    m = categories == name
    ax.scatter(xy[m, 0], xy[m, 1], s=12, color=cmap(i % cmap.N), alpha=0.8, label=f"{name} ({int(m.sum())})")
  # The query's marks are drawn on copies later; their legend entries are drawn now.
  handles = [
      lines.Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec="black", label="nearest shapes"),
      lines.Line2D([], [], ls="", marker="*", ms=16, color=_STAR, mec="black", label="your photo"),
  ]
  ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, loc="best", fontsize=7, markerscale=0.9)
  ax.set_title(title or "shape map (2-D Sammon of the LFD-HoG distances)", fontsize=9)
  ax.set_xticks([])
  ax.set_yticks([])
  if len(xy):  # room for a query's star near the edge
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = 0.08 * np.maximum(hi - lo, 1e-6)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
  fig.tight_layout()
  canvas.draw()
  picture = np.asarray(canvas.buffer_rgba())[..., :3].copy()
  affine = ax.transData.get_affine().get_matrix()  # display pixels, y up from the bottom
  to_pixels = np.array([affine[0], [-affine[1, 0], -affine[1, 1], picture.shape[0] - affine[1, 2]]], np.float64)
  return ShapeMap(rows, np.asarray(xy, np.float32), np.asarray(categories).astype(str), picture, to_pixels)


def map_key(workdir: str, model: embed.TrainedModel) -> str:
  """The cache key of a workdir's map: what it shows (the embedding, the descriptors' file, the drawing's version)."""
  stat = os.stat(paths.lfd(workdir, paths.DESCRIPTORS))
  embedding = records.ShapeEmbedding(
      model.shape_ids, model.shape_categories, model.shape_points, 0.0, np.zeros(0, np.float32)
  ).fingerprint()
  return paths.cache_key({"embedding": embedding, "descriptors": [stat.st_size, stat.st_mtime_ns], "v": _VERSION})


def build_map(workdir: str, model: embed.TrainedModel) -> ShapeMap:
  """The workdir's map, read from `workdir/serve/` or laid out, drawn and written there (a read-only workdir only
  loses the cache)."""
  path = paths.serve_cache(workdir, f"shape_map-{map_key(workdir, model)}.npz")
  try:
    return ShapeMap(**files.load_npz(path))
  except (FileNotFoundError, files.DamagedFile, TypeError):
    pass
  the_map = draw_base(*_layout(workdir, model))
  try:
    files.save_npz(path, **dataclasses.asdict(the_map))
  except OSError:
    pass
  return the_map


def thumbnail_folder(workdir: str, size: int) -> str:
  """`workdir/serve/thumbnails-<key>/`: the page's shape thumbnails (`<row>.png`, `size` px), each rendered once per
  workdir, keyed by what they show (the shape manifest, which lists the meshes and their fingerprints, the size, the
  view and the drawing's version). A restarted server hands out the same files instead of loading and rendering the
  meshes of every answer's shapes again (at the first uploads of a fresh server, half of a batch's time)."""
  stat = os.stat(paths.manifest(workdir))
  view = [float(thumbnails.VIEW.azimuth[0]), float(thumbnails.VIEW.elevation[0])]
  key = paths.cache_key({"manifest": [stat.st_size, stat.st_mtime_ns], "size": size, "view": view, "v": _VERSION})
  return paths.serve_cache(workdir, f"thumbnails-{key}")


def place_on_map(shape_map_: ShapeMap, model: embed.TrainedModel, points: np.ndarray) -> np.ndarray:
  """float32[B, 2] (float32[2] for one point float32[D]): where joint-space points (float32[B, D], e.g. photos')
  sit on the map.

  The shape points are a Sammon embedding of the same LFD-HoG distances the map is drawn from, so a point's
  distances to the shapes estimate its LFD-HoG distances; the points are placed out of sample from them (pipeline
  §1.4), as new shapes would be, all in one solve. A point equal to a shape's point lands on that shape.
  """
  points = np.asarray(points, np.float32)
  batch = points.reshape(-1, model.shape_points.shape[1])
  a = np.linalg.norm(model.shape_points[shape_map_.rows][None] - batch[:, None], axis=2).astype(np.float32)
  xy = np.asarray(out_of_sample.embed_out_of_sample(shape_map_.xy, a, sharded=False))
  return xy[0] if points.ndim == 1 else xy


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
  angles = np.pi / 2 + np.arange(10) * np.pi / 5  # points up, as matplotlib's '*'
  radii = np.where(np.arange(10) % 2, 0.42 * r, r)
  return list(zip(cx + radii * np.cos(angles), cy - radii * np.sin(angles)))


def draw_map(shape_map_: ShapeMap, query_xy: np.ndarray | None = None, ringed: np.ndarray | None = None) -> np.ndarray:
  """uint8[H, W, 3]: the map with `ringed` shapes (embedding rows) circled and the query (float[2]) as a star."""
  image = Image.fromarray(shape_map_.picture)
  draw = ImageDraw.Draw(image)
  pixels = lambda xy: np.asarray(xy, np.float64) @ shape_map_.to_pixels[:, :2].T + shape_map_.to_pixels[:, 2]  # pylint: disable=unnecessary-lambda-assignment
  if ringed is not None and len(ringed):
    r = _RING_RADIUS
    for x, y in pixels(shape_map_.xy[np.isin(shape_map_.rows, ringed)]):
      draw.ellipse((x - r, y - r, x + r, y + r), outline=_RING, width=2)
  if query_xy is not None:
    x, y = pixels(np.reshape(query_xy, (1, 2)))[0]
    draw.polygon(_star(x, y, _STAR_RADIUS), fill=_STAR, outline=(0, 0, 0))
  return np.asarray(image)
