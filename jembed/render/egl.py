"""OpenGL backend: moderngl on a headless EGL context (Mesa llvmpipe on CPU, the NVIDIA driver on GPU; no X).

One context per renderer, reused by every call. A call uploads the mesh once (three corners per face, each with the
face's flat normal), then draws each view into its own tile of an atlas framebuffer, changing only uniforms and the
viewport, and reads the whole atlas back at once, straight into the output: per-view readbacks would dominate on
llvmpipe. The single RG32F
colour target holds (gray, depth along the optical axis), so neither colour quantization nor depth-buffer
linearization stands between the two backends. Both sides of every face are drawn (no culling: ShapeNet's winding
is inconsistent).
"""

import moderngl
import numpy as np

from jembed.render import base
from jembed.render import camera
from jembed.render import lights as lights_lib
from jembed.render import materials
from jembed.render import shading

_ATLAS_SIDE = 2048  # atlas framebuffer side; 2048² x 12 bytes = 48 MB, 256 tiles of 128²

_VERTEX_SHADER = """
#version 330
uniform mat4 u_mvp;
in vec3 in_pos;
in vec3 in_normal;
out vec3 v_pos;
flat out vec3 v_normal;
void main() {
  v_pos = in_pos;
  v_normal = in_normal;
  gl_Position = u_mvp * vec4(in_pos, 1.0);
}
"""

# Flat normals arrive as a flat varying: the mesh is drawn as three vertices per face, each carrying its face's normal
# (bit-identical to the ones the embree backend shades with). A texture of normals indexed by gl_PrimitiveID costs
# llvmpipe a texel fetch and an integer division per fragment: 20 % more time per view, measured.
_FRAGMENT_SHADER = """
#version 330
uniform vec3 u_eye;
uniform vec3 u_forward;
in vec3 v_pos;
flat in vec3 v_normal;
out vec2 f_gray_depth;
{shade}
void main() {{
  f_gray_depth = vec2(shade(v_pos, v_normal, u_eye), dot(v_pos - u_eye, u_forward));
}}
"""


# The colour path (`materials`): the fragment only records which face it hit and where (RGBA32F: x, y, z, face);
# the colour is computed in NumPy for both backends alike. gl_PrimitiveID counts the faces, since each face is drawn
# as its own three corners; float32 holds face indices exactly up to 2^24.
_SURFACE_FRAGMENT_SHADER = """
#version 330
in vec3 v_pos;
flat in vec3 v_normal;
out vec4 f_hit;
void main() {
  f_hit = vec4(v_pos, float(gl_PrimitiveID));
}
"""


class EGLRenderer:
  """Rasterizing renderer; see `base.Renderer.render` for the arguments of `render`."""

  name = "egl"

  def __init__(self, atlas_side: int = _ATLAS_SIDE):
    self._ctx = moderngl.create_context(standalone=True, backend="egl")
    limit = min(self._ctx.info["GL_MAX_RENDERBUFFER_SIZE"], *self._ctx.info["GL_MAX_VIEWPORT_DIMS"])
    self._atlas_side = min(atlas_side, limit)
    self._programs = {}  # lamp count -> program (the count is compiled in, see shading.glsl_shade); 'surface'
    self._fbos = {}  # components (2: gray path, 4: colour path) -> (framebuffer, its size)
    self._program(len(lights_lib.paper_lfd_lights().energies))  # compile errors surface here, not mid-render

  @property
  def device(self) -> str:
    """The GL renderer string, e.g. 'llvmpipe (LLVM 15.0.6, 256 bits)' or an NVIDIA GPU."""
    return self._ctx.info["GL_RENDERER"]

  def _program(self, num_lamps: "int | str") -> moderngl.Program:
    if num_lamps not in self._programs:
      fragment = (
          _SURFACE_FRAGMENT_SHADER
          if num_lamps == "surface"
          else _FRAGMENT_SHADER.format(shade=shading.glsl_shade(num_lamps))
      )
      prog = self._ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=fragment)
      self._programs[num_lamps] = prog
    return self._programs[num_lamps]

  def _framebuffer(self, width: int, height: int, components: int = 2) -> moderngl.Framebuffer:
    """A float framebuffer of `components` channels, at least width x height, grown (never shrunk) so alternating
    batch shapes reuse it."""
    fbo, size = self._fbos.get(components, (None, None))
    if size is None or width > size[0] or height > size[1]:
      if fbo is not None:
        width, height = max(width, size[0]), max(height, size[1])
        for attachment in (*fbo.color_attachments, fbo.depth_attachment):
          attachment.release()
        fbo.release()
      color = self._ctx.renderbuffer((width, height), components=components, dtype="f4")
      depth = self._ctx.depth_renderbuffer((width, height))
      fbo = self._ctx.framebuffer(color_attachments=[color], depth_attachment=depth)
      self._fbos[components] = (fbo, (width, height))
    return fbo

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
    drawn = bool(len(job.faces) and n)
    surface = job.appearance is not None
    out = (np.empty if drawn else np.zeros)((n, hk, wk, 4 if surface else 2), np.float32)  # every tile is copied in
    if surface and not drawn:
      out[..., 3] = -1.0
    if drawn:
      with self._ctx:  # make our context current: another renderer in this thread may have switched it
        self._draw(job.vertices, job.faces, views, job.lights, job.albedo, fov_deg, out)
    if surface:
      return self._shade_surface(job, views, out)
    return base.resolve(out[..., 0], out[..., 1], job.antialias)

  @staticmethod
  def _shade_surface(job: base.Job, views: camera.Views, out: np.ndarray) -> base.RenderOutput:
    """The colour path from the atlas' (x, y, z, face) samples: depth along the optical axis, then `base.shade_hits`."""
    n, hk, wk, _ = out.shape
    rotation, eye = camera.camera_frames(views)
    samples = out.reshape(n, hk * wk, 4)
    depth = np.zeros((n, hk * wk), np.float32)
    hits = []
    for v in range(n):
      hit = np.flatnonzero(samples[v, :, 3] >= 0)
      points = samples[v, hit, :3]
      depth[v, hit] = (points - eye[v].astype(np.float32)) @ (-rotation[v, 2]).astype(np.float32)
      face = np.full(hk * wk, -1, np.int32)
      face[hit] = np.rint(samples[v, hit, 3]).astype(np.int32)
      hits.append(materials.Hits(face, samples[v, :, :3]))
    color = base.shade_hits(job, views, hits, shading.face_normals(job.vertices, job.faces))
    return base.resolve_color(color, depth.reshape(n, hk, wk), job.antialias)

  def _draw(self, vertices, faces, views, view_lights, albedo, fov_deg, out):
    """Uploads the mesh once and renders every view into out: float32[N, H·k, W·k, 2] (gray, depth), or [..., 4]
    (x, y, z, face) for the colour path."""
    n, hk, wk = out.shape[:3]
    cols = min(n, self._atlas_side // wk)
    per_atlas = cols * min(-(-n // cols), self._atlas_side // hk)
    # Per corner: its position and its face's normal (float32[3F, 6]); the corners of a face are drawn in order.
    corners = np.concatenate([vertices[faces], np.repeat(shading.face_normals(vertices, faces)[:, None], 3, 1)], -1)
    vbo = self._ctx.buffer(np.ascontiguousarray(corners, np.float32).tobytes())
    vaos = {}  # one per program used in this call, all on the same buffers
    try:
      mvp = camera.perspective((hk, wk), fov_deg) @ camera.look_at(views)
      rotation, eye = camera.camera_frames(views)
      for start in range(0, n, per_atlas):
        stop = min(n, start + per_atlas)
        self._draw_atlas(
            (vbo, vaos),
            cols,
            mvp[start:stop],
            eye[start:stop],
            -rotation[start:stop, 2],
            view_lights[start:stop],
            albedo[start:stop],
            out[start:stop],
        )
    finally:
      for obj in (*vaos.values(), vbo):
        obj.release()

  def _draw_atlas(self, mesh, cols, mvp, eye, forward, view_lights, albedo, out):
    """Draws len(mvp) views into tiles of the atlas and copies them into out: float32[n, h, w, c] (c = 2: gray,
    depth; c = 4: x, y, z, face, -1 where nothing is hit), row 0 at the top."""
    vbo, vaos = mesh
    n, h, w, c = out.shape
    surface = c == 4
    rows = -(-n // cols)
    fbo = self._framebuffer(cols * w, rows * h, c)
    fbo.use()
    fbo.scissor = None
    fbo.clear(0.0, 0.0, 0.0, -1.0 if surface else 0.0, depth=1.0, viewport=(0, 0, cols * w, rows * h))
    self._ctx.enable(moderngl.DEPTH_TEST)
    for v in range(n):
      prog = self._program("surface" if surface else len(view_lights[v].energies))
      if prog.glo not in vaos:
        # Without lamps the normal is compiled out (and skipped in the buffer).
        normal = ("3f", "in_normal") if "in_normal" in prog else ("12x",)
        vaos[prog.glo] = self._ctx.vertex_array(prog, [(vbo, f"3f {normal[0]}", "in_pos", *normal[1:])])
      tile_xy = ((v % cols) * w, (v // cols) * h, w, h)
      fbo.viewport = tile_xy
      fbo.scissor = tile_xy  # guard-band rasterization must not spill into the neighbouring tile
      prog["u_mvp"].write(np.ascontiguousarray(mvp[v].T, np.float32).tobytes())  # GL is column-major
      if not surface:
        prog["u_eye"].value = tuple(map(float, eye[v]))
        prog["u_forward"].value = tuple(map(float, forward[v]))
        prog["u_albedo"].value = float(albedo[v])
        _set_lights(prog, view_lights[v])
      vaos[prog.glo].render(moderngl.TRIANGLES)
    fbo.scissor = None
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


def _set_lights(prog: moderngl.Program, lights: lights_lib.Lights):
  prog["u_ambient"].value = lights.ambient
  if len(lights.energies):  # with no lamps the arrays are unused and compiled out
    prog["u_lamp_pos"].write(lights.positions.tobytes())
    prog["u_lamp_energy"].write(lights.energies.tobytes())
