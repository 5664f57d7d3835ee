"""The IKEA benchmark: its shape source, its photo set and its config, against the counts its SOURCE.md gives."""

import collections
import shutil

import ml_collections
import numpy as np
import pytest

from configs import ikea as ikea_config
from jembed.evaluation import photo_sets
from jembed.shapes import sources


@pytest.fixture(scope="module")
def ikea_root(shared_data):
  return shared_data / "ikea_photos_voxels"


def _cfg(root, **kwargs) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({**dict(source="ikea", root=str(root), categories=(), limit=0), **kwargs})


def test_source_lists_the_225_models_by_category(ikea_root):
  refs = sources.list_shapes(_cfg(ikea_root))
  assert collections.Counter(r.category for r in refs) == dict(
      table=69, chair=41, desk=27, wardrobe=25, bed=22, sofa=21, bookcase=20
  )
  ids = [r.id for r in refs]
  assert ids == sorted(ids) == [r.id for r in sources.ikea_models(ikea_root)]  # Sorted ids = model order.
  assert ids[67] == "chair/068_POANG_24abfbc0" and refs[67].path.endswith("/Voxels/68.mat")
  assert ids[112] == "sofa/113_EKTORP_7b3bab90" and ids[169] == "table/170_LACK_lack_table_2"


def test_source_honours_categories_and_limit(ikea_root):
  refs = sources.list_shapes(_cfg(ikea_root, categories=("sofa", "bed"), limit=3))
  assert [r.id for r in refs] == [
      "bed/001_BEDDINGE_f9c955b7",
      "bed/002_BRIMNES_4b534bea",
      "bed/003_BRIMNES_7151b3c2",
      "sofa/111_EKTORP_3be1c0aa",
      "sofa/112_EKTORP_3fcb0aaa",
      "sofa/113_EKTORP_7b3bab90",
  ]
  with pytest.raises(ValueError, match="unknown categories .* in the IKEA set"):
    sources.list_shapes(_cfg(ikea_root, categories=("lamp",)))


def test_photos_resolve_to_listed_shapes(ikea_root):
  photos = photo_sets.load_photo_set("ikea", ikea_root)
  assert len(photos) == 937
  listed = {r.id: r.category for r in sources.ikea_refs(ikea_root)}
  assert all(listed[p.shape_id] == p.category for p in photos)
  assert collections.Counter(p.category for p in photos) == dict(
      bookcase=302, chair=227, table=195, sofa=158, desk=29, bed=26
  )
  assert len({p.shape_id for p in photos}) == 43
  assert photos[0].path.endswith("/Images/00000002_001.jpg") and photos[0].shape_id == "chair/068_POANG_24abfbc0"


def test_the_ikea_halves_are_pinned(ikea_root):
  """The tuning / held-out split of the models: fixed by the ids, so a change to it shows here, not in a table."""
  refs = sources.ikea_refs(ikea_root)
  half = {r.id: photo_sets.ikea_half(r.id) for r in refs}
  assert collections.Counter(half.values()) == dict(tune=112, held_out=113)
  photos = photo_sets.load_photo_set("ikea", ikea_root)
  shown = {p.shape_id for p in photos}
  assert collections.Counter(half[s] for s in shown) == dict(tune=20, held_out=23)
  assert collections.Counter(half[p.shape_id] for p in photos) == dict(tune=467, held_out=470)
  assert half["chair/068_POANG_24abfbc0"] == "held_out" and half["bed/005_BRIMNES_e1e53ec2"] == "tune"


def test_loaded_chairs_stand_up_and_face_azimuth_zero(ikea_root):
  """Chairs whose backrest is clear in the grids: +Y up, and the backrest behind (-X), so azimuth 0 sees the front."""
  config = ikea_config.get_config(f"root={ikea_root},categories=chair")
  wanted = ("chair/043_BERNHARD", "chair/044_BORJE", "chair/053_HERMAN", "chair/055_IVAR", "chair/081_VILMAR")
  refs = [r for r in sources.list_shapes(config.shapes) if r.id.startswith(wanted)]
  assert len(refs) == len(wanted)
  for shape in sources.iter_shapes(refs, config.shapes.up_axis, config.shapes.front):
    v = shape.vertices
    top = v[v[:, 1] > 0.5 * v[:, 1].max()]  # The backrest: everything in the upper half.
    assert np.ptp(v[:, 1]) >= np.ptp(v[:, [0, 2]], axis=0).max() - 1e-6, shape.id  # Tall, not lying down.
    assert top[:, 0].mean() < -0.2, shape.id  # Behind the seat.
    assert abs(top[:, 2].mean()) < 0.1, shape.id  # Centred left-right.


def test_config_parses_root_and_backgrounds():
  config = ikea_config.get_config("root=/data/ikea,backgrounds=/data/sun,limit=2")
  assert (config.shapes.source, config.shapes.root, config.shapes.limit) == ("ikea", "/data/ikea", 2)
  assert (config.shapes.up_axis, config.shapes.front) == ("x", "+z")
  assert config.data.backgrounds == "/data/sun"
  assert (config.eval.photo_set, config.eval.photo_root) == ("ikea", "/data/ikea")
  config.shapes.root = "/elsewhere"  # A --config.shapes.root override moves the photos with the shapes.
  assert config.eval.photo_root == "/elsewhere"


def test_wrong_roots_name_what_is_missing(ikea_root, tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    sources.list_shapes(_cfg(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match="all_obj_clean.txt"):
    sources.list_shapes(_cfg(tmp_path))
  shutil.copytree(ikea_root / "Lists", tmp_path / "Lists")
  with pytest.raises(FileNotFoundError, match="Voxels"):
    sources.list_shapes(_cfg(tmp_path))
  (tmp_path / "Voxels").mkdir()
  assert len(sources.list_shapes(_cfg(tmp_path))) == 225  # Listing reads no grid; loading reports missing ones.
  with pytest.raises(FileNotFoundError, match="937 of 937 photos .* missing"):
    photo_sets.ikea_photos(tmp_path)


def test_folder_photos_read_labels(tmp_path):
  (tmp_path / "a photo.jpg").write_bytes(b"")
  (tmp_path / "b.png").write_bytes(b"")
  (tmp_path / "labels.txt").write_text("# file shape_id\na photo.jpg chair/068_POANG_24abfbc0\n\nb.png 03001627/1a2b\n")
  photos = photo_sets.load_photo_set("folder", tmp_path)
  assert photos == [
      photo_sets.Photo(str(tmp_path / "a photo.jpg"), "chair/068_POANG_24abfbc0", "chair"),
      photo_sets.Photo(str(tmp_path / "b.png"), "03001627/1a2b", "03001627"),
  ]
  (tmp_path / "labels.txt").write_text("c.jpg chair/1\n")
  with pytest.raises(FileNotFoundError, match="c.jpg"):
    photo_sets.folder_photos(tmp_path)
  with pytest.raises(ValueError, match="photo set must be one of"):
    photo_sets.load_photo_set("pascal", tmp_path)


def test_folder_labels_with_a_category_only(tmp_path):
  (tmp_path / "a b.jpg").write_bytes(b"x")
  (tmp_path / "c.jpg").write_bytes(b"x")
  (tmp_path / "labels.txt").write_text("# real chairs\na b.jpg chair\nc.jpg chair/007\n")
  photos = photo_sets.folder_photos(tmp_path)
  assert [(p.shape_id, p.category) for p in photos] == [("", "chair"), ("chair/007", "chair")]
  assert photos[0].path == str(tmp_path / "a b.jpg")
