"""Shape thumbnails: one three-quarter view of each shape on white, for every picture that shows shapes.

The shape map, the retrieval galleries, the query galleries, the inversion gallery and the web page all draw their
shapes with `thumbnails`, so a shape looks the same in each of them.
"""

from typing import Sequence

import numpy as np

from jembed.render import backend
from jembed.render import camera
from jembed.shapes import manifest
from jembed.shapes import record
from jembed.shapes import sources
from jembed.utils import viz

# Front-left, a little from above, like product shots: every part of a chair or a car shows.
VIEW = camera.Views.make([35.0], [20.0], [0.0])


def thumbnails(
    refs: Sequence[record.ShapeRef], up_axis: str, front: str, size: int = 96, renderer: str = "auto"
) -> dict[str, np.ndarray]:
  """{id: uint8[size, size, 3]}: each shape of `refs` at `VIEW`, on white.

  Shapes that no longer load are left out (callers draw a blank tile).
  """
  render = backend.get_renderer(renderer)
  out = {}
  for shape in sources.iter_shapes(refs, up_axis, front, summary=False):
    out[shape.id] = viz.on_white(render.render(shape.vertices, shape.faces, VIEW, size=size, antialias=2).rgba[0])
  return out


def workdir_thumbnails(
    workdir: str, ids: Sequence[str], size: int = 96, renderer: str = "auto"
) -> dict[str, np.ndarray]:
  """`thumbnails` of the shapes `ids` of `workdir`, found from its own record of its shapes (`shapes.json`, see
  `shapes.manifest`), so this needs no config."""
  refs, up_axis, front = manifest.listed_shapes(workdir, list(ids))
  return thumbnails(refs, up_axis, front, size, renderer)
