"""Rendering: one camera model, one shading model, two backends (EGL rasterization, embree ray casting).

  renderer = render.get_renderer()                      # 'auto': EGL if a context can be made, else embree
  out = renderer.render(vertices, faces, render.lfd_views('chair'), size=128)
  out.rgba, out.depth                                   # uint8[N, H, W, 4] straight alpha, float32[N, H, W]

Conventions (world frame +Y up, the paper's azimuth/elevation/tilt, depth along the optical axis) are in
`camera`'s docstring; the shading model is in `shading`. The backends are imported lazily by `get_renderer`, so this
package imports without moderngl or embreex.
"""

from jembed.render.backend import get_renderer
from jembed.render.base import Renderer
from jembed.render.base import RenderOutput
from jembed.render.camera import FOV_DEG
from jembed.render.camera import Views
from jembed.render.lfd import lfd_views
from jembed.render.lights import Lights
from jembed.render.lights import paper_lfd_lights
from jembed.render.shading import DEFAULT_ALBEDO

__all__ = [
    "get_renderer",
    "Renderer",
    "RenderOutput",
    "FOV_DEG",
    "Views",
    "lfd_views",
    "Lights",
    "paper_lfd_lights",
    "DEFAULT_ALBEDO",
]
