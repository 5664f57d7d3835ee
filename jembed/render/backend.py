"""Backend selection: `get_renderer('auto' | 'egl' | 'embree')`.

The interface and the code both backends share are in `base`; the backends are imported here lazily, so this module
imports without moderngl or embreex.
"""

from absl import logging

from jembed.render import base
from jembed.render import egl
from jembed.render import embree
from jembed.utils import config_checks as checks

NAMES = ("auto", "egl", "embree")
_fallback_logged = False


def get_renderer(name: str = "auto") -> base.Renderer:
  """Returns a renderer: 'egl' (OpenGL, headless), 'embree' (CPU ray casting) or 'auto'.

  'auto' takes EGL when a context can be created and otherwise falls back to embree, logging why once per process.
  Each call creates a new renderer (an EGL one owns its GL context): create one and keep it.
  """
  global _fallback_logged
  if name not in NAMES:
    raise ValueError(f"unknown renderer {name!r}, expected one of {NAMES}")
  if name in ("auto", "egl"):
    try:
      return egl.EGLRenderer()
    except Exception as e:  # pylint: disable=broad-except
      if name == "egl":
        raise
      if not _fallback_logged:
        logging.warning(
            "EGL rendering unavailable (%s: %s); falling back to the embree ray caster.", type(e).__name__, e
        )
        _fallback_logged = True
  return embree.EmbreeRenderer()


# The checks `launch` runs on this stage's config fields before any work (`jembed.utils.config_checks`).
# Renders are (size x antialias)^2 pixels in one framebuffer: 2048 x 4 = 8192 px a side is within every OpenGL
# driver's renderbuffer limit (llvmpipe 16384) and 1 GB of RGBA floats; larger fails inside the renderer.
MAX_SIZE = 2048
MAX_ANTIALIAS = 4
CONFIG_RULES = {
    "render.backend": checks.choice(NAMES),
    "render.size": checks.integer(16, MAX_SIZE),
    "render.antialias": checks.integer(1, MAX_ANTIALIAS),
}
