"""The paper's 20 light-field views of a shape (§1.1): the camera positions of each category.

The images rendered from them are turned into HoG inputs by `jembed.embedding.hog_input`.
"""

import numpy as np

from jembed.render import camera
from jembed.shapes import taxonomy


def lfd_views(category: str = "chair") -> camera.Views:
  """The paper's 20 views of a category (`g_lfd_camera_*_dict`), in file-name (= azimuth-major) order.

  chair, table and any category not in `taxonomy.TABLE`: elevation 20°, azimuths 0:18:342; car: elevation 10°,
  same azimuths; airplane, lamp: azimuths 0:36:324 x elevations {-30°, 0°}. Distance 3, tilt 0.

  Args:
    category: a name ('chair', 'airplane,aeroplane,plane', 'desk_lamp', ...), an alias or a ShapeNet synset id.

  Returns:
    Views of length 20.
  """
  elevations = taxonomy.lookup(category).lfd_elevations
  azimuth, elevation = np.meshgrid(np.arange(0, 360, 18 * len(elevations)), elevations, indexing="ij")
  return camera.Views.make(azimuth.ravel(), elevation.ravel(), 0.0, camera.DISTANCE)
