"""One synthetic training image, as the paper makes it (reference §2, "Render" to "Background"):

  random view + random lamps + albedo  ->  render (straight-alpha RGBA)  ->  jittered crop of the tight box
  ->  alpha-composite over a background, I = αF + (1 - α)B  ->  stretch to image_size x image_size.

The stretch does not keep the aspect ratio: the paper's crops go to CaffeNet's 227 x 227 input stretched (Render for
CNN: PIL ANTIALIAS into the LMDB), so an object's proportions vary with its crop; we do the same, with our own kernel
(`jembed.utils.resample.stretch`: MATLAB's antialiased bicubic), so the images do not depend on Pillow's version.

Randomness: each image has its own `np.random.Generator` from (seed, shape id, image index) (`example_rng`), drawn in a
fixed order (view, lights, albedo before rendering; crop and background after), so an image never depends on which
worker made it or on the other images.

Appearance (`appearance`): 'tint' renders gray and tints it, 'jitter' albedo drawing a gray level and a colour tint
per image ('gray' albedo: the LFD stage's plain 0.48); 'random' gives each part of the mesh its own random material
per image (colour, solid texture, specular lobe: `appearance.py`, rendered by `jembed.render.materials`).
Distractors (other shapes of the collection, `distractors.py`) and JPEG re-encoding at a random quality (`jpeg`) make
the images look more like photos. Every new switch draws nothing when it is off, so datasets of the older settings
keep their images.
"""

import dataclasses
import io
import zlib

import numpy as np
from PIL import Image

from jembed.data import appearance as appearance_lib
from jembed.data import backgrounds as backgrounds_lib
from jembed.data import crops
from jembed.data import distractors as distractors_lib
from jembed.data import viewpoints
from jembed.render import base
from jembed.render import camera
from jembed.render import lights as lights_lib
from jembed.render import materials
from jembed.render import shading
from jembed.utils import resample

ALBEDO_MODES = ("gray", "jitter")
APPEARANCES = ("tint", "random", "own", "mixed")


@dataclasses.dataclass(frozen=True)
class SynthesisSettings:
  """Everything that shapes one image (picklable: worker processes get a copy).

  Attributes:
    image_size: side of the stored square image (the paper: 227).
    render_size: side of the square render the object is cropped from.
    antialias: supersampling per axis of the render.
    max_lamps: 0..max_lamps point lamps per image (paper 4, Render for CNN 6).
    ambient: (low, high) of the uniform ambient light.
    albedo: 'jitter' (gray level from `albedo_range` and a colour tint up to `tint`) or 'gray' (0.48, no tint).
    albedo_range: (low, high) of the jittered gray level.
    tint: largest relative deviation of a colour channel from the gray level.
    truncation: the crop jitter ratio (paper 0.05); 0 = the tight box.
    context: each side of the tight box first moves out by U(0, context) x its side (real photo crops show some
      surroundings; the paper's crops did not): 0 = off, and no random draw, so existing datasets are unchanged.
    occluders: probability that 1-3 random shapes are drawn over the composited image (books, cushions and chair
      backs cover furniture in photos); 0 = off, no random draw.
    appearance: 'tint' (gray render, `albedo` and `tint`) | 'random' (random materials per part, `appearance.py`) |
      'own' (the mesh's own colours and textures, `loading.read_appearance`; a random colour per part when it has
      none) | 'mixed' (own or random, half the images each).
    share: with 'random', probability that all parts of an image share one material.
    distractors: probability that an image shows 1-2 other shapes of the collection (`distractors.py`); 0 = off.
    jpeg: probability that the finished image is JPEG re-encoded; 0 = off, no random draw.
    jpeg_quality: (low, high) of its quality, drawn uniformly (integers).
  """

  image_size: int = 128
  render_size: int = 192
  antialias: int = 2
  max_lamps: int = 4
  ambient: tuple[float, float] = (0.0, 1.0)
  albedo: str = "jitter"
  albedo_range: tuple[float, float] = (0.3, 0.8)
  tint: float = 0.3
  truncation: float = 0.05
  context: float = 0.0
  occluders: float = 0.0
  appearance: str = "tint"
  share: float = 0.4
  distractors: float = 0.0
  jpeg: float = 0.0
  jpeg_quality: tuple[int, int] = (30, 95)

  def __post_init__(self):
    if self.albedo not in ALBEDO_MODES:
      raise ValueError(f"config.data.albedo must be one of {ALBEDO_MODES}, got {self.albedo!r}")
    if self.appearance not in APPEARANCES:
      raise ValueError(f"config.data.appearance must be one of {APPEARANCES}, got {self.appearance!r}")

  @classmethod
  def from_config(cls, data) -> "SynthesisSettings":
    """From `config.data`; render_size 0 means 1.5 x image_size (room for the crop jitter around the object)."""
    image_size = int(data.image_size)
    return cls(
        image_size=image_size,
        render_size=int(data.render_size) or (3 * image_size) // 2,
        antialias=int(data.antialias),
        max_lamps=int(data.max_lamps),
        ambient=tuple(data.ambient),
        albedo=str(data.albedo),
        albedo_range=tuple(data.albedo_range),
        tint=float(data.tint),
        truncation=float(data.truncation),
        context=float(data.get("context", 0.0)),
        occluders=float(data.get("occluders", 0.0)),
        appearance=str(data.get("appearance", "tint")),
        share=float(data.get("share", 0.4)),
        distractors=float(data.get("distractors", 0.0)),
        jpeg=float(data.get("jpeg", 0.0)),
        jpeg_quality=tuple(int(q) for q in data.get("jpeg_quality", (30, 95))),
    )


@dataclasses.dataclass(frozen=True)
class ImageParams:
  """What is drawn before rendering one image.

  Attributes:
    azimuth, elevation, tilt, distance: the view (degrees, world units); these are the image's labels.
    lights: the image's lamps and ambient light.
    albedo: gray level rendered.
    tint: float32[3] per-channel factors (max 1) of the albedo, applied to the rendered gray in linear light.
    palette: the materials of the parts ('random' appearance), else None (the gray render is tinted).
    distractors: the other shapes shown in the image.
  """

  azimuth: float
  elevation: float
  tilt: float
  distance: float
  lights: lights_lib.Lights
  albedo: float = shading.DEFAULT_ALBEDO
  tint: np.ndarray = dataclasses.field(default_factory=lambda: np.ones(3, np.float32))
  palette: materials.Palette | None = None
  distractors: tuple = ()


def example_rng(seed: int, shape_id: str, image_index: int) -> np.random.Generator:
  """The generator of one image: a function of (seed, shape id, image index) only."""
  key = zlib.crc32(shape_id.encode("utf-8"))
  return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, key, int(image_index)]))


def sample_lights(
    rng: np.random.Generator, max_lamps: int = 4, ambient: tuple[float, float] = (0.0, 1.0)
) -> lights_lib.Lights:
  """The paper's random lights: ambient U(0, 1); randint(0, 4) lamps at azimuth U(0, 360), elevation U(-90, 90),
  distance U(8, 20), energy N(2, 2) (negative energies darken, as in the paper)."""
  amb = rng.uniform(*ambient)
  n = int(rng.integers(0, max_lamps + 1))
  azimuth, elevation = rng.uniform(0, 360, n), rng.uniform(-90, 90, n)
  distance, energy = rng.uniform(8, 20, n), rng.normal(2, 2, n)
  return lights_lib.Lights.spherical(amb, azimuth, elevation, distance, energy)


def sample_surface(rng: np.random.Generator, settings: SynthesisSettings) -> tuple[float, np.ndarray]:
  """(albedo rendered, float32[3] tint) of one image; see the module docstring."""
  if settings.albedo == "gray":
    return shading.DEFAULT_ALBEDO, np.ones(3, np.float32)
  level = rng.uniform(*settings.albedo_range)
  color = level * (1.0 + rng.uniform(-settings.tint, settings.tint, 3))
  top = float(np.max(color))
  # Rendering at the brightest channel's albedo and scaling the others down equals a coloured Lambertian surface
  # under white light wherever the gray value is not clipped at 1.
  return top, (color / top).astype(np.float32)


def sample_params(
    rng: np.random.Generator,
    distribution: viewpoints.ViewDistribution,
    settings: SynthesisSettings,
    pool_size: int = 0,
) -> ImageParams:
  """View, lights, surface, materials and distractors of one image, in this order from `rng` (`pool_size`: shapes
  in the image's distractor pool)."""
  view = distribution.sample(rng, 1)
  lights = sample_lights(rng, settings.max_lamps, settings.ambient)
  albedo, tint = sample_surface(rng, settings)
  palette = None
  if settings.appearance != "tint":
    palette, albedo, tint = appearance_lib.sample_palette(rng, settings.share), 1.0, np.ones(3, np.float32)
    if settings.appearance == "own" or (settings.appearance == "mixed" and rng.random() < 0.5):
      palette = appearance_lib.own(palette)
  return ImageParams(
      float(view.azimuth[0]),
      float(view.elevation[0]),
      float(view.tilt[0]),
      float(view.distance[0]),
      lights,
      albedo,
      tint,
      palette,
      distractors_lib.sample(rng, settings.distractors, pool_size),
  )


def composite(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
  """I = αF + (1 - α)B with straight alpha, rounded half up like MATLAB's uint8().

  Args:
    rgb: uint8 or float[H, W, 3] foreground colour (straight, not premultiplied).
    alpha: uint8[H, W] coverage, 255 = opaque.
    background: uint8[H, W, 3].

  Returns:
    uint8[H, W, 3].
  """
  a = np.asarray(alpha, np.float32)[..., None] / 255.0
  out = a * np.asarray(rgb, np.float32) + (1.0 - a) * np.asarray(background, np.float32)
  return np.floor(np.clip(out, 0, 255) + 0.5).astype(np.uint8)


def stretch(image: np.ndarray, size: int) -> np.ndarray:
  """uint8[h, w, C] -> uint8[size, size, C], aspect ratio not kept (the paper's CNN input), `resample.stretch`."""
  return resample.stretch(image, size)


def apply_tint(rgb: np.ndarray, tint: np.ndarray) -> np.ndarray:
  """Colours a gray render: uint8[..., 3] -> float32[..., 3] in [0, 255].

  The renderers store `shading.display(linear)` (sRGB, like Blender's PNGs), so the tint multiplies the linear value
  and the result is encoded again: a coloured diffuse surface under white light.
  """
  tint = np.asarray(tint, np.float32)
  if np.all(tint == 1.0):
    return rgb.astype(np.float32)
  x = rgb.astype(np.float32) / 255.0
  linear = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)  # inverse of shading.display
  return shading.display(linear * tint).astype(np.float32) * 255.0


def reencode_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
  """uint8[H, W, 3] after a round trip through Pillow's JPEG at `quality` (4:2:0 chroma, as most cameras)."""
  buffer = io.BytesIO()
  Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="JPEG", quality=int(quality))
  with Image.open(buffer) as im:
    return np.asarray(im.convert("RGB"))


def finish_image(
    rgba: np.ndarray,
    params: ImageParams,
    rng: np.random.Generator,
    backgrounds: backgrounds_lib.Backgrounds,
    settings: SynthesisSettings,
    distractor_renders: list[np.ndarray] = (),
) -> tuple[np.ndarray, dict]:
  """Crop, tint, composite and stretch one render.

  Args:
    rgba: uint8[H, W, 4] straight-alpha render of `params`.
    params: what it was rendered with (its tint is applied here).
    rng: the image's generator, after `sample_params`.
    backgrounds: where the background comes from.
    settings: crop ratio and output size.
    distractor_renders: uint8[h, w, 4] of each of `params.distractors`.

  Returns:
    (uint8[S, S, 3] image, {'clutter': bool, 'background': str, 'box': (top, bottom, left, right)}).
  """
  box = crops.tight_box(rgba[..., 3])
  if settings.context > 0:
    box = crops.widen_box(box, rng, settings.context, rgba.shape[:2])
  box = crops.jitter_box(box, rng, settings.truncation, rgba.shape[:2])
  top, bottom, left, right = box
  crop = rgba[top : bottom + 1, left : right + 1]
  rgb = apply_tint(crop[..., :3], params.tint)
  background, clutter, name = backgrounds.draw(rng, crop.shape[0], crop.shape[1])
  pairs = list(zip(params.distractors, distractor_renders))
  for distractor, render in pairs:
    if not distractor.front:
      background = distractors_lib.paste(background, render, distractor)
  image = composite(rgb, crop[..., 3], background)
  for distractor, render in pairs:
    if distractor.front:
      image = distractors_lib.paste(image, render, distractor)
  if settings.occluders > 0 and rng.random() < settings.occluders:
    image = backgrounds_lib.occlude(rng, image)
  image = stretch(image, settings.image_size)
  if settings.jpeg > 0 and rng.random() < settings.jpeg:
    image = reencode_jpeg(image, rng.integers(settings.jpeg_quality[0], settings.jpeg_quality[1] + 1))
  return image, {"clutter": clutter, "background": name, "box": box}


def synthesize(
    renderer: base.Renderer,
    vertices: np.ndarray,
    faces: np.ndarray,
    params: list[ImageParams],
    rngs: list[np.random.Generator],
    backgrounds: backgrounds_lib.Backgrounds,
    settings: SynthesisSettings,
    parts: np.ndarray | None = None,
    pool: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = (),
    corner_colors: np.ndarray | None = None,
) -> list[tuple[np.ndarray, dict]]:
  """Images of one mesh, all its views in one render call (and one per distractor pool shape).

  Args:
    renderer: a `base.Renderer`.
    vertices: float32[V, 3] normalized mesh (+Y up, front +X, unit radius).
    faces: int32[F, 3].
    params: one `ImageParams` per image.
    rngs: each image's generator, already past `sample_params` (crop and background draw from it).
    backgrounds: background source.
    settings: sizes and crop ratio.
    parts: int32[F] part of each face ('random' appearance); None = `appearance.mesh_parts` of the mesh.
    pool: (vertices, faces, parts) of the distractor pool shapes `params` index.
    corner_colors: uint8[F, 3, 3] the mesh's own sRGB colours ('own' / 'mixed'), or None.

  Returns:
    One (uint8[S, S, 3], info) per image, as `finish_image`.
  """
  if not params:
    return []
  views = camera.Views.make(
      [p.azimuth for p in params], [p.elevation for p in params], [p.tilt for p in params], [p.distance for p in params]
  )
  surface = None
  if params[0].palette is not None:
    parts = appearance_lib.mesh_parts(vertices, faces) if parts is None else parts
    own = None if corner_colors is None else appearance_lib.to_linear(corner_colors)
    surface = materials.Appearance(parts, tuple(p.palette for p in params), own)
  out = renderer.render(
      vertices,
      faces,
      views,
      size=settings.render_size,
      lights=[p.lights for p in params],
      albedo=np.asarray([p.albedo for p in params], np.float32),
      antialias=settings.antialias,
      appearance=surface,
  )
  requests = [(d, p.lights) for p in params for d in p.distractors]
  rendered = distractors_lib.render(renderer, list(pool), requests, (2 * settings.render_size) // 3) if requests else []
  per_image, start = [], 0
  for p in params:
    per_image.append(rendered[start : start + len(p.distractors)])
    start += len(p.distractors)
  return [
      finish_image(rgba, p, rng, backgrounds, settings, extra)
      for rgba, p, rng, extra in zip(out.rgba, params, rngs, per_image)
  ]


def encode_png(image: np.ndarray) -> bytes:
  """PNG bytes of a uint8[H, W, 3] image, written by Pillow (no TensorFlow)."""
  buffer = io.BytesIO()
  Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
  return buffer.getvalue()
