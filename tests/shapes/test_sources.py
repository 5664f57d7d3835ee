"""Shape sources and loading: real ShapeNet / ObjectNet3D meshes, broken files, normalization, duplicates."""

import gzip
import pathlib
import shutil

import ml_collections
import numpy as np
import pytest
import trimesh

from jembed.shapes import loading
from jembed.shapes import record
from jembed.shapes import sources


def shapes_config(**kw) -> ml_collections.ConfigDict:
  base = dict(source="folder", root="", categories=(), limit=0, up_axis="y")
  base.update(kw)
  return ml_collections.ConfigDict(base)


def assert_normalized(shape: record.Shape):
  v = shape.vertices
  assert v.dtype == np.float32 and shape.faces.dtype == np.int32
  assert v.ndim == 2 and v.shape[1] == 3 and shape.faces.shape[1] == 3
  np.testing.assert_allclose((v.min(0) + v.max(0)) / 2, 0, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(v, axis=1).max(), 1, rtol=1e-5)
  assert shape.faces.min() >= 0 and shape.faces.max() < len(v)


def test_shapenet_v1_and_v2_layouts(shared_data):
  for version, n_expected in (("ShapeNetCore.v1", 2), ("ShapeNetCore.v2", 7)):
    cfg = shapes_config(source="shapenet", root=str(shared_data / "shapenet_samples" / version))
    refs = sources.list_shapes(cfg)
    assert len(refs) == n_expected
    assert [r.id for r in refs] == sorted(r.id for r in refs)  # (synset, id) order, the paper's row order.
    shapes, report = sources.load_shapes(cfg)
    assert report.n_loaded == n_expected and not report.skipped
    for shape in shapes:
      assert_normalized(shape)
      assert len(shape.faces) > 100
  v1 = sources.list_shapes(shapes_config(source="shapenet", root=str(shared_data / "shapenet_samples/ShapeNetCore.v1")))
  assert {r.category for r in v1} == {"airplane", "chair"}
  assert v1[1].id == "03001627/21bfb150cfc23accb01c58badc8bbc39" and v1[1].path.endswith("model.obj")


def test_shapenet_category_filter_by_name_and_synset(shared_data):
  root = str(shared_data / "shapenet_samples" / "ShapeNetCore.v2")
  by_name = sources.list_shapes(shapes_config(source="shapenet", root=root, categories=("chair",)))
  by_id = sources.list_shapes(shapes_config(source="shapenet", root=root, categories=("03001627",)))
  assert by_name == by_id and len(by_name) == 5 and {r.category for r in by_name} == {"chair"}
  assert len(sources.list_shapes(shapes_config(source="shapenet", root=root, limit=2))) == 2 + 1 + 1  # per category
  with pytest.raises(ValueError, match="unknown ShapeNet category 'lamp'"):
    sources.list_shapes(shapes_config(source="shapenet", root=root, categories=("lamp",)))


def test_shapenet_gzipped_v2_whole_category(shared_data):
  cfg = shapes_config(source="shapenet", root=str(shared_data / "shapenet_cameras_v2"), limit=6)
  shapes, report = sources.load_shapes(cfg)
  assert report.n_loaded == 6 and {s.category for s in shapes} == {"camera"}
  for shape in shapes:
    assert_normalized(shape)


def test_folder_source_objectnet3d_z_up(shared_data):
  root = shared_data / "objectnet3d_cad"
  refs = sources.list_shapes(shapes_config(root=str(root)))
  assert len(refs) == 120 and len({r.category for r in refs}) == 17
  assert refs[0].id == "aeroplane/01" and refs[0].category == "aeroplane"
  cfg = shapes_config(root=str(root), categories=("chair", "sofa"), up_axis="z", front="-y")
  shapes, report = sources.load_shapes(cfg)
  assert report.n_loaded == 16 and not report.skipped
  for shape in shapes:
    assert_normalized(shape)
  # The Z-up height becomes the Y extent (the normalization is a similarity, so compare ratios).
  chair = next(s for s in shapes if s.category == "chair")
  raw = np.asarray(loading.read_mesh(chair.ref.path).vertices)
  assert np.ptp(chair.vertices[:, 1]) / np.ptp(chair.vertices[:, 0]) == pytest.approx(
      np.ptp(raw[:, 2]) / np.ptp(raw[:, 1]), rel=1e-4
  )  # Source -Y (the front) is now +X.
  for shape in shapes:  # The front faces +X: backs rise on the -X side (sofa arms rise too, so less far).
    assert _back_side(shape) < (-0.05 if shape.category == "chair" else 0.0), shape.id


def _back_side(shape: record.Shape) -> float:
  """Mean x of the upper part of a chair or sofa: where its back is."""
  v = shape.vertices
  return float(v[v[:, 1] > v[:, 1].min() + 0.6 * np.ptp(v[:, 1]), 0].mean())


def test_shapenet_v1_and_v2_chairs_share_the_front(shared_data):
  for version in ("ShapeNetCore.v1", "ShapeNetCore.v2"):
    cfg = shapes_config(source="shapenet", root=str(shared_data / "shapenet_samples" / version), categories=("chair",))
    shapes, _ = sources.load_shapes(cfg)
    for shape in shapes:
      assert _back_side(shape) < -0.05, shape.id


def test_to_canonical_rotations():
  v = np.eye(3)
  np.testing.assert_allclose(loading.to_canonical(v, "y", "+x"), v)
  np.testing.assert_allclose(loading.to_canonical(np.array([[0, 0, -1.0]]), "y", "-z"), [[1, 0, 0]], atol=1e-12)
  np.testing.assert_allclose(
      loading.to_canonical(np.array([[0, -1, 0.0], [0, 0, 1]]), "z", "-y"), [[1, 0, 0], [0, 1, 0]], atol=1e-12
  )
  for front in ("+z", "-x", "-z"):
    assert np.linalg.det(loading.to_canonical(v, "y", front)) == pytest.approx(1.0)
  with pytest.raises(ValueError, match="horizontal"):
    loading.to_canonical(v, "z", "+z")


def test_z_up_conversion_is_a_rotation():
  v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 2]], np.float64)
  out = loading.to_y_up(v, "z")
  np.testing.assert_array_equal(out[3], [0, 2, 0])  # Z-up top is +Y.
  assert np.linalg.det(np.stack([out[1], out[2], out[3] / 2])) == pytest.approx(1.0)  # No mirroring.
  with pytest.raises(ValueError, match="up_axis"):
    loading.to_y_up(v, "w")


@pytest.fixture
def broken_folder(tmp_path: pathlib.Path) -> pathlib.Path:
  root = tmp_path / "meshes"
  good = root / "box"
  good.mkdir(parents=True)
  trimesh.creation.box((1, 2, 3)).export(good / "ok.obj")
  (good / "empty.obj").write_text("")
  (good / "garbage.ply").write_bytes(bytes(range(256)) * 7)
  (good / "nofaces.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
  (good / "nan.obj").write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")
  (good / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
  (good / "badindex.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
  (good / "notes.txt").write_text("not a mesh")
  # The same box again under another name and format: identical geometry must be reported.
  with gzip.open(good / "ok_copy.obj.gz", "wb") as f:
    f.write((good / "ok.obj").read_bytes())
  return root


def test_broken_meshes_are_skipped_with_reasons(broken_folder):
  cfg = shapes_config(root=str(broken_folder))
  refs = sources.list_shapes(cfg)
  assert "box/notes" not in {r.id for r in refs}
  shapes, report = sources.load_shapes(cfg)
  assert sorted(s.id for s in shapes) == ["box/ok", "box/ok_copy"]
  reasons = {ref.id: why for ref, why in report.skipped}
  assert set(reasons) == {"box/empty", "box/garbage", "box/nofaces", "box/nan", "box/flat", "box/badindex"}
  for mesh_id, why in reasons.items():
    assert why, mesh_id
  assert "non-finite" in reasons["box/nan"] or "unreadable" in reasons["box/nan"]
  assert "zero surface area" in reasons["box/flat"]
  assert report.duplicates == [["box/ok", "box/ok_copy"]]
  lines = report.lines()
  assert len(lines) == 6 + 1 + 1 and lines[-1].startswith("2 of 8 shapes loaded, 6 skipped")


def test_normalize_rejects_and_normalizes():
  with pytest.raises(loading.MeshError, match="empty"):
    loading.normalize(np.zeros((0, 3)), np.zeros((0, 3), int))
  with pytest.raises(loading.MeshError, match="non-finite"):
    loading.normalize(np.array([[0, 0, 0], [np.inf, 0, 0], [0, 1, 0.0]]), np.array([[0, 1, 2]]))
  # Unused far-away vertices do not count for the bounding box; the result is centred with radius 1.
  v = np.array([[0, 0, 0], [2, 0, 0], [0, 4, 0], [100, 100, 100.0]])
  out_v, out_f = loading.normalize(v, np.array([[0, 1, 2]]))
  assert len(out_v) == 3 and out_f.tolist() == [[0, 1, 2]]
  np.testing.assert_allclose(out_v, np.array([[-1, -2, 0], [1, -2, 0], [-1, 2, 0]]) / np.sqrt(5), atol=1e-6)


def test_wrong_root_names_the_path(tmp_path):
  missing = tmp_path / "no_such_dir"
  for source in ("shapenet", "folder"):
    with pytest.raises(FileNotFoundError, match=str(missing)):
      sources.list_shapes(shapes_config(source=source, root=str(missing)))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="no mesh files"):
    sources.list_shapes(shapes_config(root=str(tmp_path / "empty")))
  with pytest.raises(ValueError, match="no ShapeNet synset folders"):
    sources.list_shapes(shapes_config(source="shapenet", root=str(tmp_path / "empty")))
  with pytest.raises(ValueError, match="source must be one of"):
    sources.list_shapes(shapes_config(source="modelnet", root=str(tmp_path)))


def test_folder_category_filter_and_root_files(tmp_path, shared_data):
  root = tmp_path / "mine"
  (root / "chairs").mkdir(parents=True)
  shutil.copy(shared_data / "objectnet3d_cad/chair/01.obj.gz", root / "chairs" / "a.obj.gz")
  trimesh.creation.icosphere().export(root / "ball.stl")
  refs = sources.list_shapes(shapes_config(root=str(root)))
  assert [(r.id, r.category) for r in refs] == [("ball", "mine"), ("chairs/a", "chairs")]
  with pytest.raises(ValueError, match="unknown categories"):
    sources.list_shapes(shapes_config(root=str(root), categories=("sofa",)))


def test_two_files_with_one_id_are_an_error_naming_both(tmp_path):
  root = tmp_path / "meshes"
  (root / "chair").mkdir(parents=True)
  box = trimesh.creation.box()
  box.export(root / "chair" / "model.obj")
  trimesh.creation.icosphere().export(root / "chair" / "model.stl")
  box.export(root / "chair" / "other.ply")
  with pytest.raises(ValueError, match=r"'chair/model' <- .*model\.obj.*model\.stl"):
    sources.list_shapes(shapes_config(root=str(root)))
  (root / "chair" / "model.stl").rename(root / "chair" / "model2.stl")  # unique again: both listed
  assert [r.id for r in sources.list_shapes(shapes_config(root=str(root)))] == [
      "chair/model",
      "chair/model2",
      "chair/other",
  ]
