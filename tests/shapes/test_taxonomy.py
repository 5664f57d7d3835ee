"""The one category table: every source's name for a category gets that category's LFD views and view histogram."""

import numpy as np
import pytest

from jembed.data import viewpoints
from jembed.render import lfd
from jembed.shapes import taxonomy

# The paper's own values (reference §1.1 and §2), written out here rather than read from the table under test.
_LFD_ELEVATIONS = {"chair": {20.0}, "table": {20.0}, "car": {10.0}, "airplane": {-30.0, 0.0}, "lamp": {-30.0, 0.0}}
_TILT_STD = {"chair": 3.0, "table": 3.0, "car": 3.0, "airplane": 10.0, "lamp": 10.0}


@pytest.mark.parametrize(
    "name,expected",
    [
        ("chair", "chair"),
        ("03001627", "chair"),
        ("airplane,aeroplane,plane", "airplane"),
        ("aeroplane", "airplane"),
        ("diningtable", "table"),
        ("desk_lamp", "lamp"),
        ("02958343", "car"),
        ("auto", "car"),
        ("automobile", "car"),
        ("Chair", "chair"),
        (" lamp ", "lamp"),
        ("sofa", "sofa"),
        ("04256520", "sofa"),
    ],
)
def test_canonical_names(name, expected):
  assert taxonomy.canonical(name) == expected


@pytest.mark.parametrize(
    "alias,category",
    [
        ("desk_lamp", "lamp"),
        ("diningtable", "table"),
        ("aeroplane", "airplane"),
        ("auto", "car"),
        ("03636649", "lamp"),
        ("02691156", "airplane"),
    ],
)
def test_aliases_get_their_category_views_and_distribution(alias, category):
  """The bug this table fixed: ObjectNet3D's desk_lamp got a chair's LFD views (20°) instead of the lamp's."""
  views = lfd.lfd_views(alias)
  assert set(np.unique(views.elevation).tolist()) == _LFD_ELEVATIONS[category]
  np.testing.assert_array_equal(views.azimuth, lfd.lfd_views(category).azimuth)
  assert viewpoints.paper_distribution(alias) == viewpoints.paper_distribution(category)
  assert viewpoints.paper_distribution(alias).tilt_std == _TILT_STD[category]


@pytest.mark.parametrize("unknown", ["sofa", "bench", "my_widget", ""])
def test_unknown_categories_get_the_documented_default(unknown):
  assert taxonomy.lookup(unknown) is taxonomy.DEFAULT and taxonomy.DEFAULT.name == "chair"
  views = lfd.lfd_views(unknown)
  assert len(views) == 20 and set(views.elevation.tolist()) == {20.0}
  np.testing.assert_array_equal(views.azimuth, np.arange(0, 360, 18))
  assert viewpoints.paper_distribution(unknown) == viewpoints.paper_distribution("chair")


def test_every_row_has_a_paper_sized_histogram_and_20_lfd_views():
  for category in taxonomy.TABLE.values():
    azimuth, elevation, tilt = category.view_histogram
    assert len(azimuth) == 16 and len(elevation) == 18 and tilt > 0
    assert 20 % len(category.lfd_elevations) == 0 and len(lfd.lfd_views(category.name)) == 20
    assert all(taxonomy.canonical(a) == category.name for a in category.aliases)


def test_synsets_of_the_table():
  assert taxonomy.TABLE["chair"].synsets == ("03001627",)
  assert taxonomy.TABLE["airplane"].synsets == ("02691156",)
