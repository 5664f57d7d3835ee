"""The paper's 20 LFD camera positions per category."""

import numpy as np
import pytest

from jembed.render import camera
from jembed.render import lfd


@pytest.mark.parametrize(
    "category, elevation",
    [("chair", 20.0), ("table", 20.0), ("car", 10.0), ("03001627", 20.0), ("bathtub", 20.0), ("02958343", 10.0)],
)
def test_single_elevation_views(category, elevation):
  views = lfd.lfd_views(category)
  assert len(views) == 20 and views.azimuth.dtype == np.float32
  np.testing.assert_array_equal(views.azimuth, np.arange(0, 360, 18))
  np.testing.assert_array_equal(views.elevation, elevation)
  np.testing.assert_array_equal(views.tilt, 0.0)
  np.testing.assert_array_equal(views.distance, 3.0)


@pytest.mark.parametrize("category", ["airplane", "airplane,aeroplane,plane", "02691156", "lamp", "03636649"])
def test_two_elevation_views(category):
  views = lfd.lfd_views(category)
  assert len(views) == 20
  # File-name order: azimuth-major, elevations -30 then 0 at each azimuth.
  np.testing.assert_array_equal(views.azimuth, np.repeat(np.arange(0, 360, 36), 2))
  np.testing.assert_array_equal(views.elevation, np.tile([-30.0, 0.0], 10))
  np.testing.assert_array_equal(views.distance, 3.0)


def test_lfd_views_feed_the_camera():
  views = lfd.lfd_views("airplane")
  _, depth = camera.project(np.zeros((1, 3)), views)
  np.testing.assert_allclose(depth, 3.0, rtol=1e-6)
