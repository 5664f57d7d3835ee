"""Random viewpoints of the synthetic training images, per category, as Render for CNN / the paper sample them.

The paper (`gen_view_distribution_files.py`, reference §2) draws each view from a per-category histogram:

  azimuth   = 22.5·k + U(-11.25, 11.25),   k ~ the 16 azimuth bin weights,
  elevation = 10·j - 85 + U(-5, 5),        j ~ the 18 elevation bin weights (chairs peak at j = 10: 15 deg),
  tilt      ~ N(0, s),                     s = 3 deg (chair, car, table) or 10 deg (airplane, lamp),
  distance  = 3.

The histograms are the category table's (`shapes.taxonomy.TABLE`, which also knows every source's aliases);
categories without a row of their own in the paper (sofa, bench, ...) take the chair's distribution, the table's
documented default.

A user's own distribution comes from text files like the original `view_distribution/<synset>.txt`: one view per line,
`azimuth elevation tilt distance` (degrees, world units), from which each image draws one line with replacement (as
`render_syn_shape_list.py` did). `write_view_file` writes such a file from any distribution, e.g. to edit it.

Angles are degrees; azimuth in [0, 360), elevation in [-90, 90]. All sampling takes a seeded `np.random.Generator`.
"""

import dataclasses
import os

import numpy as np

from jembed.render import camera
from jembed.shapes import taxonomy

AZIMUTH_BIN, ELEVATION_BIN = 22.5, 10.0


@dataclasses.dataclass(frozen=True)
class HistogramViews:
  """The paper's binned view sampler (see the module docstring).

  Attributes:
    azimuth_weights: float64[16] relative weights of the 22.5 deg azimuth bins centred at 0, 22.5, ...
    elevation_weights: float64[18] relative weights of the 10 deg elevation bins centred at -85, -75, ..., 85.
    tilt_std: degrees.
    distance: camera distance (world units).
  """

  azimuth_weights: tuple[float, ...]
  elevation_weights: tuple[float, ...]
  tilt_std: float
  distance: float = camera.DISTANCE

  def __post_init__(self):
    if len(self.azimuth_weights) != 16 or len(self.elevation_weights) != 18:
      raise ValueError(
          "expected 16 azimuth and 18 elevation bin weights, got "
          f"{len(self.azimuth_weights)} and {len(self.elevation_weights)}"
      )

  def sample(self, rng: np.random.Generator, n: int) -> camera.Views:
    """n views: bins by weight, then uniform jitter within the bin; tilt Gaussian."""
    az_p = np.asarray(self.azimuth_weights, np.float64)
    el_p = np.asarray(self.elevation_weights, np.float64)
    k = rng.choice(16, size=n, p=az_p / az_p.sum())
    j = rng.choice(18, size=n, p=el_p / el_p.sum())
    azimuth = np.mod(AZIMUTH_BIN * k + rng.uniform(-AZIMUTH_BIN / 2, AZIMUTH_BIN / 2, n), 360.0)
    elevation = ELEVATION_BIN * j - 85.0 + rng.uniform(-ELEVATION_BIN / 2, ELEVATION_BIN / 2, n)
    tilt = rng.normal(0.0, self.tilt_std, n)
    return camera.Views.make(azimuth, elevation, tilt, self.distance)


@dataclasses.dataclass(frozen=True)
class SampledViews:
  """Draws lines of a view file with replacement, as the paper drew its 125 views per shape.

  Attributes:
    samples: float32[M, 4] rows (azimuth, elevation, tilt, distance).
    distance: if not None, replaces the file's distances (the paper fixed 3 and ignored the column).
    source: where the samples came from (for messages).
  """

  samples: np.ndarray
  distance: float | None = camera.DISTANCE
  source: str = ""

  def sample(self, rng: np.random.Generator, n: int) -> camera.Views:
    rows = self.samples[rng.integers(0, len(self.samples), size=n)]
    distance = rows[:, 3] if self.distance is None else self.distance
    return camera.Views.make(np.mod(rows[:, 0], 360.0), rows[:, 1], rows[:, 2], distance)


ViewDistribution = HistogramViews | SampledViews


def paper_distribution(category: str, distance: float = camera.DISTANCE) -> HistogramViews:
  """The paper's histogram sampler of `category`; categories it had no row for get the chair's."""
  azimuth, elevation, tilt = taxonomy.lookup(category).view_histogram
  return HistogramViews(tuple(map(float, azimuth)), tuple(map(float, elevation)), tilt, distance)


def read_view_file(path: str | os.PathLike) -> np.ndarray:
  """float32[M, 4] (azimuth, elevation, tilt, distance) from a `view_distribution/*.txt` file.

  Lines hold 4 whitespace-separated numbers; blank lines and `#` comments are ignored; 3 numbers mean distance 3.

  Raises:
    ValueError: a malformed line (the message names the file and line) or no samples at all.
  """
  rows = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      line = line.split("#")[0].strip()
      if not line:
        continue
      try:
        values = [float(v) for v in line.split()]
      except ValueError:
        values = []
      if len(values) not in (3, 4) or not np.all(np.isfinite(values)):
        raise ValueError(f"{path}:{number}: expected 'azimuth elevation tilt [distance]', got {line!r}")
      rows.append(values + [camera.DISTANCE] * (4 - len(values)))
  if not rows:
    raise ValueError(f"no view samples in {path}")
  return np.asarray(rows, np.float32)


def write_view_file(path: str | os.PathLike, views: camera.Views) -> None:
  """Writes views as `azimuth elevation tilt distance` lines (the paper's view_distribution format)."""
  with open(path, "w") as f:
    for row in zip(views.azimuth, views.elevation, views.tilt, views.distance):
      f.write(" ".join(f"{v:.6g}" for v in row) + "\n")


def _view_file(folder: str, category: str) -> str | None:
  """`folder/<name>.txt` for the category as given, its canonical name or its synset id, if one exists."""
  canonical = taxonomy.canonical(category)
  synsets = taxonomy.TABLE[canonical].synsets if canonical in taxonomy.TABLE else ()
  for name in (str(category), canonical, *synsets):
    path = os.path.join(folder, f"{name}.txt")
    if os.path.isfile(path):
      return path
  return None


def distribution_for(category: str, views_dir: str = "", distance: float | None = camera.DISTANCE) -> ViewDistribution:
  """The view distribution of a category: the user's file in `views_dir` if there is one, else the paper's.

  Args:
    category: the shape's category (name or synset id).
    views_dir: folder of `<category>.txt` view files (the category as the source names it, its canonical name
      'chair'/'car'/... or its ShapeNet synset id); empty or no matching file = the paper's histogram.
    distance: camera distance of every view; None keeps each file line's own distance (as Render for CNN did).
  """
  if views_dir:
    if not os.path.isdir(os.path.expanduser(views_dir)):
      raise FileNotFoundError(f"view distribution folder {views_dir!r} (config.data.views_dir) does not exist")
    path = _view_file(os.path.expanduser(views_dir), category)
    if path is not None:
      return SampledViews(read_view_file(path), distance, path)
  return paper_distribution(category, camera.DISTANCE if distance is None else distance)
