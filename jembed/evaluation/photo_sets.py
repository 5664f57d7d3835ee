"""Real photos with their ground-truth shape: the sets that say whether the embedding works beyond our renderer.

Synthetic test images only measure how well the CNN inverts our own rendering; the paper's claim is that a real photo
lands near its shape. A photo set is a list of `Photo`s whose `shape_id` is an id the shape source lists, so the
evaluation can look up the ground truth's row in `shape_embedding.npz`:

* **'ikea'**: the IKEA benchmark (Lim et al. 2013, as processed by Girdhar et al. 2016), 937 cropped photos of 43 of
  the 225 models of the `ikea` shape source. `root` is the same folder as that source's `config.shapes.root`.
  The models are split in two fixed halves (`ikea_half`): anything tuned on real photos (fusion weights, switches
  of the training images) is tuned on the photos of the **tuning** half only and reported on the **held-out** half.
* **'folder'**: your own photos: `root/labels.txt` has one `<file> <shape_id>` line per photo (file relative to
  `root`, may contain spaces; blank lines and `#` comments are skipped). The category is the id's first path
  component (`chair/068_POANG_24abfbc0` -> 'chair'; ShapeNet ids give the synset). A label without '/' is a
  **category only** (`<file> chair`): photos whose exact shape is not in the collection (ExactMatchChairs against
  the demo's shapes) are then scored by the categories of their nearest shapes (category top-1 / top-5 and the
  confusion between categories), not by shape ranks.
"""

import dataclasses
import hashlib
import os
import pathlib

from jembed.shapes import sources

KINDS = ("ikea", "folder")

# The two halves of the IKEA models. Fixed by the model id alone (never by results), so that no run can move a model
# from one half to the other: 112 of the 225 models are in the tuning half (20 of the 43 photographed, 467 photos),
# 113 held out (23 photographed, 470 photos); tests pin these counts.
IKEA_HALVES = ("tune", "held_out")


def ikea_half(shape_id: str) -> str:
  """'tune' when the first byte of SHA-256(shape_id) is even, else 'held_out' (ids as `sources.ikea_refs` has them)."""
  return IKEA_HALVES[hashlib.sha256(shape_id.encode()).digest()[0] % 2]


@dataclasses.dataclass(frozen=True)
class Photo:
  """One real photo and the shape it shows.

  Attributes:
    path: the image file.
    shape_id: the ground-truth shape's id, as the shape source lists it; '' when only the category is known.
    category: that shape's category.
  """

  path: str
  shape_id: str
  category: str


def _read_lines(path: pathlib.Path) -> list[str]:
  if not path.is_file():
    raise FileNotFoundError(f"photo list {str(path)!r} does not exist")
  return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _check_exist(photos: list[Photo], where: pathlib.Path) -> list[Photo]:
  missing = [p.path for p in photos if not os.path.isfile(p.path)]
  if missing:
    raise FileNotFoundError(
        f"{len(missing)} of {len(photos)} photos listed in {str(where)!r} are missing, e.g. "
        f"{', '.join(repr(m) for m in missing[:3])}"
    )
  return photos


def ikea_photos(root: str | os.PathLike) -> list[Photo]:
  """The IKEA photos in `Lists/Images.txt` order, each with its model from `Lists/ModelID.txt` (1-based).

  Args:
    root: the ikea_photos_voxels folder (`Images/`, `Lists/`, `Voxels/`).

  Returns:
    937 `Photo`s for the published set; shape ids are those of `sources.ikea_refs(root)`.

  Raises:
    FileNotFoundError: a list, the Voxels folder or listed photos are missing (the message names them).
    ValueError: the lists disagree in length or a model index is out of range.
  """
  root = pathlib.Path(os.path.expanduser(root))
  models = sources.ikea_models(root)
  names = _read_lines(root / "Lists" / "Images.txt")
  model_ids = _read_lines(root / "Lists" / "ModelID.txt")
  if len(names) != len(model_ids):
    raise ValueError(f"{str(root / 'Lists')!r}: Images.txt lists {len(names)} photos but ModelID.txt {len(model_ids)}")
  photos = []
  for line, (name, model_id) in enumerate(zip(names, model_ids), start=1):
    if not model_id.isdigit() or not 1 <= int(model_id) <= len(models):
      raise ValueError(
          f"{str(root / 'Lists' / 'ModelID.txt')!r} line {line}: {model_id!r} is not a model index "
          f"in [1, {len(models)}]"
      )
    model = models[int(model_id) - 1]
    photos.append(Photo(str(root / "Images" / name), model.id, model.category))
  return _check_exist(photos, root / "Lists" / "Images.txt")


def folder_photos(root: str | os.PathLike) -> list[Photo]:
  """Photos of `root/labels.txt` (`<file> <shape_id>` lines; see the module docstring), in file order.

  Raises:
    FileNotFoundError: no labels.txt, or listed photos are missing (the message names them).
    ValueError: a line without a shape id.
  """
  root = pathlib.Path(os.path.expanduser(root))
  labels = root / "labels.txt"
  photos = []
  for line, text in enumerate(_read_lines(labels), start=1):
    if text.startswith("#"):
      continue
    parts = text.rsplit(None, 1)
    if len(parts) != 2:
      raise ValueError(f"{str(labels)!r} line {line}: expected '<file> <shape_id>', got {text!r}")
    name, label = parts
    shape_id = label if "/" in label else ""  # a bare name is a category (module docstring)
    photos.append(Photo(str(root / name), shape_id, label.split("/", 1)[0]))
  if not photos:
    raise ValueError(f"{str(labels)!r} lists no photos")
  return _check_exist(photos, labels)


def load_photo_set(kind: str, root: str | os.PathLike) -> list[Photo]:
  """The photo set `kind` ('ikea' | 'folder') under `root` (`config.eval.photo_set`, `config.eval.photo_root`)."""
  if not root:
    raise ValueError(f"photo set {kind!r} needs a folder (config.eval.photo_root)")
  if kind == "ikea":
    return ikea_photos(root)
  if kind == "folder":
    return folder_photos(root)
  raise ValueError(f"photo set must be one of {KINDS}, got {kind!r}")
