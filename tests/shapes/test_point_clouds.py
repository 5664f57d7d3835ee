"""Surface point clouds: on the surface, area-uniform, deterministic from the seed, cached and resumable."""

import os

import ml_collections
import numpy as np
import trimesh

from jembed.shapes import point_clouds
from jembed.shapes import sources


def test_samples_lie_on_the_surface_area_uniformly_with_normals():
  box = trimesh.creation.box(extents=(2.0, 1.0, 1.0))  # faces: 2 of area 1 (x = +-1), 4 of area 2
  points, normals = point_clouds.sample_surface(box.vertices, box.faces, 6000, seed=0, normals=True)
  assert points.shape == normals.shape == (6000, 3) and points.dtype == np.float32
  on_x = np.isclose(np.abs(points[:, 0]), 1.0, atol=1e-6)
  on_yz = np.isclose(np.abs(points[:, 1]), 0.5, atol=1e-6) | np.isclose(np.abs(points[:, 2]), 0.5, atol=1e-6)
  assert np.all(on_x | on_yz)
  assert abs(on_x.mean() - 2 / 10) < 0.02  # the x faces hold 2 of the 10 units of area
  np.testing.assert_allclose(normals[on_x & ~on_yz, 0], np.sign(points[on_x & ~on_yz, 0]), atol=1e-6)
  again, none = point_clouds.sample_surface(box.vertices, box.faces, 6000, seed=0)
  np.testing.assert_array_equal(again, points)
  assert none is None
  assert not np.array_equal(point_clouds.sample_surface(box.vertices, box.faces, 6000, seed=1)[0], points)


def test_collection_cache_is_keyed_and_resumable(tmp_path, monkeypatch):
  monkeypatch.setattr(point_clouds, "CHUNK", 2)
  cfg = ml_collections.ConfigDict(dict(source="catalog", categories=("chair", "table"), limit=2))
  refs = sources.list_shapes(cfg)
  clouds = point_clouds.sample_collection(refs, "y", "auto", str(tmp_path), count=64, seed=3)
  assert list(clouds.ids) == [r.id for r in refs] and clouds.points.shape == (4, 64, 3)
  assert np.abs(np.linalg.norm(clouds.points, axis=-1)).max() <= 1.0 + 1e-5  # the unit bounding sphere
  (folder,) = os.listdir(tmp_path)
  os.remove(tmp_path / folder / "chunk_00001.npz")  # a run killed before its second chunk
  resumed = point_clouds.sample_collection(refs, "y", "auto", str(tmp_path), count=64, seed=3)
  np.testing.assert_array_equal(resumed.points, clouds.points)
  # The same shape gets the same cloud in another listing (a function of seed and id only).
  alone = point_clouds.sample_collection(refs[1:2], "y", "auto", str(tmp_path), count=64, seed=3)
  np.testing.assert_array_equal(alone.points[0], clouds.points[1])
  other = point_clouds.sample_collection(refs, "y", "auto", str(tmp_path), count=64, seed=4, normals=True)
  assert other.normals.shape == (4, 64, 3) and not np.array_equal(other.points, clouds.points)
  assert len(os.listdir(tmp_path)) == 3
  np.testing.assert_array_equal(clouds.rows_for([refs[2].id, refs[0].id]), [2, 0])
