"""The Render-for-CNN view sampler: the paper's histograms, category mapping, user view files."""

import numpy as np
import pytest

from jembed.data import viewpoints
from jembed.shapes import taxonomy


def _bin_frequencies(values, width, offset, bins):
  index = np.mod(np.floor((values - offset) / width + 0.5), bins).astype(int)
  return np.bincount(index, minlength=bins) / len(values)


@pytest.mark.parametrize("category", ["chair", "car", "airplane", "table", "lamp"])
def test_histograms_match_the_paper_weights(category):
  views = viewpoints.paper_distribution(category).sample(np.random.default_rng(0), 40000)
  az_w, el_w, tilt_std = taxonomy.TABLE[category].view_histogram
  # Bin k covers 22.5 k ± 11.25; bin j covers 10 j - 85 ± 5: frequencies follow the weights.
  np.testing.assert_allclose(_bin_frequencies(views.azimuth, 22.5, 0.0, 16), np.array(az_w) / np.sum(az_w), atol=0.01)
  np.testing.assert_allclose(
      _bin_frequencies(views.elevation, 10.0, -85.0, 18), np.array(el_w) / np.sum(el_w), atol=0.01
  )
  assert np.std(views.tilt) == pytest.approx(tilt_std, rel=0.03)
  assert np.all((views.azimuth >= 0) & (views.azimuth < 360))
  assert np.all(np.abs(views.elevation) <= 90)
  np.testing.assert_array_equal(views.distance, 3.0)


def test_chair_elevation_peaks_at_15_degrees():
  views = viewpoints.paper_distribution("chair").sample(np.random.default_rng(1), 20000)
  counts, edges = np.histogram(views.elevation, bins=np.arange(-90, 91, 10))
  assert edges[np.argmax(counts)] == 10  # the 10..20 degree bin, centred on 15
  assert 0.8 < np.mean((views.elevation > -10) & (views.elevation < 50))


def test_jitter_stays_inside_the_bin():
  views = viewpoints.paper_distribution("car").sample(np.random.default_rng(2), 5000)
  az_offset = np.mod(views.azimuth + 11.25, 22.5) - 11.25
  assert np.all(np.abs(az_offset) <= 11.25 + 1e-4)
  assert np.std(az_offset) == pytest.approx(22.5 / np.sqrt(12), rel=0.05)  # uniform within the bin


def test_other_categories_use_the_chair_distribution():
  assert viewpoints.paper_distribution("sofa") == viewpoints.paper_distribution("chair")
  assert viewpoints.paper_distribution("bench") == viewpoints.paper_distribution("03001627")
  assert viewpoints.paper_distribution("aeroplane").tilt_std == 10.0


def test_seeded():
  dist = viewpoints.paper_distribution("airplane")
  a = dist.sample(np.random.default_rng(5), 10)
  b = dist.sample(np.random.default_rng(5), 10)
  np.testing.assert_array_equal(a.azimuth, b.azimuth)
  np.testing.assert_array_equal(a.tilt, b.tilt)


def test_view_file_round_trip_and_lookup(tmp_path):
  lines = np.array([[10, 20, 1, 2.5], [200, -5, -3, 4.0], [370, 0, 0, 3.0]], np.float32)
  (tmp_path / "03001627.txt").write_text(
      "# azimuth elevation tilt distance\n" + "\n".join(" ".join(map(str, row)) for row in lines) + "\n\n"
  )
  dist = viewpoints.distribution_for("chair", str(tmp_path))  # found by synset id
  assert isinstance(dist, viewpoints.SampledViews)
  views = dist.sample(np.random.default_rng(0), 300)
  drawn = set(zip(views.azimuth.round(3), views.elevation.round(3), views.tilt.round(3)))
  assert drawn == {(10.0, 20.0, 1.0), (200.0, -5.0, -3.0), (10.0, 0.0, 0.0)}  # 370 wraps to 10
  np.testing.assert_array_equal(views.distance, 3.0)  # the paper ignores the file's distance
  keep = viewpoints.distribution_for("03001627", str(tmp_path), distance=None).sample(np.random.default_rng(0), 50)
  assert set(keep.distance.tolist()) <= {2.5, 4.0, 3.0}
  # A category without a file falls back to the paper's histogram.
  assert isinstance(viewpoints.distribution_for("car", str(tmp_path)), viewpoints.HistogramViews)
  # write_view_file writes what read_view_file reads.
  viewpoints.write_view_file(tmp_path / "lamp.txt", views[:5])
  np.testing.assert_allclose(viewpoints.read_view_file(tmp_path / "lamp.txt")[:, 0], views.azimuth[:5], atol=1e-3)


def test_bad_view_file_names_the_line(tmp_path):
  (tmp_path / "chair.txt").write_text("10 20 0 3\n10 twenty 0 3\n")
  with pytest.raises(ValueError, match=r"chair.txt:2"):
    viewpoints.distribution_for("chair", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="views_dir"):
    viewpoints.distribution_for("chair", str(tmp_path / "absent"))
