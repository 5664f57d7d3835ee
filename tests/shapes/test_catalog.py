"""Tests for the built-in procedural shape catalog (`jembed.shapes.catalog`).

Each test pins a behaviour with an oracle that does not come from the catalog itself: geometry is measured on surface
samples (trimesh) with scipy k-d trees, the front/up convention is checked against real ShapeNet meshes, hash
independence in a fresh interpreter with another PYTHONHASHSEED.
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial import cKDTree
import trimesh

from jembed.shapes import catalog
from jembed.shapes.record import ShapeRef

_REPO = pathlib.Path(__file__).resolve().parents[2]
_N = catalog.SHAPES_PER_CATEGORY
_KEYS = [(category, index) for category in catalog.CATEGORIES for index in range(_N)]

# Surface samples per shape: a dense set that stands for the surface (k-d tree side) and an independent sparse set of
# query points. With the dense side at 8192 points the sampling noise of a Chamfer distance is ~0.01 of the radius;
# 512 queries already pin its mean to a few percent.
_DENSE, _SPARSE = 8192, 512


def _normalize(points: np.ndarray, mesh: trimesh.Trimesh) -> np.ndarray:
  """Centres the mesh's bounding box at 0 and scales its farthest vertex to radius 1, as the loader does."""
  centre = 0.5 * (mesh.vertices.min(0) + mesh.vertices.max(0))
  return (points - centre) / np.linalg.norm(mesh.vertices - centre, axis=1).max()


@pytest.fixture(scope="module")
def meshes() -> dict:
  return {key: catalog.build_mesh(*key) for key in _KEYS}


@pytest.fixture(scope="module")
def samples(meshes) -> dict:
  """(dense float[8192, 3], sparse float[512, 3]) normalized surface samples per shape, from distinct seeds."""
  out = {}
  for n, key in enumerate(_KEYS):
    mesh = meshes[key]
    dense = trimesh.sample.sample_surface(mesh, _DENSE, seed=2 * n)[0]
    sparse = trimesh.sample.sample_surface(mesh, _SPARSE, seed=2 * n + 1)[0]
    out[key] = (_normalize(dense, mesh), _normalize(sparse, mesh))
  return out


# --- listing ------------------------------------------------------------------------------------------------------


def test_categories_are_sorted_and_complete():
  assert catalog.CATEGORIES == ("airplane", "car", "chair", "lamp", "sofa", "table")
  assert catalog.SHAPES_PER_CATEGORY >= 30


def test_catalog_refs_lists_every_shape_sorted():
  refs = catalog.catalog_refs()
  assert len(refs) == len(catalog.CATEGORIES) * _N
  assert refs == sorted(refs, key=lambda r: (r.category, int(r.path.rsplit("/", 1)[1])))
  assert refs[0] == ShapeRef(id="airplane/000", category="airplane", path="catalog://airplane/0")
  assert refs[-1] == ShapeRef(id=f"table/{_N - 1:03d}", category="table", path=f"catalog://table/{_N - 1}")
  assert len({r.id for r in refs}) == len(refs)
  # Ids sort like (category, index) because the index is zero-padded.
  assert [r.id for r in refs] == sorted(r.id for r in refs)


def test_catalog_refs_limit_takes_the_first_of_every_category():
  refs = catalog.catalog_refs(limit=3)
  assert [r.id for r in refs] == [f"{c}/{i:03d}" for c in catalog.CATEGORIES for i in range(3)]
  assert catalog.catalog_refs(limit=10 * _N) == catalog.catalog_refs()


def test_catalog_refs_filters_categories_in_sorted_order():
  refs = catalog.catalog_refs(categories=("table", "chair"), limit=2)
  assert [r.id for r in refs] == ["chair/000", "chair/001", "table/000", "table/001"]
  assert {r.category for r in catalog.catalog_refs(categories=["lamp"])} == {"lamp"}


def test_unknown_category_is_an_error_naming_the_known_ones():
  with pytest.raises(ValueError, match=r"'boat'.*airplane, car, chair, lamp, sofa, table"):
    catalog.catalog_refs(categories=("chair", "boat"))
  with pytest.raises(ValueError, match="boat"):
    catalog.build_mesh("boat", 0)
  with pytest.raises(ValueError, match="out of range"):
    catalog.describe("chair", _N)


# --- determinism --------------------------------------------------------------------------------------------------


def test_build_and_describe_are_deterministic_and_order_free():
  first = {key: catalog.build_mesh(*key) for key in [("chair", 3), ("car", 30), ("lamp", 17)]}
  catalog.build_mesh("sofa", 5)  # Building something else in between must not change anything.
  for key, mesh in reversed(list(first.items())):
    again = catalog.build_mesh(*key)
    np.testing.assert_array_equal(mesh.vertices, again.vertices)
    np.testing.assert_array_equal(mesh.faces, again.faces)
    assert catalog.describe(*key) == catalog.describe(*key)


def _digest(mesh: trimesh.Trimesh) -> str:
  return hashlib.sha256(mesh.vertices.tobytes() + mesh.faces.tobytes()).hexdigest()


def test_shapes_do_not_depend_on_python_hash_seed():
  """A fresh interpreter with another PYTHONHASHSEED builds byte-identical meshes (no `hash()` in the seeds)."""
  keys = [("airplane", 7), ("table", 21)]
  code = (
      "import hashlib; from jembed.shapes import catalog\n"
      f"for key in {keys!r}:\n"
      "  m = catalog.build_mesh(*key)\n"
      "  print(hashlib.sha256(m.vertices.tobytes() + m.faces.tobytes()).hexdigest(), catalog.describe(*key))\n"
  )
  env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(_REPO))
  result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
  expected = [f"{_digest(catalog.build_mesh(*key))} {catalog.describe(*key)}" for key in keys]
  assert result.stdout.splitlines() == expected


# --- validity and proportions ---------------------------------------------------------------------------------------

# Plausible real-world bounding boxes in metres: (x across, y up, z front-to-back) as (low, high) each.
_EXTENTS = {
    "airplane": ((8.0, 80.0), (1.5, 25.0), (8.0, 80.0)),
    "car": ((1.6, 2.2), (1.0, 2.8), (3.4, 7.2)),
    "chair": ((0.35, 0.9), (0.65, 1.3), (0.35, 0.85)),
    "lamp": ((0.1, 1.2), (0.3, 2.0), (0.1, 1.5)),
    "sofa": ((1.0, 3.8), (0.6, 1.1), (0.6, 2.0)),
    "table": ((0.5, 2.3), (0.35, 0.85), (0.5, 1.4)),
}


@pytest.mark.parametrize("category", catalog.CATEGORIES)
def test_every_shape_is_a_valid_mesh_of_realistic_size(category, meshes):
  for index in range(_N):
    mesh = meshes[category, index]
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    assert np.isfinite(vertices).all()
    assert faces.dtype.kind == "i" and faces.min() >= 0 and faces.max() < len(vertices)
    assert 400 <= len(faces) <= 20_000, (category, index, len(faces))
    # Nearly all triangles have area (a few slivers where rounded corners meet are fine).
    assert (mesh.area_faces > 1e-12).mean() > 0.99, (category, index)
    # Parts are closed and wound outwards, so their signed volumes add up to a positive total.
    assert mesh.volume > 0, (category, index)
    extents = mesh.extents
    for axis, (low, high) in enumerate(_EXTENTS[category]):
      assert low <= extents[axis] <= high, (category, index, "xyz"[axis], extents)
    assert mesh.bounds[0, 1] == 0.0, (category, index, "rests on y = 0")


# --- frame: +Y up, front towards -Z, as ShapeNetCore.v2 ---------------------------------------------------------------


def _top_quarter_mean(points: np.ndarray) -> np.ndarray:
  """Mean of the points in the top quarter of the height range: where a chair's or sofa's back is."""
  low, high = points[:, 1].min(), points[:, 1].max()
  return points[points[:, 1] > low + 0.75 * (high - low)].mean(0)


def test_catalog_faces_minus_z(samples):
  for index in range(_N):
    for category in ("chair", "sofa"):
      assert _top_quarter_mean(samples[category, index][0])[2] > 0.02, (category, index, "back at +Z")
    # An airplane narrows to its nose at -Z; its rear end carries the tailplane, far wider.
    plane = samples["airplane", index][0]
    nose, tail = plane[plane[:, 2] < plane[:, 2].min() + 0.1], plane[plane[:, 2] > plane[:, 2].max() - 0.1]
    assert np.abs(tail[:, 0]).max() > np.abs(nose[:, 0]).max() + 0.1, ("airplane", index, "nose at -Z")
    # A car's front end (bonnet, bumper) is lower than its back end (boot deck, tailgate, cabin, bed).
    car = samples["car", index][0]
    front, back = car[car[:, 2] < car[:, 2].min() + 0.3], car[car[:, 2] > car[:, 2].max() - 0.3]
    assert front[:, 1].max() < back[:, 1].max(), ("car", index, "bonnet at -Z")
    if catalog.describe("lamp", index)["arm"] in ("bent", "articulated"):
      assert _top_quarter_mean(samples["lamp", index][0])[2] < -0.05, ("lamp", index, "reaches to -Z")


def test_shapenet_v2_chairs_put_their_back_where_the_catalog_does(shared_data):
  """ShapeNetCore.v2 chairs (the convention we follow) have their back at +Z, like every catalog chair."""
  paths = sorted((shared_data / "shapenet_samples" / "ShapeNetCore.v2" / "03001627").glob("*/models/*.obj"))
  if not paths:
    pytest.skip("no ShapeNetCore.v2 chairs in the shared data")
  for path in paths:
    mesh = trimesh.load(path, force="mesh")
    points = trimesh.sample.sample_surface(mesh, 4096, seed=0)[0] - mesh.bounds.mean(0)
    back = _top_quarter_mean(points)
    assert back[2] > 0.05 and abs(back[0]) < back[2], (path.parent.parent.name, back)
    assert np.argmax(mesh.extents) == 1 or mesh.extents[1] > 0.6 * mesh.extents.max(), "Y is up"


def test_shapenet_v1_shares_one_front_across_categories(shared_data):
  """In ShapeNetCore.v1 the chair's back and the airplane's tail fin sit on the same side (-X): one "front" for all
  categories, so turning v1 into v2 (front -Z) is one rotation, and the catalog can use one frame for all."""
  root = shared_data / "shapenet_samples" / "ShapeNetCore.v1"
  chairs, planes = sorted(root.glob("03001627/*/model.obj")), sorted(root.glob("02691156/*/model.obj"))
  if not chairs or not planes:
    pytest.skip("no ShapeNetCore.v1 chair and airplane in the shared data")
  chair = trimesh.load(chairs[0], force="mesh")
  chair_points = trimesh.sample.sample_surface(chair, 4096, seed=0)[0] - chair.bounds.mean(0)
  plane = trimesh.load(planes[0], force="mesh")
  plane_points = trimesh.sample.sample_surface(plane, 4096, seed=0)[0] - plane.bounds.mean(0)
  assert _top_quarter_mean(chair_points)[0] < 0, "v1 chair back at -X"
  assert plane_points[plane_points[:, 1].argmax(), 0] < 0, "v1 airplane fin at -X (nose +X)"


# --- diversity: no two shapes alike, structure varies -----------------------------------------------------------------

# Why these thresholds: `_self_distance` (a shape against an independent re-sampling of itself) is the sampling-noise
# floor of the Chamfer distance, 0.004-0.020 of the radius here. Two different shapes must be at least 1.4 times the
# larger of their two floors apart, so a re-sampled copy of every shape retrieves itself and not a sibling, with margin;
# in quadrature that is a real geometric difference about as large as the noise itself. The absolute floor of 0.01
# (1 cm on a 1 m chair) rules out near-duplicates on shapes with a low noise floor. Measured per-category minima:
# ratio 1.51 (car) to 2.7 (lamp), closest pair 0.012 (airplane) to 0.031 (chair); the assertion message reports them.
_MIN_RATIO_TO_NOISE, _MIN_CHAMFER = 1.4, 0.01


def _chamfer_matrix(category: str, samples: dict) -> tuple[np.ndarray, np.ndarray]:
  """float[N, N] symmetric Chamfer distances (mean nearest-neighbour distance, both ways) and float[N] noise floors."""
  trees = [cKDTree(samples[category, i][0]) for i in range(_N)]
  queries = [samples[category, i][1] for i in range(_N)]
  one_way = np.zeros((_N, _N))
  for j in range(_N):
    one_way[:, j] = [trees[j].query(queries[i])[0].mean() for i in range(_N)]
  return 0.5 * (one_way + one_way.T), np.diag(one_way).copy()


@pytest.mark.parametrize("category", catalog.CATEGORIES)
def test_no_two_shapes_in_a_category_are_alike(category, samples):
  distances, noise = _chamfer_matrix(category, samples)
  ratio = distances / np.maximum(noise[:, None], noise[None, :])
  upper = np.triu_indices(_N, 1)
  worst = np.argmin(ratio[upper])
  report = (
      f"{category}: noise {noise.min():.4f}-{noise.max():.4f}, closest pair {distances[upper].min():.4f}, "
      f"lowest ratio {ratio[upper][worst]:.2f} at {upper[0][worst]},{upper[1][worst]}"
  )
  assert ratio[upper].min() >= _MIN_RATIO_TO_NOISE, report
  assert distances[upper].min() >= _MIN_CHAMFER, report


def _is_structural(value) -> bool:
  return isinstance(value, (str, bool, int)) and not isinstance(value, float)


@pytest.mark.parametrize("category", catalog.CATEGORIES)
def test_every_parameter_varies_and_no_two_structures_repeat(category):
  described = [catalog.describe(category, i) for i in range(_N)]
  assert all(d.keys() == described[0].keys() for d in described)
  json.dumps(described)  # Plain Python values only (galleries and logs write them out).
  for key in described[0]:
    assert len({d[key] for d in described}) > 1, (category, key, "never varies")
  structures = [tuple(v for v in d.values() if _is_structural(v)) for d in described]
  assert len(set(structures)) == _N, (category, "two shapes share every structural choice")


def test_chairs_cover_every_leg_and_back_style():
  described = [catalog.describe("chair", i) for i in range(_N)]
  assert {d["legs"] for d in described[:7]} == {
      "straight",
      "splayed",
      "tapered",
      "swivel",
      "sled",
      "cantilever",
      "pedestal",
  }
  assert {d["back"] for d in described} == {"solid", "slatted", "round", "ladder"}
  assert {d["arms"] for d in described} == {"none", "open", "solid"}


# --- category coherence -----------------------------------------------------------------------------------------------


def _occupancy(points: np.ndarray, resolution: int = 16) -> np.ndarray:
  """bool[resolution**3]: which cells of a grid over [-1, 1]^3 the surface samples touch."""
  cells = np.clip(((points + 1.0) * 0.5 * resolution).astype(int), 0, resolution - 1)
  grid = np.zeros((resolution,) * 3, bool)
  grid[cells[:, 0], cells[:, 1], cells[:, 2]] = True
  return grid.ravel()


def test_categories_are_coherent_but_instances_are_not_trivial(samples):
  """Leave-one-out 1-NN on 16^3 surface occupancy (Jaccard distance) recovers the category; within a category the
  nearest neighbour is clearly closer than any other category but never a near-copy."""
  grids = np.stack([_occupancy(samples[key][0]) for key in _KEYS]).astype(np.float64)
  labels = np.array([category for category, _ in _KEYS])
  overlap = grids @ grids.T
  counts = grids.sum(1)
  jaccard = 1.0 - overlap / (counts[:, None] + counts[None, :] - overlap)
  np.fill_diagonal(jaccard, np.inf)
  accuracy = (labels[jaccard.argmin(1)] == labels).mean()
  same = np.where(labels[:, None] == labels[None, :], jaccard, np.inf).min(1)
  other = np.where(labels[:, None] != labels[None, :], jaccard, np.inf).min(1)
  report = (
      f"1-NN accuracy {accuracy:.3f}; nearest same-category distance min {same.min():.3f} median "
      f"{np.median(same):.3f}; nearest other-category median {np.median(other):.3f}"
  )
  assert accuracy >= 0.9, report
  assert same.min() > 0.03, report
  assert np.median(same) < 0.6 * np.median(other), report
