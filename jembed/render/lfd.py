"""The paper's 20 light-field views of a shape (§1.1): the camera positions of each category.

The images rendered from them are turned into HoG inputs by `jembed.embedding.hog_input`.
"""

import numpy as np

from jembed.render import camera

LFD_DISTANCE = 3.0

# ShapeNet synsets of the categories with their own LFD views (ShapeRef.category may be a synset id or a name).
_SYNSETS = {"03001627": "chair", "04379243": "table", "02958343": "car", "02691156": "airplane", "03636649": "lamp"}
_ALIASES = {"aeroplane": "airplane", "plane": "airplane"}


def _canonical(category: str) -> str:
  name = str(category).split(",")[0].strip().lower()  # ShapeNet taxonomy names look like "airplane,aeroplane,plane"
  name = _SYNSETS.get(name, name)
  return _ALIASES.get(name, name)


def lfd_views(category: str = "chair") -> camera.Views:
  """The paper's 20 views of a category (`g_lfd_camera_*_dict`), in file-name (= azimuth-major) order.

  chair, table and any other category: elevation 20°, azimuths 0:18:342; car: elevation 10°, same azimuths;
  airplane, lamp: azimuths 0:36:324 x elevations {-30°, 0°}. Distance 3, tilt 0.

  Args:
    category: a name ('chair', 'airplane,aeroplane,plane', ...) or a ShapeNet synset id.

  Returns:
    Views of length 20.
  """
  name = _canonical(category)
  if name in ("airplane", "lamp"):
    azimuth, elevation = np.meshgrid(np.arange(0, 360, 36), [-30.0, 0.0], indexing="ij")
  else:
    azimuth = np.arange(0, 360, 18)
    elevation = np.full(20, 10.0 if name == "car" else 20.0)
  return camera.Views.make(azimuth.ravel(), elevation.ravel(), 0.0, LFD_DISTANCE)
