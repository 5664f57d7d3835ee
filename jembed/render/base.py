"""The renderer interface and what both backends share (a leaf: the backends import it, not `backend`).

Both backends sample the same supersampled pixel grid (`antialias` = k: k x k samples per pixel at the sub-pixel
centres) and reduce it here, so their outputs are comparable sample for sample:

* `rgba`: uint8[N, H, W, 4], **straight (not premultiplied) alpha**, like Blender's PNGs: RGB = gray (R = G = B) is
  the mean over the covered samples, alpha = round(255 · covered fraction); background pixels are (0, 0, 0, 0).
* `depth`: float32[N, H, W], distance along the optical axis (world units), mean over the covered samples; 0 where
  no sample hits a surface.
"""

import dataclasses
from typing import Protocol, Sequence

import numpy as np

from jembed.render import camera
from jembed.render import lights as lights_lib
from jembed.render import materials
from jembed.render import shading


@dataclasses.dataclass(frozen=True)
class RenderOutput:
  """Rendered views of one mesh.

  Attributes:
    rgba: uint8[N, H, W, 4], straight alpha, gray RGB; background (0, 0, 0, 0).
    depth: float32[N, H, W], distance along the optical axis; 0 where nothing is hit.
  """

  rgba: np.ndarray
  depth: np.ndarray

  @property
  def alpha(self) -> np.ndarray:
    """uint8[N, H, W] coverage."""
    return self.rgba[..., 3]


class Renderer(Protocol):
  """Renders many views of one mesh per call."""

  name: str

  def render(
      self,
      vertices: np.ndarray,
      faces: np.ndarray,
      views: camera.Views,
      *,
      size: int | tuple[int, int] = 128,
      lights: "lights_lib.Lights | Sequence[lights_lib.Lights] | None" = None,
      albedo: "float | np.ndarray" = shading.DEFAULT_ALBEDO,
      fov_deg: float = camera.FOV_DEG,
      antialias: int = 1,
      appearance: "materials.Appearance | None" = None,
  ) -> RenderOutput:
    """Renders `views` of the mesh.

    Args:
      vertices: float32[V, 3], world frame (+Y up).
      faces: int32[F, 3].
      views: N views.
      size: int or (height, width) of the output images.
      lights: one `Lights` for all views, one per view, or None for `lights.paper_lfd_lights()`.
      albedo: diffuse gray, scalar or float32[N].
      fov_deg: field of view across the larger image side.
      antialias: supersampling factor k (k x k samples per pixel); 1 = one sample at the pixel centre.
      appearance: coloured parts, textures and specular lobes (`materials`); then `albedo` is unused and RGB is
        colour. None = the gray Lambertian path.

    Returns:
      `RenderOutput` with N images.
    """
    ...


@dataclasses.dataclass(frozen=True)
class Job:
  """One render call's inputs, checked and expanded per view: what both backends start from.

  Attributes:
    vertices: float32[V, 3].
    faces: int32[F, 3], bounds checked.
    lights: one `Lights` per view.
    albedo: float32[N].
    samples: (H·k, W·k), the supersampled image size.
    antialias: k.
    appearance: None, or one with a palette per view (`materials.per_view`).
  """

  vertices: np.ndarray
  faces: np.ndarray
  lights: list
  albedo: np.ndarray
  samples: tuple[int, int]
  antialias: int
  appearance: "materials.Appearance | None" = None


def prepare(vertices, faces, views: camera.Views, size, lights, albedo, antialias, appearance=None) -> Job:
  """Checks and expands the arguments of `Renderer.render` (see there)."""
  vertices, faces = check_mesh(vertices, faces)
  height, width = camera.image_size(size)
  k = int(antialias)
  if appearance is not None:
    appearance = materials.per_view(appearance, len(views))
    if len(appearance.face_material) != len(faces):
      raise ValueError(f"appearance.face_material has {len(appearance.face_material)} faces, the mesh {len(faces)}")
    if appearance.canonical is None:
      appearance = dataclasses.replace(appearance, canonical=materials.canonical_faces(vertices, faces))
  return Job(
      vertices,
      faces,
      lights_lib.per_view(lights, len(views)),
      per_view_albedo(albedo, len(views)),
      (height * k, width * k),
      k,
      appearance,
  )


def shade_hits(job: Job, views: camera.Views, hits: list, normals: np.ndarray) -> np.ndarray:
  """The colour path shared by both backends: float32[N, H·k, W·k, 3] linear RGB of each view's `materials.Hits`."""
  n, (hk, wk) = len(views), job.samples
  _, eye = camera.camera_frames(views)
  out = np.zeros((n, hk * wk, 3), np.float32)
  for v, view_hits in enumerate(hits):
    materials.shade_color(
        view_hits,
        job.vertices,
        job.faces,
        normals,
        eye[v],
        job.lights[v],
        job.appearance,
        job.appearance.palettes[v],
        out=out[v],
    )
  return out.reshape(n, hk, wk, 3)


def per_view_albedo(albedo: "float | np.ndarray", n: int) -> np.ndarray:
  """float32[N] albedo from a scalar or an array of N."""
  return np.broadcast_to(np.asarray(albedo, np.float32), (n,)).copy()


def check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """float32[V, 3], int32[F, 3] with index bounds checked (a bad index would read garbage on the GPU)."""
  vertices = np.ascontiguousarray(vertices, np.float32).reshape(-1, 3)
  faces = np.ascontiguousarray(faces, np.int32).reshape(-1, 3)
  if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
    raise ValueError(f"face indices outside [0, {len(vertices)})")
  return vertices, faces


def resolve(gray: np.ndarray, depth: np.ndarray, antialias: int) -> RenderOutput:
  """Reduces k x k samples per pixel to the output images.

  Args:
    gray: float32[N, H·k, W·k] shaded value of each sample in [0, 1] (anything where not covered).
    depth: float32[N, H·k, W·k] depth of each sample, 0 (or less) where nothing is hit.
    antialias: k.

  Returns:
    `RenderOutput` of N images of H x W.
  """
  k = int(antialias)
  n, hk, wk = depth.shape
  h, w = hk // k, wk // k
  covered = depth > 0
  if k == 1:  # the common case: no block sums
    value = np.rint(shading.display(gray) * 255).astype(np.uint8) * covered
    alpha = covered.view(np.uint8) * np.uint8(255)
    return RenderOutput(
        rgba=np.stack([value, value, value, alpha], -1),
        depth=np.where(covered, depth, np.float32(0)).astype(np.float32, copy=False),  # no second copy
    )

  def block_sum(x):  # float32 holds sums of k² values exactly enough; summing one axis at a time is faster
    return x.reshape(n, h, k, w, k).sum(axis=4, dtype=np.float32).sum(axis=2)

  count = block_sum(covered)
  safe = np.maximum(count, 1)
  mean_gray = block_sum(gray * covered) / safe
  mean_depth = block_sum(depth * covered) / safe
  value = np.rint(shading.display(mean_gray) * 255).astype(np.uint8)  # 0 where count = 0
  alpha = np.rint(count * (255 / (k * k))).astype(np.uint8)
  return RenderOutput(rgba=np.stack([value, value, value, alpha], -1), depth=mean_depth)


def resolve_color(color: np.ndarray, depth: np.ndarray, antialias: int) -> RenderOutput:
  """`resolve` for the colour path: float32[N, H·k, W·k, 3] linear RGB (0 where not covered) -> straight-alpha sRGB.

  The channels are averaged over the covered samples in linear light, as the gray path does.
  """
  k = int(antialias)
  n, hk, wk = depth.shape
  h, w = hk // k, wk // k
  covered = depth > 0

  def block_sum(x):  # k² strided slices added: far faster than a reduction over reshaped axes here
    x = x.reshape(n, hk, wk, -1)
    total = np.zeros((n, h, w, x.shape[-1]), np.float32)
    for i in range(k):
      for j in range(k):
        total += x[:, i::k, j::k]
    return total

  count = block_sum(covered)[..., 0]
  safe = np.maximum(count, 1)
  mean_depth = block_sum(depth)[..., 0] / safe  # depth and colour are 0 where nothing is hit
  mean = block_sum(color) / safe[..., None]
  rgb = np.rint(shading.display(mean) * 255).astype(np.uint8)
  alpha = np.rint(count * (255 / (k * k))).astype(np.uint8)
  return RenderOutput(rgba=np.concatenate([rgb, alpha[..., None]], -1), depth=mean_depth.astype(np.float32))
