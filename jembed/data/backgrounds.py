"""Backgrounds behind the synthetic objects: crops of photos, flat gray, or built-in procedural clutter.

The paper (`background_overlay.m`, reference §2) puts 90 % of its renders on a random same-size crop of a random
SUN2012 photo and 10 % on one flat gray value U(0, 255); a photo smaller than the crop or grayscale is redrawn.

What we do differently, and why:
* **Photo scale.** The paper cropped its 960 x 540 renders' objects (hundreds of pixels across) from photos of similar
  size, so a crop shows a good part of a scene. Our renders are ~5x smaller, so an unscaled crop would be a blurry
  patch of one wall. Each photo is therefore resized so that its shorter side is `scale` x the render size (and never
  smaller than the crop), keeping the paper's object-to-scene proportion. `scale=0` restores the paper's no-resize rule.
* **Bad files** (unreadable, truncated, grayscale-only, tiny) are found once, when the folder is listed, and skipped
  with a report instead of being redrawn at every use.
* **No folder:** `procedural_background` draws textures, gradients and clutter shapes, so the demo needs no download.
"""

import collections
import dataclasses
import os

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFilter

from jembed.utils import images
from jembed.utils import resample

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
_MIN_SIDE = 16


@dataclasses.dataclass
class BackgroundReport:
  """Which background files were found and which were skipped, with the reason."""

  folder: str = ""
  n_found: int = 0
  skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)

  def summary(self) -> str:
    return (
        f"{self.n_found - len(self.skipped)} of {self.n_found} background photos usable in {self.folder!r}, "
        f"{len(self.skipped)} skipped"
    )

  def lines(self) -> list[str]:
    return [f"skipped background {path}: {reason}" for path, reason in self.skipped] + [self.summary()]


def _check_photo(path: str) -> str | None:
  """Why the photo cannot be used, or None. Decodes it (at 1/8 scale for JPEG) so truncated files show up."""
  try:
    with Image.open(path) as im:
      mode, size = im.mode, im.size
      im.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
      im.load()
  except Exception as e:  # pylint: disable=broad-except  # PIL raises many types for bad files
    return f"unreadable ({type(e).__name__}: {e})"
  if mode in images.GRAY_MODES:
    return f"grayscale (mode {mode}); the paper redraws grayscale backgrounds"
  if min(size) < _MIN_SIDE:
    return f"too small ({size[0]}x{size[1]})"
  return None


def list_photos(folder: str, report: BackgroundReport | None = None) -> list[str]:
  """Usable photos (.jpg .jpeg .png) under `folder`, searched recursively, sorted by path.

  Raises:
    FileNotFoundError: `folder` does not exist.
    ValueError: it holds no usable photo (the message says how many were skipped and why).
  """
  report = report if report is not None else BackgroundReport()
  folder = os.path.expanduser(folder)
  report.folder = folder
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"background folder {folder!r} (config.data.backgrounds) does not exist")
  paths = []
  for dirpath, dirnames, filenames in os.walk(folder):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    paths += [
        os.path.join(dirpath, f)
        for f in sorted(filenames)
        if f.lower().endswith(PHOTO_SUFFIXES) and not f.startswith(".")
    ]
  paths.sort()
  report.n_found += len(paths)
  usable = []
  for path in paths:
    reason = _check_photo(path)
    if reason is None:
      usable.append(path)
    else:
      report.skipped.append((path, reason))
  if not usable:
    raise ValueError(
        f"no usable background photos under {folder!r}: {report.summary()}"
        + "".join(f"\n  {line}" for line in report.lines()[:5])
    )
  return usable


class PhotoBackgrounds:
  """Random crops of photos, each photo decoded once per process at its working scale (an LRU cache)."""

  def __init__(self, paths: list[str], render_size: int, scale: float = 1.5, cache_size: int = 64):
    if not paths:
      raise ValueError("PhotoBackgrounds needs at least one photo")
    self.paths = list(paths)
    self.short_side = int(round(scale * render_size)) if scale > 0 else 0
    self._cache: collections.OrderedDict[tuple[int, int, int], np.ndarray] = collections.OrderedDict()
    self._cache_size = cache_size

  def _photo(self, index: int, min_h: int, min_w: int) -> np.ndarray:
    """uint8[H, W, 3] photo `index` at its working scale, at least min_h x min_w."""
    with Image.open(self.paths[index]) as im:
      swapped = images.swaps_axes(im)
      w, h = im.size[::-1] if swapped else im.size  # as shown, after the EXIF orientation
      s = self.short_side / min(w, h) if self.short_side else 1.0
      s = max(s, min_h / h, min_w / w)  # never smaller than the crop
      target = (max(min_w, round(w * s)), max(min_h, round(h * s)))
      key = (index,) + target
      if key in self._cache:
        self._cache.move_to_end(key)
        return self._cache[key]
      # JPEG decodes directly at 1/2, 1/4 or 1/8 scale when that is still >= target (in the file's own axes).
      im.draft("RGB", target[::-1] if swapped else target)
      photo = resample.stretch(np.asarray(images.to_rgb(im)), target[::-1])
    self._cache[key] = photo
    if len(self._cache) > self._cache_size:
      self._cache.popitem(last=False)
    return photo

  def crop(self, rng: np.random.Generator, h: int, w: int, jitter: float = 0.0) -> tuple[np.ndarray, str]:
    """A random photo's random h x w crop: (uint8[h, w, 3], the photo's file name).

    With probability `jitter` (no draw when 0) the crop covers U(1, 2.5) x (h, w) of the photo and is shrunk to
    h x w, mirrored with probability 0.5 and colour-jittered (`jitter_colors`): a few dozen photos then give many
    more different backgrounds.
    """
    index = int(rng.integers(len(self.paths)))
    augment = jitter > 0 and rng.random() < jitter
    scale = rng.uniform(1.0, 2.5) if augment else 1.0
    ch, cw = max(h, int(round(h * scale))), max(w, int(round(w * scale)))
    photo = self._photo(index, ch, cw)
    y = int(rng.integers(photo.shape[0] - ch + 1))
    x = int(rng.integers(photo.shape[1] - cw + 1))
    crop = photo[y : y + ch, x : x + cw]
    if augment:
      crop = resample.stretch(np.ascontiguousarray(crop), (h, w))
      if rng.random() < 0.5:
        crop = crop[:, ::-1]
      crop = jitter_colors(rng, crop)
    return crop, os.path.basename(self.paths[index])


def jitter_colors(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
  """uint8[h, w, 3] with brightness x U(0.6, 1.4), saturation x U(0.5, 1.5) and channel gains x U(0.9, 1.1)."""
  x = np.asarray(image, np.float32)
  gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
  x = gray[..., None] + rng.uniform(0.5, 1.5) * (x - gray[..., None])
  x = x * rng.uniform(0.6, 1.4) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
  return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _random_color(rng: np.random.Generator) -> tuple[int, int, int]:
  """A colour of a room or a street rather than of a paint box: random hue, mostly low saturation."""
  gray = rng.uniform(20, 235)
  saturation = rng.beta(1.2, 3.0)
  color = gray + saturation * (rng.uniform(0, 255, 3) - gray)
  return tuple(int(c) for c in np.clip(np.rint(color), 0, 255))


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """A linear blend of two colours at a random angle: float32[h, w, 3]."""
  angle = rng.uniform(0, 2 * np.pi)
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  t = np.cos(angle) * xx / max(w, 1) + np.sin(angle) * yy / max(h, 1)
  t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
  a, b = np.asarray(_random_color(rng), np.float32), np.asarray(_random_color(rng), np.float32)
  return a + t[..., None] * (b - a)


def _noise_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """Multi-octave value noise mapped between two colours (wood, stone, carpet-like): float32[h, w, 3]."""
  total = np.zeros((h, w), np.float32)
  amplitude = 1.0
  for cells in rng.integers(2, 5) * 2 ** np.arange(4):
    grid = rng.random((int(cells), int(cells))).astype(np.float32)
    layer = resample.resize(grid, (h, w))
    if rng.random() < 0.5:  # stretched along one axis: grain, fibres
      layer = resample.resize(resample.resize(layer, (max(1, h // 4), w)), (h, w))
    total += amplitude * layer
    amplitude *= 0.5
  t = (total - total.min()) / max(float(np.ptp(total)), 1e-6)
  a, b = np.asarray(_random_color(rng), np.float32), np.asarray(_random_color(rng), np.float32)
  return a + t[..., None] * (b - a)


def _tiles(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """Stripes or a checkerboard (floors, shelves, fabric): float32[h, w, 3]."""
  period = rng.uniform(6, max(8, min(h, w) / 2))
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  angle = rng.uniform(0, np.pi)
  u = np.cos(angle) * xx + np.sin(angle) * yy
  v = -np.sin(angle) * xx + np.cos(angle) * yy
  pattern = (np.floor(u / period) % 2) if rng.random() < 0.5 else (np.floor(u / period) + np.floor(v / period)) % 2
  a, b = np.asarray(_random_color(rng), np.float32), np.asarray(_random_color(rng), np.float32)
  return a + pattern[..., None] * (b - a)


def _clutter(rng: np.random.Generator, image: Image.Image, count: int) -> None:
  """Draws `count` random rectangles, ellipses, polygons and thick lines (the objects of a cluttered scene)."""
  w, h = image.size
  draw = ImageDraw.Draw(image)
  for _ in range(count):
    kind = rng.integers(4)
    x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
    x1, y1 = x0 + rng.uniform(0.05, 0.6) * w, y0 + rng.uniform(0.05, 0.6) * h
    color = _random_color(rng)
    if kind == 0:
      draw.rectangle((x0, y0, x1, y1), fill=color)
    elif kind == 1:
      draw.ellipse((x0, y0, x1, y1), fill=color)
    elif kind == 2:
      points = [(float(x), float(y)) for x, y in zip(rng.uniform(x0, x1, 5), rng.uniform(y0, y1, 5))]
      draw.polygon(points, fill=color)
    else:
      draw.line((x0, y0, x1, y1), fill=color, width=int(rng.integers(1, max(2, min(w, h) // 12))))


def occlude(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
  """uint8[H, W, 3] with 1-3 random opaque shapes (`_clutter`'s) drawn over it: foreground occluders."""
  out = Image.fromarray(np.asarray(image, np.uint8))
  _clutter(rng, out, int(rng.integers(1, 4)))
  return np.asarray(out)


def procedural_background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str]:
  """A built-in stand-in for a photo: a gradient, noise or tiled base with clutter shapes, slightly blurred.

  Returns:
    (uint8[h, w, 3], a short description such as 'procedural:noise+7').
  """
  kind = ("gradient", "noise", "tiles")[int(rng.integers(3))]
  base = {"gradient": _gradient, "noise": _noise_texture, "tiles": _tiles}[kind](rng, h, w)
  image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
  count = int(rng.integers(0, 13))
  _clutter(rng, image, count)
  image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.5))))  # camera blur, softens edges
  noisy = np.asarray(image, np.float32) + rng.normal(0, rng.uniform(0, 6), (h, w, 3))  # sensor noise
  return np.clip(np.rint(noisy), 0, 255).astype(np.uint8), f"procedural:{kind}+{count}"


@dataclasses.dataclass
class Backgrounds:
  """The background of each image: with probability `clutter_ratio` a photo crop (or a procedural scene when there
  are no photos), otherwise one flat gray value U(0, 255).

  Attributes:
    photos: photo crops, or None for procedural backgrounds.
    clutter_ratio: the paper's `g_syn_cluttered_bkg_ratio` 0.9 (Render for CNN: 0.8).
    procedural_share: with photos, the share of cluttered backgrounds that are procedural scenes instead (a few dozen
      photos repeat too often to stand for the world; 0 = photos only, and no extra random draw).
    jitter: probability that a photo crop is taken at a random scale, mirrored and colour-jittered
      (`PhotoBackgrounds.crop`); 0 = off, no extra random draw.
  """

  photos: PhotoBackgrounds | None = None
  clutter_ratio: float = 0.9
  procedural_share: float = 0.0
  jitter: float = 0.0

  def draw(self, rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, bool, str]:
    """(uint8[h, w, 3] background, cluttered?, its description: a file name, 'procedural:...' or 'gray:<v>')."""
    if rng.random() >= self.clutter_ratio:
      value = int(rng.integers(0, 256))
      return np.full((h, w, 3), value, np.uint8), False, f"gray:{value}"
    if self.photos is None or (self.procedural_share > 0 and rng.random() < self.procedural_share):
      image, name = procedural_background(rng, h, w)
    else:
      image, name = self.photos.crop(rng, h, w, self.jitter)
    return image, True, name
