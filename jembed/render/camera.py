"""Camera math shared by every renderer: views, look-at, perspective projection, pixel rays.

Conventions (one camera model for both backends, so each is the other's oracle):

* **World frame** = the mesh frame, **+Y up** as in ShapeNet. The paper's Blender scene is Z-up and imports OBJ files
  with axis_forward=-Z, axis_up=Y, i.e. Blender (X, Y, Z) = (x, -z, y) of the mesh.
* **Position.** The paper puts the camera at Blender (d·cos az·cos el, d·sin az·cos el, d·sin el); in our frame
  that is `(d·cos az·cos el, d·sin el, -d·sin az·cos el)`: az = el = 0 is on +X, el = 90 straight above, az = 90
  on -Z. Angles are in degrees, distance in world units.
* **Camera frame** (OpenGL): x right, y up, looking down -z. With tilt 0 the camera is upright: its up vector is
  d(position)/d(elevation), so it stays defined at el = ±90 (the paper's quaternion divides by zero there; ours is its
  continuous limit). Verified against the paper's `camPosToQuaternion` in tests/render/test_camera.py.
* **Tilt** θ is the paper's `camRotQuaternion(cx, cy, cz, θ)`: the camera turns by θ (right-handed) about the axis
  from the origin towards the camera, i.e. its backward axis. So for **positive tilt the image content turns
  clockwise** by θ on screen (the camera turns counter-clockwise).
* **Depth** = distance along the optical axis (-z_camera), in world units.
* **Field of view** `fov_deg` spans the *larger* image side (Blender's AUTO sensor fit); the paper's 35 mm lens on a
  32 mm sensor gives FOV_DEG = 2·atan(16/35) ≈ 49.13° (horizontal on its 960x540 frames; both sides on square ones).
* **Pixels**: `size` is `(height, width)` (or one int for square). Row 0 is the top. Pixel (i, j) covers
  [j, j+1) x [i, i+1) in continuous image coordinates (x = column, y = row, y down), so its centre is (j+.5, i+.5)
  and the optical axis hits (W/2, H/2).

Everything is numpy, float64 inside, float32 out.
"""

import dataclasses
import math
from typing import Sequence

import numpy as np

FOV_DEG = math.degrees(2.0 * math.atan(16.0 / 35.0))  # 35 mm lens, 32 mm sensor (paper's blank.blend)
NEAR, FAR = 0.1, 100.0  # the paper's clip range; both backends clip at these depths
# The paper's camera distance, for LFD views and training views alike: shapes are normalized into the unit sphere.
DISTANCE = 3.0


@dataclasses.dataclass(frozen=True)
class Views:
  """N camera views around the origin.

  Attributes:
    azimuth: float32[N], degrees.
    elevation: float32[N], degrees.
    tilt: float32[N], degrees (in-plane, positive turns the image content clockwise).
    distance: float32[N], world units from the origin.
  """

  azimuth: np.ndarray
  elevation: np.ndarray
  tilt: np.ndarray
  distance: np.ndarray

  @classmethod
  def make(cls, azimuth, elevation=0.0, tilt=0.0, distance=DISTANCE) -> "Views":
    """Broadcasts scalars / arrays to float32[N] each."""
    values = (azimuth, elevation, tilt, distance)
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, np.float32)) for a in values))
    return cls(*(np.ascontiguousarray(a.ravel()) for a in arrays))

  def __len__(self) -> int:
    return len(self.azimuth)

  def __getitem__(self, index) -> "Views":
    return Views(*(np.atleast_1d(getattr(self, f.name)[index]) for f in dataclasses.fields(self)))


def image_size(size: int | Sequence[int]) -> tuple[int, int]:
  """Returns (height, width) from an int (square) or a (height, width) pair."""
  if isinstance(size, (int, np.integer)):
    return int(size), int(size)
  height, width = size
  return int(height), int(width)


def focal_length(size: int | Sequence[int], fov_deg: float = FOV_DEG) -> float:
  """Focal length in pixels; the FOV spans the larger side (Blender's AUTO sensor fit)."""
  return 0.5 * max(image_size(size)) / math.tan(math.radians(fov_deg) / 2.0)


def camera_position(azimuth, elevation, distance) -> np.ndarray:
  """Paper's spherical placement mapped to our +Y-up frame; also used for lamps.

  Args:
    azimuth, elevation: degrees, broadcastable arrays.
    distance: world units, broadcastable.

  Returns:
    float32[..., 3] positions.
  """
  return (_backward(azimuth, elevation) * np.asarray(distance, np.float64)[..., None]).astype(np.float32)


def _backward(azimuth, elevation) -> np.ndarray:
  az, el = np.radians(np.asarray(azimuth, np.float64)), np.radians(np.asarray(elevation, np.float64))
  return np.stack([np.cos(az) * np.cos(el), np.sin(el) * np.ones_like(az), -np.sin(az) * np.cos(el)], -1)


def camera_frames(views: Views) -> tuple[np.ndarray, np.ndarray]:
  """Camera orientation and position per view, float64 (for the renderers' own precision).

  Returns:
    rotation: float64[N, 3, 3], world-to-camera; rows are the camera's right, up and backward axes in world coordinates.
    eye: float64[N, 3], camera positions.
  """
  az = np.radians(np.asarray(views.azimuth, np.float64))
  el = np.radians(np.asarray(views.elevation, np.float64))
  tilt = np.radians(np.asarray(views.tilt, np.float64))
  backward = _backward(views.azimuth, views.elevation)
  # Upright frame: right = -d(position)/d(azimuth) normalized, up = d(position)/d(elevation); both are closed forms
  # without the pole singularity of a cross product with world up.
  right0 = np.stack([-np.sin(az), np.zeros_like(az), -np.cos(az)], -1)
  up0 = np.stack([-np.sin(el) * np.cos(az), np.cos(el), np.sin(el) * np.sin(az)], -1)
  # Paper's camRotQuaternion: rotate the frame by +tilt about `backward` (Rodrigues with backward x right0 = up0).
  c, s = np.cos(tilt)[:, None], np.sin(tilt)[:, None]
  right = c * right0 + s * up0
  up = c * up0 - s * right0
  rotation = np.stack([right, up, backward], 1)
  eye = backward * np.asarray(views.distance, np.float64)[:, None]
  return rotation, eye


def look_at(views: Views) -> np.ndarray:
  """World-to-camera (view) matrices, OpenGL convention (camera looks down -z, y up).

  Returns:
    float32[N, 4, 4].
  """
  rotation, eye = camera_frames(views)
  view = np.zeros((len(views), 4, 4))
  view[:, :3, :3] = rotation
  view[:, :3, 3] = -np.einsum("nij,nj->ni", rotation, eye)
  view[:, 3, 3] = 1.0
  return view.astype(np.float32)


def intrinsics(size: int | Sequence[int], fov_deg: float = FOV_DEG) -> np.ndarray:
  """Pinhole matrix K mapping camera-space (x, -y, -z) to pixel coordinates (column, row) with pixel centres at +0.5.

  Returns:
    float32[3, 3].
  """
  height, width = image_size(size)
  f = focal_length(size, fov_deg)
  return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float32)


def perspective(
    size: int | Sequence[int], fov_deg: float = FOV_DEG, near: float = NEAR, far: float = FAR
) -> np.ndarray:
  """OpenGL projection matrix equal to `intrinsics` on the window (NDC depth in [-1, 1] between near and far).

  Returns:
    float32[4, 4].
  """
  height, width = image_size(size)
  f = focal_length(size, fov_deg)
  return np.array(
      [
          [2 * f / width, 0, 0, 0],
          [0, 2 * f / height, 0, 0],
          [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
          [0, 0, -1, 0],
      ],
      np.float32,
  )


def project(
    points: np.ndarray, views: Views, size: int | Sequence[int] = 128, fov_deg: float = FOV_DEG
) -> tuple[np.ndarray, np.ndarray]:
  """Projects world points into every view.

  Args:
    points: float[P, 3] world points.
    views: N views.
    size: image size, int or (height, width).
    fov_deg: field of view across the larger side.

  Returns:
    pixels: float32[N, P, 2] continuous (column, row); pixel (i, j) has its centre at (j + .5, i + .5).
    depth: float32[N, P], distance along the optical axis (negative behind the camera).
  """
  rotation, eye = camera_frames(views)
  cam = np.einsum("nij,npj->npi", rotation, np.asarray(points, np.float64)[None] - eye[:, None])
  depth = -cam[..., 2]
  k = intrinsics(size, fov_deg).astype(np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    col = k[0, 0] * cam[..., 0] / depth + k[0, 2]
    row = -k[1, 1] * cam[..., 1] / depth + k[1, 2]
  return np.stack([col, row], -1).astype(np.float32), depth.astype(np.float32)


def pixel_directions(size: int | Sequence[int], fov_deg: float = FOV_DEG) -> np.ndarray:
  """Camera-space ray directions through the pixel centres, scaled so that their -z component is 1.

  With this scaling a ray's hit parameter t *is* the depth along the optical axis.

  Returns:
    float64[H, W, 3].
  """
  height, width = image_size(size)
  f = focal_length(size, fov_deg)
  x = (np.arange(width) + 0.5 - width / 2) / f
  y = -(np.arange(height) + 0.5 - height / 2) / f
  xx, yy = np.meshgrid(x, y)
  return np.stack([xx, yy, -np.ones_like(xx)], -1)
