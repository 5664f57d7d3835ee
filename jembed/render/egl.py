"""OpenGL backend: moderngl on a headless EGL context (Mesa llvmpipe on CPU, the NVIDIA driver on GPU; no X).

One context per renderer, reused by every call. A call uploads the mesh once, then draws each view into its own
tile of an atlas framebuffer, changing only uniforms and the viewport, and reads the whole atlas back at once,
straight into the output: per-view readbacks would dominate on llvmpipe. A first pass records, per sample, the face
hit and its depth; the gray path then shades each tile in a second pass into an RG32F target holding (gray, depth along
the optical axis), so neither colour quantization nor depth-buffer linearization stands between the two backends.
Both sides of every face are drawn unless the mesh is closed, wound outward and every eye is outside it
(`culling`: our catalog and voxel meshes; ShapeNet's winding is inconsistent): then back faces are culled, which
changes no silhouette and no visible surface (only exact depth ties between touching parts) and halves the first
pass' triangles.
"""

import moderngl
import numpy as np

from jembed.render import base
from jembed.render import camera
from jembed.render import culling
from jembed.render import lights as lights_lib
from jembed.render import materials
from jembed.render import shading

_ATLAS_SIDE = 2048  # atlas side; 2048² x 20 bytes (hits, depth, gray) = 80 MB, 256 tiles of 128²
_NORMALS_WIDTH = 4096  # the face-normal texture's width: faces f sits at (f % width, f // width)
_MAX_FACES = 1 << 24  # face indices travel as float32, exact up to 2^24

_VERTEX_SHADER = """
#version 330
uniform mat4 u_mvp;
in vec3 in_pos;
in float in_face;
flat out float v_face;
void main() {
  v_face = in_face;
  gl_Position = u_mvp * vec4(in_pos, 1.0);
}
"""

# Every draw first records, per sample, its depth along the optical axis and the face hit (RG32F) into an atlas
# texture; the hit point is rebuilt from the sample's ray and that depth afterwards, as the embree backend builds it.
# 1 / gl_FragCoord.w is the clip w, i.e. that depth, interpolated perspective-correctly by the rasterizer anyway, so
# no position varying is needed: without its three varyings and with 8 instead of 16 bytes a sample, this pass went
# 3.50 -> 3.25 ms per 128² view of the 20k-face icosphere. The face index is a flat varying: each face is drawn as
# its own three corners, each carrying its index (float32, exact up to 2^24: `render` checks). gl_PrimitiveID would
# spare the copies, but llvmpipe then assembles every primitive again to inject it: 0.6 ms more per view.
# The colour path (`materials`) reads this back and shades in NumPy for both backends alike; the gray path shades it
# on the GPU (_SHADE_FRAGMENT_SHADER).
_HITS_FRAGMENT_SHADER = """
#version 330
flat in float v_face;
out vec2 f_hit;
void main() {
  f_hit = vec2(1.0 / gl_FragCoord.w, v_face);
}
"""

# The gray path shades in a second pass, once per sample of each view's tile (deferred shading): at 128² a 20k-face
# mesh has triangles under a pixel, and llvmpipe runs the fragment shader on a whole 4x4 block for each of them, so
# lighting 12 lamps while rasterizing cost 1.3 ms per view (the per-fragment lighting the old single pass did); this
# pass costs 0.5 ms. The hit point is eye + depth · ray, the ray through the sample centre with optical-axis
# component 1 (u_ray0 at the tile's corner, + u_ray_dx / u_ray_dy per sample); the flat normal is fetched by face
# index (the same float32 normals the embree backend shades with), and `shade` is the same code.
_QUAD_VERTEX_SHADER = """
#version 330
in vec2 in_corner;
void main() {
  gl_Position = vec4(in_corner, 1.0, 1.0);
}
"""

_SHADE_FRAGMENT_SHADER = """
#version 330
uniform sampler2D u_hits;
uniform sampler2D u_normals;
uniform vec3 u_eye;
uniform vec2 u_origin;
uniform vec3 u_ray0;
uniform vec3 u_ray_dx;
uniform vec3 u_ray_dy;
out vec2 f_gray_depth;
{shade}
void main() {{
  vec2 hit = texelFetch(u_hits, ivec2(gl_FragCoord.xy), 0).xy;  // a hit: the depth test passes only there
  int face = int(hit.y);
  vec3 normal = texelFetch(u_normals, ivec2(face % {normals_width}, face / {normals_width}), 0).xyz;
  vec2 xy = gl_FragCoord.xy - u_origin;  // the sample centre in its tile (`sample` is a keyword from GLSL 4.00)
  vec3 point = u_eye + hit.x * (u_ray0 + xy.x * u_ray_dx + xy.y * u_ray_dy);
  f_gray_depth = vec2(shade(point, normal, u_eye), hit.x);
}}
"""


class EGLRenderer:
  """Rasterizing renderer; see `base.Renderer.render` for the arguments of `render`."""

  name = "egl"

  def __init__(self, atlas_side: int = _ATLAS_SIDE):
    self._ctx = moderngl.create_context(standalone=True, backend="egl")
    limit = min(self._ctx.info["GL_MAX_RENDERBUFFER_SIZE"], *self._ctx.info["GL_MAX_VIEWPORT_DIMS"])
    self._atlas_side = min(atlas_side, limit)
    self._programs = {}  # lamp count -> (shading program, its quad), the count is compiled in (shading.glsl_shade)
    self._fbos = {}  # 'hits' (texture RG32F + depth), 'gray' (RG32F) -> (framebuffer, its size)
    self._quad = self._ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32).tobytes())
    self._hits_program = self._ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_HITS_FRAGMENT_SHADER)
    self._program(len(lights_lib.paper_lfd_lights().energies))  # compile errors surface here, not mid-render

  @property
  def device(self) -> str:
    """The GL renderer string, e.g. 'llvmpipe (LLVM 15.0.6, 256 bits)' or an NVIDIA GPU."""
    return self._ctx.info["GL_RENDERER"]

  def _program(self, num_lamps: int) -> tuple[moderngl.Program, moderngl.VertexArray]:
    """The second pass' program for `num_lamps` lamps and its tile-filling quad."""
    if num_lamps not in self._programs:
      fragment = _SHADE_FRAGMENT_SHADER.format(shade=shading.glsl_shade(num_lamps), normals_width=_NORMALS_WIDTH)
      prog = self._ctx.program(vertex_shader=_QUAD_VERTEX_SHADER, fragment_shader=fragment)
      prog["u_hits"].value = 0  # texture units
      if "u_normals" in prog:  # compiled out without lamps
        prog["u_normals"].value = 1
      self._programs[num_lamps] = (prog, self._ctx.vertex_array(prog, [(self._quad, "2f", "in_corner")]))
    return self._programs[num_lamps]

  def _framebuffer(self, width: int, height: int, gray: bool = False) -> moderngl.Framebuffer:
    """The hits framebuffer (RG32F texture + depth), or with `gray` the RG32F one sharing its depth buffer, at
    least width x height; grown (never shrunk) so alternating batch shapes reuse them."""
    hits, size = self._fbos.get("hits", (None, None))
    if size is None or width > size[0] or height > size[1]:
      if hits is not None:
        width, height = max(width, size[0]), max(height, size[1])
        self._release_framebuffers()
      color = self._ctx.texture((width, height), 2, dtype="f4")
      color.filter = (moderngl.NEAREST, moderngl.NEAREST)
      hits = self._ctx.framebuffer(color_attachments=[color], depth_attachment=self._ctx.depth_renderbuffer(color.size))
      self._fbos = {"hits": (hits, color.size)}
    if not gray:
      return hits
    if "gray" not in self._fbos:
      color = self._ctx.renderbuffer(hits.size, 2, dtype="f4")
      self._fbos["gray"] = self._ctx.framebuffer(color_attachments=[color], depth_attachment=hits.depth_attachment)
    return self._fbos["gray"]

  def _release_framebuffers(self):
    hits = self._fbos["hits"][0]
    gray = self._fbos.get("gray")
    for obj in (*hits.color_attachments, hits.depth_attachment, hits, *(gray.color_attachments if gray else ()), gray):
      if obj is not None:
        obj.release()
    self._fbos = {}

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
    n, (hk, wk) = len(views), job.samples
    if hk > self._atlas_side or wk > self._atlas_side:
      raise ValueError(f"{hk}x{wk} samples exceed the framebuffer limit {self._atlas_side}")
    if len(job.faces) > _MAX_FACES:
      raise ValueError(f"{len(job.faces)} faces: the EGL backend takes at most {_MAX_FACES}")
    drawn = bool(len(job.faces) and n)
    surface = job.appearance is not None
    out = (np.empty if drawn else np.zeros)((n, hk, wk, 2), np.float32)  # every tile is copied in
    if surface and not drawn:
      out[..., 1] = -1.0
    if drawn:
      cull = culling.closed_outward_cached(job.vertices, job.faces) and culling.eyes_outside(
          job.vertices, camera.camera_frames(views)[1]
      )
      with self._ctx:  # make our context current: another renderer in this thread may have switched it
        self._draw(job.vertices, job.faces, views, job.lights, job.albedo, fov_deg, out, gray=not surface, cull=cull)
    if surface:
      return self._shade_surface(job, views, fov_deg, out)
    return base.resolve(out[..., 0], out[..., 1], job.antialias)

  @staticmethod
  def _shade_surface(job: base.Job, views: camera.Views, fov_deg: float, out: np.ndarray) -> base.RenderOutput:
    """The colour path from the atlas' (depth, face) samples: hit points on the samples' rays as the embree backend
    computes them, then `base.shade_hits`."""
    n, hk, wk, _ = out.shape
    rotation, eye = camera.camera_frames(views)
    local = camera.pixel_directions((hk, wk), fov_deg).reshape(-1, 3)
    samples = out.reshape(n, hk * wk, 2)
    depth = np.zeros((n, hk * wk), np.float32)
    hits = []
    for v in range(n):
      hit = np.flatnonzero(samples[v, :, 1] >= 0)
      depth[v, hit] = samples[v, hit, 0]
      points = np.zeros((hk * wk, 3), np.float32)
      points[hit] = eye[v] + samples[v, hit, :1].astype(np.float64) * (local[hit] @ rotation[v])
      face = np.full(hk * wk, -1, np.int32)
      face[hit] = np.rint(samples[v, hit, 1]).astype(np.int32)
      hits.append(materials.Hits(face, points))
    color = base.shade_hits(job, views, hits, shading.face_normals(job.vertices, job.faces))
    return base.resolve_color(color, depth.reshape(n, hk, wk), job.antialias)

  def _draw(self, vertices, faces, views, view_lights, albedo, fov_deg, out, gray, cull=False):
    """Uploads the mesh once and renders every view into out: float32[N, H·k, W·k, 2], with `gray` (gray, depth),
    else (depth, face) for the colour path; `cull`: skip back faces (counter-clockwise faces are front ones)."""
    n, hk, wk = out.shape[:3]
    cols = min(n, self._atlas_side // wk)
    per_atlas = cols * min(-(-n // cols), self._atlas_side // hk)
    # Per corner: its position and its face's index (float32[3F, 4]); the corners of a face are drawn in order.
    corners = np.empty((len(faces), 3, 4), np.float32)
    corners[..., :3] = vertices[faces]
    corners[..., 3] = np.arange(len(faces), dtype=np.float32)[:, None]
    vbo = self._ctx.buffer(corners.tobytes())
    mesh = self._ctx.vertex_array(self._hits_program, [(vbo, "3f 1f", "in_pos", "in_face")])
    normals = None
    if gray:  # the gray path's face normals (bit-identical to the embree backend's), one texel a face
      rows = -(-len(faces) // _NORMALS_WIDTH)
      table = np.zeros((rows * _NORMALS_WIDTH, 3), np.float32)
      table[: len(faces)] = shading.face_normals(vertices, faces)
      normals = self._ctx.texture((_NORMALS_WIDTH, rows), 3, table.tobytes(), dtype="f4")
      normals.filter = (moderngl.NEAREST, moderngl.NEAREST)
    try:
      mvp = camera.perspective((hk, wk), fov_deg) @ camera.look_at(views)
      rotation, eye = camera.camera_frames(views)
      # The ray through sample (x, y) of a tile, counted from its bottom-left corner, is ray0 + x · dx + y · dy in
      # the world (camera.pixel_directions: optical-axis component 1; GL's y runs up like the camera's).
      f = camera.focal_length((hk, wk), fov_deg)
      rays = np.stack(
          [
              -rotation[:, 2] - (wk / 2 * rotation[:, 0] + hk / 2 * rotation[:, 1]) / f,
              rotation[:, 0] / f,
              rotation[:, 1] / f,
          ],
          1,
      )
      for start in range(0, n, per_atlas):
        stop = min(n, start + per_atlas)
        self._draw_atlas(
            (mesh, normals, cull),
            cols,
            mvp[start:stop],
            eye[start:stop],
            rays[start:stop],
            view_lights[start:stop],
            albedo[start:stop],
            out[start:stop],
        )
    finally:
      for obj in (mesh, vbo, normals):
        if obj is not None:
          obj.release()

  def _draw_atlas(self, mesh, cols, mvp, eye, rays, view_lights, albedo, out):
    """Draws len(mvp) views into tiles of the atlas and copies them into out: float32[n, h, w, 2], (gray, depth) when
    `mesh` has face normals, else (depth, face; face -1 where nothing is hit), row 0 at the top."""
    mesh, normals, cull = mesh
    n, h, w, c = out.shape
    rows = -(-n // cols)
    tiles = [((v % cols) * w, (v // cols) * h, w, h) for v in range(n)]
    fbo = self._framebuffer(cols * w, rows * h)
    fbo.use()
    fbo.scissor = None
    fbo.depth_mask = True
    fbo.clear(0.0, -1.0, 0.0, 0.0, depth=1.0, viewport=(0, 0, cols * w, rows * h))
    self._ctx.enable(moderngl.DEPTH_TEST)
    self._ctx.depth_func = "<"
    if cull:
      self._ctx.front_face, self._ctx.cull_face = "ccw", "back"
      self._ctx.enable(moderngl.CULL_FACE)
    for v in range(n):
      fbo.viewport = fbo.scissor = tiles[v]  # guard-band rasterization must not spill into the neighbouring tile
      self._hits_program["u_mvp"].write(np.ascontiguousarray(mvp[v].T, np.float32).tobytes())  # GL is column-major
      mesh.render(moderngl.TRIANGLES)
    self._ctx.disable(moderngl.CULL_FACE)  # the shading quad and the next mesh's call start without it
    fbo.scissor = None
    if normals is not None:  # shade every tile's samples into the gray target, which is then read back instead
      hits = fbo.color_attachments[0]
      fbo = self._framebuffer(cols * w, rows * h, gray=True)
      fbo.use()
      # The quad lies on the far plane and passes the depth test where the hits pass drew something: llvmpipe then
      # skips the background's 4x4 blocks instead of shading them: 0.63 -> 0.47 ms per view (the benchmark's sphere
      # covers half of each tile).
      fbo.depth_mask = False  # keeps the depth buffer, also through this clear
      fbo.clear(0.0, 0.0, 0.0, 0.0, viewport=(0, 0, cols * w, rows * h))
      self._ctx.depth_func = ">"
      hits.use(0)
      normals.use(1)
      for v in range(n):
        prog, quad = self._program(len(view_lights[v].energies))
        fbo.viewport = tiles[v]
        _set_uniforms(
            prog, u_eye=eye[v], u_origin=tiles[v][:2], u_ray0=rays[v, 0], u_ray_dx=rays[v, 1], u_ray_dy=rays[v, 2]
        )
        prog["u_albedo"].value = float(albedo[v])
        _set_lights(prog, view_lights[v])
        quad.render(moderngl.TRIANGLE_STRIP)
    pixels = np.empty((rows * h, cols * w, c), np.float32)
    fbo.read_into(pixels, viewport=(0, 0, cols * w, rows * h), components=c, dtype="f4")
    # GL rows run bottom-up; tile v sits at tile row v // cols counted from the bottom. One copy, straight into out.
    grid = pixels.reshape(rows, h, cols, w, c)[:, ::-1].transpose(0, 2, 1, 3, 4)  # [rows, cols, h, w, c], a view
    full = n // cols
    out[: full * cols].reshape(full, cols, h, w, c)[...] = grid[:full]
    if n > full * cols:
      out[full * cols :] = grid[full, : n - full * cols]

  def release(self):
    """Frees the context and every GL object in it."""
    self._ctx.release()
    self._programs, self._fbos = {}, {}


def _set_uniforms(prog: moderngl.Program, **values):
  for name, value in values.items():
    if name in prog:  # compiled out without lamps
      prog[name].value = tuple(map(float, value))


def _set_lights(prog: moderngl.Program, lights: lights_lib.Lights):
  prog["u_ambient"].value = lights.ambient
  if len(lights.energies):  # with no lamps the arrays are unused and compiled out
    prog["u_lamp_pos"].write(lights.positions.tobytes())
    prog["u_lamp_energy"].write(lights.energies.tobytes())
