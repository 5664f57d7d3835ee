"""Photo -> aligned 3D model: a shape rendered at a predicted viewpoint, and its silhouette drawn over the photo.

The network learned its viewpoint from training crops that were the object's (jittered) tight box stretched to a
square (`data/synthesis.py`). So a photo cropped to the object corresponds to the render's tight box stretched to the
photo's frame: `draw_pose_overlay` renders the shape at (azimuth, elevation, tilt), crops the render to the object
and stretches that crop's silhouette over the whole photo. Angles are degrees in the paper's convention
(`render/camera.py`): azimuth 0 sees the front, elevation 90 looks straight down, positive tilt turns the image
content clockwise; values mod 360 (as `jembed.predict_viewpoint` returns them) are fine.

  from jembed.api import pose_overlay
  overlay = pose_overlay.draw_pose_overlay(photo, shape.vertices, shape.faces, 30.0, 15.0, 0.0)  # uint8[H, W, 3]
  posed = pose_overlay.render_posed(shape.vertices, shape.faces, 30.0, 15.0, 0.0)                # uint8[S, S, 3]
"""

import numpy as np
from PIL import Image
from PIL import ImageFilter

from jembed.data import crops
from jembed.render import backend
from jembed.render import base
from jembed.render import camera
from jembed.utils import viz

OVERLAY_COLOR = (230, 60, 30)  # a red-orange that stands out on most photos


def signed_angle(degrees) -> np.ndarray:
  """Degrees mapped to [-180, 180) (elevation 350 reads -10)."""
  return np.mod(np.asarray(degrees, np.float64) + 180.0, 360.0) - 180.0


def render_object(
    vertices: np.ndarray,
    faces: np.ndarray,
    azimuth: float,
    elevation: float,
    tilt: float,
    *,
    size: int = 256,
    distance: float = camera.DISTANCE,
    renderer: base.Renderer | None = None,
    antialias: int = 2,
) -> np.ndarray:
  """The mesh at one view (gray, the LFD lamps), cropped to its tight box: uint8[h, w, 4], straight alpha.

  Args:
    vertices: float32[V, 3], a normalized shape (`shapes/loading.py`: unit radius, +Y up, front +X).
    faces: int32[F, 3].
    azimuth, elevation, tilt: degrees.
    size: the square render the crop comes from.
    distance: camera distance (the training images used 3).
    renderer: a `render.backend.get_renderer()` (default: 'auto').
    antialias: supersampling per axis.
  """
  renderer = renderer or backend.get_renderer("auto")
  views = camera.Views.make([azimuth], [elevation], [tilt], [distance])
  rgba = renderer.render(vertices, faces, views, size=size, antialias=antialias).rgba[0]
  top, bottom, left, right = crops.tight_box(rgba[..., 3])
  return rgba[top : bottom + 1, left : right + 1]


def render_posed(
    vertices: np.ndarray,
    faces: np.ndarray,
    azimuth: float,
    elevation: float,
    tilt: float,
    *,
    size: int = 256,
    renderer: base.Renderer | None = None,
) -> np.ndarray:
  """The shape rendered at the pose, cropped to the object and on white: uint8[h, w, 3] (h, w <= size)."""
  return viz.on_white(render_object(vertices, faces, azimuth, elevation, tilt, size=size, renderer=renderer))


def draw_pose_overlay(
    photo: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    azimuth: float,
    elevation: float,
    tilt: float,
    *,
    color: tuple[int, int, int] = OVERLAY_COLOR,
    opacity: float = 0.45,
    outline: int = 3,
    renderer: base.Renderer | None = None,
    render_size: int = 256,
) -> np.ndarray:
  """The shape's silhouette at the pose, stretched from its tight box to the photo's frame, drawn over the photo.

  Args:
    photo: uint8[H, W, 3], cropped to the object (as the training images were).
    vertices, faces: the shape (float32[V, 3], int32[F, 3]).
    azimuth, elevation, tilt: degrees.
    color: RGB of the silhouette's fill and outline.
    opacity: of the fill, in [0, 1]; the outline is opaque.
    outline: width of the outline in pixels of the photo (0 = none).
    renderer, render_size: as `render_object`.

  Returns:
    uint8[H, W, 3]: the photo with the tinted silhouette and its outline.
  """
  photo = np.asarray(photo)
  if photo.ndim != 3 or photo.shape[-1] != 3 or photo.dtype != np.uint8:
    raise ValueError(f"photo must be uint8[H, W, 3], got {photo.dtype}{list(photo.shape)}")
  h, w = photo.shape[:2]
  crop = render_object(vertices, faces, azimuth, elevation, tilt, size=render_size, renderer=renderer)
  mask = Image.fromarray(crop[..., 3]).resize((w, h), Image.BILINEAR)
  alpha = np.asarray(mask, np.float32)[..., None] / 255.0
  out = photo.astype(np.float32) * (1.0 - opacity * alpha) + np.asarray(color, np.float32) * opacity * alpha
  if outline > 0:
    solid = mask.point(lambda v: 255 if v >= 128 else 0)
    inner = solid.filter(ImageFilter.MinFilter(2 * outline + 1))
    edge = (np.asarray(solid) > 0) & ~(np.asarray(inner) > 0)
    out[edge] = color
  return np.clip(np.round(out), 0, 255).astype(np.uint8)
