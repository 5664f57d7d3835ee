"""Occupancy grid -> mesh: closed, outward-wound, and enclosing exactly the occupied voxels.

Oracles independent of the mesher: hand-counted cubes, a brute-force count of exposed voxel faces (= the surface
area), trimesh's signed volume, and trimesh's ray-parity `contains` at every voxel centre (= the input grid back).
"""

import numpy as np
import pytest
import scipy.io
import trimesh

from jembed.shapes import loading
from jembed.shapes import record
from jembed.shapes import sources
from jembed.shapes import voxels


def _mesh(grid, **kwargs) -> trimesh.Trimesh:
  vertices, faces = voxels.grid_to_mesh(grid, **kwargs)
  assert vertices.dtype == np.float32 and faces.dtype == np.int32
  return trimesh.Trimesh(vertices, faces, process=False)


def _exposed_faces(grid: np.ndarray) -> int:
  """Brute force: occupied voxels' sides whose neighbour is empty or outside."""
  count = 0
  for i, j, k in np.argwhere(grid):
    for d in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
      n = (i + d[0], j + d[1], k + d[2])
      inside = all(0 <= n[a] < grid.shape[a] for a in range(3))
      count += not (inside and grid[n])
  return count


def _revoxelized(mesh: trimesh.Trimesh, shape) -> np.ndarray:
  centres = np.argwhere(np.ones(shape, bool)) + 0.5
  return mesh.contains(centres).reshape(shape)


def _check_closed(mesh: trimesh.Trimesh, grid: np.ndarray) -> None:
  assert mesh.is_watertight and mesh.is_winding_consistent
  assert mesh.volume == pytest.approx(grid.sum())  # Positive: outward normals.
  assert mesh.area == pytest.approx(_exposed_faces(grid))
  np.testing.assert_array_equal(_revoxelized(mesh, grid.shape), grid)


def test_single_voxel_is_a_closed_cube():
  grid = np.zeros((3, 3, 3), np.uint8)
  grid[1, 1, 1] = 1
  mesh = _mesh(grid)
  assert (len(mesh.vertices), len(mesh.faces)) == (8, 12)
  _check_closed(mesh, grid)
  np.testing.assert_array_equal(mesh.bounds, [[1, 1, 1], [2, 2, 2]])
  outward = np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center - 1.5)
  assert (outward > 0).all()


def test_adjacent_voxels_share_no_interior_face():
  grid = np.zeros((2, 1, 1), bool)
  grid[:] = True
  mesh = _mesh(grid)
  assert (len(mesh.vertices), len(mesh.faces)) == (12, 20)  # 10 quads, the shared one gone.
  _check_closed(mesh, grid)


@pytest.mark.parametrize(
    "occupied",
    [
        [(0, 0, 0), (1, 1, 0)],  # two voxels meeting along an edge
        [(0, 0, 0), (1, 1, 1)],  # ... at a corner
        # Edge-touching voxels (0,0,1), (1,1,1), also joined around both ends of their common edge, so splitting its
        # endpoints alone cannot separate the four faces on it.
        [(0, 0, 1), (1, 1, 1), (0, 0, 2), (1, 0, 2), (1, 1, 2), (0, 0, 0), (0, 1, 0), (1, 1, 0)],
    ],
)
def test_edge_and_corner_contacts_stay_manifold(occupied):
  grid = np.zeros((2, 2, 3), bool)
  grid[tuple(np.array(occupied).T)] = True
  _check_closed(_mesh(grid), grid)


def test_random_grids_enclose_exactly_their_voxels():
  rng = np.random.default_rng(0)
  for density in (0.2, 0.5, 0.8):
    grid = rng.random((6, 5, 7)) < density
    _check_closed(_mesh(grid), grid)


def test_smoothing_keeps_the_mesh_closed_and_its_volume():
  grid = np.zeros((8, 8, 8), bool)
  grid[1:7, 2:6, 1:7] = True
  grid[3:5, 6:8, 3:5] = True
  cubes, smooth = _mesh(grid), _mesh(grid, smooth_iterations=2)
  np.testing.assert_array_equal(cubes.faces, smooth.faces)
  assert smooth.is_watertight and smooth.is_winding_consistent
  assert 0.9 * grid.sum() < smooth.volume < 1.01 * grid.sum()
  assert not np.allclose(cubes.vertices, smooth.vertices)  # Corners were rounded.


def test_marching_cubes_encloses_the_voxel_centres():
  pytest.importorskip("skimage")
  rng = np.random.default_rng(1)
  grid = rng.random((6, 6, 6)) < 0.5
  mesh = _mesh(grid, method="marching_cubes")
  assert mesh.is_watertight and mesh.volume > 0
  np.testing.assert_array_equal(_revoxelized(mesh, grid.shape), grid)


def test_bad_grids_raise():
  with pytest.raises(voxels.VoxelError, match="empty"):
    voxels.grid_to_mesh(np.zeros((4, 4, 4)))
  with pytest.raises(voxels.VoxelError, match="3-D"):
    voxels.grid_to_mesh(np.ones((4, 4)))
  with pytest.raises(ValueError, match="method"):
    voxels.grid_to_mesh(np.ones((2, 2, 2)), method="dual")


def test_mat_files_read_and_load_like_meshes(tmp_path):
  column = np.zeros((5, 3, 3), np.uint8)
  column[:, 1, 1] = 1  # A 5-voxel column along axis 0 (up in an X-up source such as IKEA's).
  scipy.io.savemat(tmp_path / "column.mat", {"grid": column})
  np.testing.assert_array_equal(voxels.read_voxel_mat(tmp_path / "column.mat"), column.astype(bool))
  shape = loading.load_mesh(record.ShapeRef("a/column", "a", str(tmp_path / "column.mat")), "x", "+z")
  extent = np.ptp(shape.vertices, axis=0)
  assert extent[1] == pytest.approx(extent.max()) and extent[1] > 4 * extent[0]  # Standing up along +Y.
  assert np.linalg.norm(shape.vertices, axis=1).max() == pytest.approx(1.0, abs=1e-5)

  scipy.io.savemat(tmp_path / "empty.mat", {"grid": np.zeros((4, 4, 4), np.uint8)})
  scipy.io.savemat(tmp_path / "other.mat", {"occupancy": column})
  (tmp_path / "junk.mat").write_bytes(b"not a mat file")
  for name, reason in (("empty", "empty"), ("other", "no variable 'grid'"), ("junk", "unreadable")):
    path = str(tmp_path / f"{name}.mat")
    with pytest.raises(voxels.VoxelError, match=reason) as error:
      voxels.read_voxel_mat(path)
    assert path in str(error.value)
    with pytest.raises(loading.MeshError, match=reason):  # Skipped and reported like any broken mesh.
      loading.load_mesh(record.ShapeRef(f"a/{name}", "a", path), "x", "+z")


def test_every_ikea_grid_gives_a_closed_mesh_of_its_voxels(shared_data):
  refs = sources.ikea_refs(shared_data / "ikea_photos_voxels")
  assert len(refs) == 225
  for ref in refs:
    grid = voxels.read_voxel_mat(ref.path)
    assert grid.shape == (20, 20, 20)
    mesh = _mesh(grid)
    assert mesh.is_watertight and mesh.is_winding_consistent, ref.id
    assert mesh.volume == pytest.approx(grid.sum()), ref.id
    np.testing.assert_array_equal(_revoxelized(mesh, grid.shape), grid, err_msg=ref.id)
