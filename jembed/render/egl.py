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


class EGLRenderer:
  """Rasterizing renderer; see `base.Renderer.render` for the arguments of `render`."""

  name = "egl"

  def __init__(self, atlas_side: int = _ATLAS_SIDE):
    self._ctx = moderngl.create_context(standalone=True, backend="egl")
    limit = min(self._ctx.info["GL_MAX_RENDERBUFFER_SIZE"], *self._ctx.info["GL_MAX_VIEWPORT_DIMS"])
    self._atlas_side = min(atlas_side, limit)
    self._programs = {}  # lamp count -> program (the count is compiled in, see shading.glsl_shade)
    self._fbo = None
    self._fbo_size = None
    self._program(len(lights_lib.paper_lfd_lights().energies))  # compile errors surface here, not mid-render

  @property
  def device(self) -> str:
    """The GL renderer string, e.g. 'llvmpipe (LLVM 15.0.6, 256 bits)' or an NVIDIA GPU."""
    return self._ctx.info["GL_RENDERER"]

  def _program(self, num_lamps: int) -> moderngl.Program:
    if num_lamps not in self._programs:
      fragment = _FRAGMENT_SHADER.format(shade=shading.glsl_shade(num_lamps))
      prog = self._ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=fragment)
      self._programs[num_lamps] = prog
    return self._programs[num_lamps]

  def _framebuffer(self, width: int, height: int) -> moderngl.Framebuffer:
    """A framebuffer at least width x height, grown (never shrunk) so alternating batch shapes reuse it."""
    if self._fbo_size is None or width > self._fbo_size[0] or height > self._fbo_size[1]:
      if self._fbo is not None:
        width, height = max(width, self._fbo_size[0]), max(height, self._fbo_size[1])
        for attachment in (*self._fbo.color_attachments, self._fbo.depth_attachment):
          attachment.release()
        self._fbo.release()
      color = self._ctx.renderbuffer((width, height), components=2, dtype="f4")
      depth = self._ctx.depth_renderbuffer((width, height))
      self._fbo = self._ctx.framebuffer(color_attachments=[color], depth_attachment=depth)
      self._fbo_size = (width, height)
    return self._fbo

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
  ) -> base.RenderOutput:
    job = base.prepare(vertices, faces, views, size, lights, albedo, antialias)
    n, (hk, wk) = len(views), job.samples
    if hk > self._atlas_side or wk > self._atlas_side:
      raise ValueError(f"{hk}x{wk} samples exceed the framebuffer limit {self._atlas_side}")
    drawn = bool(len(job.faces) and n)
    out = (np.empty if drawn else np.zeros)((n, hk, wk, 2), np.float32)  # every tile of a drawn call is copied in
    if drawn:
      with self._ctx:  # make our context current: another renderer in this thread may have switched it
        self._draw(job.vertices, job.faces, views, job.lights, job.albedo, fov_deg, out)
    return base.resolve(out[..., 0], out[..., 1], job.antialias)

  def _draw(self, vertices, faces, views, view_lights, albedo, fov_deg, out):
    """Uploads the mesh once and renders every view into out: float32[N, H·k, W·k, 2] (gray, depth)."""
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
    """Draws len(mvp) views into tiles of the atlas and copies them into out: float32[n, h, w, 2] (gray, depth), row 0
    at the top."""
    vbo, vaos = mesh
    n, h, w, _ = out.shape
    rows = -(-n // cols)
    fbo = self._framebuffer(cols * w, rows * h)
    fbo.use()
    fbo.scissor = None
    fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0, viewport=(0, 0, cols * w, rows * h))
    self._ctx.enable(moderngl.DEPTH_TEST)
    for v in range(n):
      prog = self._program(len(view_lights[v].energies))
      if prog.glo not in vaos:
        # Without lamps the normal is compiled out (and skipped in the buffer).
        normal = ("3f", "in_normal") if "in_normal" in prog else ("12x",)
        vaos[prog.glo] = self._ctx.vertex_array(prog, [(vbo, f"3f {normal[0]}", "in_pos", *normal[1:])])
      tile_xy = ((v % cols) * w, (v // cols) * h, w, h)
      fbo.viewport = tile_xy
      fbo.scissor = tile_xy  # guard-band rasterization must not spill into the neighbouring tile
      prog["u_mvp"].write(np.ascontiguousarray(mvp[v].T, np.float32).tobytes())  # GL is column-major
      prog["u_eye"].value = tuple(map(float, eye[v]))
      prog["u_forward"].value = tuple(map(float, forward[v]))
      prog["u_albedo"].value = float(albedo[v])
      _set_lights(prog, view_lights[v])
      vaos[prog.glo].render(moderngl.TRIANGLES)
    fbo.scissor = None
    pixels = np.empty((rows * h, cols * w, 2), np.float32)
    fbo.read_into(pixels, viewport=(0, 0, cols * w, rows * h), components=2, dtype="f4")
    # GL rows run bottom-up; tile v sits at tile row v // cols counted from the bottom. One copy, straight into out.
    grid = pixels.reshape(rows, h, cols, w, 2)[:, ::-1].transpose(0, 2, 1, 3, 4)  # [rows, cols, h, w, 2], a view
    full = n // cols
    out[: full * cols].reshape(full, cols, h, w, 2)[...] = grid[:full]
    if n > full * cols:
      out[full * cols :] = grid[full, : n - full * cols]

  def release(self):
    """Frees the context and every GL object in it."""
    self._ctx.release()
    self._programs, self._fbo, self._fbo_size = {}, None, None


def _set_lights(prog: moderngl.Program, lights: lights_lib.Lights):
  prog["u_ambient"].value = lights.ambient
  if len(lights.energies):  # with no lamps the arrays are unused and compiled out
    prog["u_lamp_pos"].write(lights.positions.tobytes())
    prog["u_lamp_energy"].write(lights.energies.tobytes())
