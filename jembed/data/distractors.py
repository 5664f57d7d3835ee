"""Other shapes of the collection beside, behind and (at the edges) in front of the object of a training image.

Photos of furniture show more furniture: a table behind the chair, a sofa's arm at the border. Clutter made of real
objects (not only our 2-D occluder shapes) is what carries from synthetic training scenes to real photos (Tremblay et
al. 2018; Wu et al. 2024). Each image with distractors gets 1-`MAX_COUNT` of them, each a random view of a random
shape of the shape's distractor pool (a few other shapes of the collection, fixed per shape so one render call per
pool shape serves all its images), with its own random materials, lit by the image's lamps. Most are pasted into the
background beside or behind the object (the object is composited over them); some cover an edge of the image, in
front of it.
"""

import dataclasses

import numpy as np

from jembed.data import appearance
from jembed.render import base
from jembed.render import camera
from jembed.render import materials
from jembed.utils import resample

MAX_COUNT = 2
FRONT_SHARE = 0.25  # share of distractors drawn in front of the object (at the image's edges)


@dataclasses.dataclass(frozen=True)
class Distractor:
  """One distractor of one image.

  Attributes:
    pool_index: which shape of the image's distractor pool.
    azimuth, elevation: its view (degrees; tilt 0, the training distance).
    palette: its materials.
    height: its height as a fraction of the crop's height.
    center: (y, x) of its centre as fractions of the crop (outside [0, 1] = partly outside the image).
    front: drawn over the object (else behind it).
  """

  pool_index: int
  azimuth: float
  elevation: float
  palette: materials.Palette
  height: float
  center: tuple[float, float]
  front: bool


def sample(rng: np.random.Generator, probability: float, pool_size: int) -> tuple[Distractor, ...]:
  """The distractors of one image; no random draw at all when `probability` is 0 or the pool is empty."""
  if probability <= 0 or pool_size <= 0 or rng.random() >= probability:
    return ()
  out = []
  for _ in range(int(rng.integers(1, MAX_COUNT + 1))):
    index = int(rng.integers(pool_size))
    azimuth, elevation = rng.uniform(0, 360), rng.uniform(-10, 40)
    palette = appearance.sample_palette(rng)
    front = bool(rng.random() < FRONT_SHARE)
    side = 1.0 if rng.random() < 0.5 else -1.0
    reach = rng.uniform(0.65, 1.0) if front else rng.uniform(0.35, 0.9)  # in front: only its edge overlaps
    height = rng.uniform(0.5, 1.1)
    out.append(
        Distractor(index, azimuth, elevation, palette, height, (rng.uniform(0.35, 0.85), 0.5 + side * reach), front)
    )
  return tuple(out)


def render(
    renderer: base.Renderer,
    pool: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    requests: list[tuple[Distractor, object]],
    size: int,
    distance: float = 3.0,
) -> list[np.ndarray]:
  """uint8[size, size, 4] renders of `requests` ((distractor, its image's `Lights`)), one render call per pool shape.

  Args:
    renderer: a `base.Renderer`.
    pool: (vertices, faces, parts) of each pool shape.
    requests: what to render.
    size: render side (no supersampling: distractors are background).
    distance: camera distance.
  """
  out: list[np.ndarray | None] = [None] * len(requests)
  for index in sorted({d.pool_index for d, _ in requests}):
    which = [i for i, (d, _) in enumerate(requests) if d.pool_index == index]
    vertices, faces, parts = pool[index]
    views = camera.Views.make(
        [requests[i][0].azimuth for i in which],
        [requests[i][0].elevation for i in which],
        [0.0] * len(which),
        [distance] * len(which),
    )
    rendered = renderer.render(
        vertices,
        faces,
        views,
        size=size,
        lights=[requests[i][1] for i in which],
        appearance=materials.Appearance(parts, tuple(requests[i][0].palette for i in which)),
    )
    for i, rgba in zip(which, rendered.rgba):
      out[i] = rgba
  return out


def paste(image: np.ndarray, rgba: np.ndarray, distractor: Distractor) -> np.ndarray:
  """`image` (uint8[h, w, 3]) with the tight crop of `rgba` scaled to `distractor.height` x h and composited at
  `distractor.center` (clipped to the image)."""
  alpha = rgba[..., 3]
  rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
  if not len(rows):
    return image
  patch = rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
  h, w = image.shape[:2]
  ph = max(2, int(round(distractor.height * h)))
  pw = max(2, int(round(ph * patch.shape[1] / patch.shape[0])))
  patch = resample.stretch(patch, (ph, pw))
  top = int(round(distractor.center[0] * h - ph / 2))
  left = int(round(distractor.center[1] * w - pw / 2))
  y0, y1, x0, x1 = max(0, top), min(h, top + ph), max(0, left), min(w, left + pw)
  if y0 >= y1 or x0 >= x1:
    return image
  piece = patch[y0 - top : y1 - top, x0 - left : x1 - left].astype(np.float32)
  a = piece[..., 3:] / 255.0
  out = np.array(image, copy=True)
  region = out[y0:y1, x0:x1].astype(np.float32)
  out[y0:y1, x0:x1] = np.floor(np.clip(a * piece[..., :3] + (1 - a) * region, 0, 255) + 0.5).astype(np.uint8)
  return out
