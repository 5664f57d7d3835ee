"""HoG-NN's query side (jembed/embedding/hog_nn.py): one photo's HoG pyramid does not depend on the batch it was
computed in, and photos reach `PHOTO_SIZE` by the training crops' stretch."""

import numpy as np

from jembed.embedding import hog_nn
from jembed.utils import resample


def test_a_photos_features_do_not_depend_on_its_batch():
  rng = np.random.default_rng(0)
  photos = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
  together = hog_nn.hog_features(photos)
  assert together.shape == (5, 10188) and np.abs(together).sum(1).min() > 0
  np.testing.assert_allclose(hog_nn.hog_features(photos[3:4]), together[3:4], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(hog_nn.hog_features(photos, batch=2), together, rtol=1e-5, atol=1e-6)


def test_photos_are_stretched_to_the_evaluations_size():
  rng = np.random.default_rng(1)
  small = rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
  at = hog_nn.at_photo_size(small)
  assert at.shape == (2, hog_nn.PHOTO_SIZE, hog_nn.PHOTO_SIZE, 3)
  np.testing.assert_array_equal(at[1], resample.stretch(small[1], hog_nn.PHOTO_SIZE))
  assert hog_nn.at_photo_size(at) is at


def test_resident_distances_are_scipys_nearest_view():
  """The query path's resident product gives each shape's nearest-view distance as scipy's cdist does, and as the
  evaluation's streamed `nearest_view`."""
  from scipy.spatial import distance  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(2)
  photos = rng.integers(0, 256, (3, hog_nn.PHOTO_SIZE, hog_nn.PHOTO_SIZE, 3), dtype=np.uint8)
  views = np.abs(rng.normal(0.1, 0.05, (7 * 20, 10188))).astype(np.float32)  # 7 shapes x 20 views
  got = hog_nn.hog_nn_distances(photos, hog_nn.resident_views(views), 7)
  oracle = distance.cdist(hog_nn.hog_features(photos).astype(np.float64), views).reshape(3, 7, 20).min(axis=2)
  np.testing.assert_allclose(got, oracle, rtol=1e-4)
  streamed, _ = hog_nn.nearest_view(hog_nn.hog_features(photos), views, 20)
  np.testing.assert_allclose(got, streamed, rtol=1e-4)
