"""CPU ray-casting backend: embree (via the pip package embreex) through every sample of every view at once.

Rays start on the near plane and go through the sample centres with their optical-axis component scaled to 1, so
the hit distance plus `camera.NEAR` is the depth; hits beyond `camera.FAR` are dropped. This mirrors the EGL
backend's clipping exactly. Shading is `shading.shade` on the hit points with flat face normals.
"""

from embreex import mesh_construction
from embreex import rtcore_scene
import numpy as np

from jembed.render import base
from jembed.render import camera
from jembed.render import materials
from jembed.render import shading

_RAYS_PER_CALL = 1 << 20  # bounds the temporaries (about 120 bytes a ray) of large batches


class EmbreeRenderer:
  """Ray-casting renderer; see `base.Renderer.render` for the arguments."""

  name = "embree"

  def render(
      self,
      vertices,
      faces,
      views: camera.Views,
      *,
      size=128,
      lights=None,
      albedo=shading.DEFAULT_ALBEDO,
      fov_deg: float = camera.FOV_DEG,
      antialias: int = 1,
      appearance=None,
  ) -> base.RenderOutput:
    job = base.prepare(vertices, faces, views, size, lights, albedo, antialias, appearance)
    vertices, faces, view_lights, albedo, k = job.vertices, job.faces, job.lights, job.albedo, job.antialias
    n, (hk, wk) = len(views), job.samples
    gray = np.zeros((n, hk * wk), np.float32)
    depth = np.zeros((n, hk * wk), np.float32)
    hits = [] if job.appearance is not None else None  # the colour path collects each view's hits
    normals = shading.face_normals(vertices, faces)
    if len(faces) and n:
      scene = rtcore_scene.EmbreeScene()
      mesh_construction.TriangleMesh(scene, np.ascontiguousarray(vertices[faces]))
      rotation, eye = camera.camera_frames(views)
      local = camera.pixel_directions((hk, wk), fov_deg).reshape(-1, 3)
      views_per_call = max(1, _RAYS_PER_CALL // len(local))
      for start in range(0, n, views_per_call):
        idx = np.arange(start, min(n, start + views_per_call))
        self._trace(
            scene,
            normals,
            local,
            rotation[idx],
            eye[idx],
            [view_lights[i] for i in idx],
            albedo[idx],
            gray[idx[0] : idx[-1] + 1],
            depth[idx[0] : idx[-1] + 1],
            hits,
        )
    if hits is not None:
      if len(hits) < n:  # nothing was traced (no faces)
        hits = [materials.Hits(np.full(hk * wk, -1, np.int32), np.zeros((hk * wk, 3), np.float32))] * n
      color = base.shade_hits(job, views, hits, normals)
      return base.resolve_color(color, depth.reshape(n, hk, wk), k)
    return base.resolve(gray.reshape(n, hk, wk), depth.reshape(n, hk, wk), k)

  @staticmethod
  def _trace(scene, normals, local, rotation, eye, view_lights, albedo, gray_out, depth_out, found=None):
    """Casts the rays of a few views and writes their samples into gray_out / depth_out (float32[n, S]); with a
    list `found`, appends each view's `materials.Hits` instead of shading gray."""
    directions = np.einsum("sj,nji->nsi", local, rotation)  # camera -> world: d @ R (rows of R are camera axes)
    origins = eye[:, None, :] + camera.NEAR * directions
    hits = scene.run(origins.reshape(-1, 3).astype(np.float32), directions.reshape(-1, 3).astype(np.float32), output=1)
    prim = hits["primID"].reshape(len(eye), -1)
    t = hits["tfar"].reshape(len(eye), -1).astype(np.float64)
    for v in range(len(eye)):
      hit = np.flatnonzero((prim[v] >= 0) & (t[v] + camera.NEAR <= camera.FAR))
      points = origins[v, hit] + t[v, hit, None] * directions[v, hit]
      depth_out[v, hit] = camera.NEAR + t[v, hit]
      if found is not None:
        face = np.full(len(local), -1, np.int32)
        face[hit] = prim[v, hit]
        where = np.zeros((len(local), 3), np.float32)
        where[hit] = points
        found.append(materials.Hits(face, where))
        continue
      gray_out[v, hit] = shading.shade(points, normals[prim[v, hit]], eye[v], view_lights[v], float(albedo[v]))
