"""Shape sources: the built-in catalog, ShapeNetCore (v1 and v2 layouts), any folder of meshes, and the IKEA models.

The IKEA source is the shape side of our one real-photo benchmark (IKEA photos of Lim et al. 2013 with their
ground-truth models, as processed by Girdhar et al. 2016): its 225 models exist only as 20^3 voxel grids
(`Voxels/<i>.mat`), which loading turns into meshes (`voxels`); `jembed.evaluation.photo_sets` reads the photos against
the
same ids.

`list_shapes(config.shapes)` lists a collection without reading a mesh; `iter_shapes` loads it one shape at a time,
skipping (and reporting) what cannot be used. Row order everywhere is the sorted id order listed here, as in the paper
(sorted by synset, then model id).
"""

import collections
import dataclasses
import json
import os
import pathlib
import re
from typing import Iterable, Iterator

from absl import logging

from jembed.shapes import catalog
from jembed.shapes import loading
from jembed.shapes import record
from jembed.shapes import taxonomy
from jembed.utils import config_checks as checks

SOURCES = ("catalog", "shapenet", "folder", "ikea")


def list_shapes(cfg) -> list[record.ShapeRef]:
  """Lists the shapes `cfg` (the `config.shapes` ConfigDict) asks for, sorted by id.

  Fields read: `source` ('catalog' | 'shapenet' | 'folder' | 'ikea'), `root` (a folder; unused by the catalog),
  `categories` (names or, for ShapeNet, synset ids; empty = all), `limit` (at most this many shapes per category;
  0 = all).

  Raises:
    FileNotFoundError: `root`, or a file the source needs in it, does not exist (the message names it).
    ValueError: unknown source or category, or a root with no shapes in it.
  """
  categories = tuple(cfg.get("categories", ()) or ())
  limit = int(cfg.get("limit", 0) or 0)
  if cfg.source == "catalog":
    return catalog.catalog_refs(categories, limit)
  if cfg.source not in SOURCES:
    raise ValueError(f"config.shapes.source must be one of {SOURCES}, got {cfg.source!r}")
  if not cfg.get("root"):
    raise ValueError(f"config.shapes.root must name a folder for source {cfg.source!r}")
  root = pathlib.Path(os.path.expanduser(cfg.root))
  if not root.is_dir():
    raise FileNotFoundError(f"shape root {str(root)!r} (config.shapes.root) does not exist or is not a folder")
  if cfg.source == "shapenet":
    refs = shapenet_refs(root, categories)
  elif cfg.source == "ikea":
    refs = ikea_refs(root, categories)
  else:
    refs = folder_refs(root, categories)
  check_unique_ids(refs)
  return _limit_per_category(refs, limit)


def check_unique_ids(refs: list[record.ShapeRef]) -> None:
  """Every stage keys shapes by id, so two files with one id would silently become one shape.

  Raises:
    ValueError: naming the id and every file that maps to it (e.g. `chair/model.obj` and `chair/model.stl`).
  """
  by_id = collections.defaultdict(list)
  for ref in refs:
    by_id[ref.id].append(ref.path)
  clashes = {i: p for i, p in by_id.items() if len(p) > 1}
  if clashes:
    lines = "; ".join(f"{i!r} <- {', '.join(map(repr, p))}" for i, p in sorted(clashes.items())[:5])
    more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
    raise ValueError(
        f"{len(clashes)} shape id(s) name more than one file: {lines}{more}. An id is the path without "
        "its mesh extension: rename or remove all but one file of each"
    )


def _limit_per_category(refs: list[record.ShapeRef], limit: int) -> list[record.ShapeRef]:
  if not limit:
    return refs
  seen = collections.Counter()
  kept = []
  for ref in refs:
    if seen[ref.category] < limit:
      seen[ref.category] += 1
      kept.append(ref)
  return kept


def _model_file(model_dir: pathlib.Path) -> pathlib.Path | None:
  """The mesh of one ShapeNet model folder: v2 `models/model_normalized.obj`, v1 `model.obj` (or their .gz)."""
  for name in ("models/model_normalized.obj", "model.obj"):
    for candidate in (model_dir / name, model_dir / (name + ".gz")):
      if candidate.is_file():
        return candidate
  return None


def shapenet_refs(root: pathlib.Path, categories: Iterable[str] = ()) -> list[record.ShapeRef]:
  """Lists ShapeNetCore models under `root/<synset>/<model id>/`, ordered by (synset, model id).

  Categories may be synset ids ('03001627') or names ('chair'); names come from `root/taxonomy.json` when present,
  else from the ShapeNetCore table in `taxonomy`. Model folders without a mesh file are skipped with a warning.
  """
  names = taxonomy.names_from_taxonomy(root / "taxonomy.json")
  synset_dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
  if not synset_dirs:
    raise ValueError(f"no ShapeNet synset folders (8-digit names) under {str(root)!r}: is it the ShapeNetCore root?")
  wanted = taxonomy.resolve(categories, names, available=[p.name for p in synset_dirs])
  refs = []
  for synset_dir in synset_dirs:
    if wanted and synset_dir.name not in wanted:
      continue
    category = names.get(synset_dir.name) or taxonomy.name(synset_dir.name)
    for model_dir in sorted(p for p in synset_dir.iterdir() if p.is_dir()):
      path = _model_file(model_dir)
      if path is None:
        logging.warning("skipped %s/%s: no model.obj or models/model_normalized.obj", synset_dir.name, model_dir.name)
        continue
      refs.append(record.ShapeRef(f"{synset_dir.name}/{model_dir.name}", category, str(path)))
  return refs


def folder_refs(root: pathlib.Path, categories: Iterable[str] = ()) -> list[record.ShapeRef]:
  """Lists every mesh file under `root` (.obj .off .stl .ply .glb .gltf, .obj.gz and .mat voxel grids), sorted by
  relative path.

  The category is the first sub-folder below `root`; files directly in `root` take the root folder's name. The id is the
  relative path without its mesh extension, so `chair/01.obj.gz` is `chair/01`.
  """
  refs = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    for filename in sorted(filenames):
      suffix = loading.mesh_suffix(filename)
      if suffix is None or filename.startswith("."):
        continue
      rel = pathlib.Path(dirpath, filename).relative_to(root)
      stem = rel.as_posix()[: -len(suffix) - (3 if filename.lower().endswith(".gz") else 0)]
      category = rel.parts[0] if len(rel.parts) > 1 else root.name
      refs.append(record.ShapeRef(stem, category, str(root / rel)))
  if not refs:
    raise ValueError(f"no mesh files ({', '.join(loading.MESH_SUFFIXES)}, .obj.gz) under {str(root)!r}")
  return _select_categories(refs, categories, f"under {str(root)!r}")


def _select_categories(refs: list[record.ShapeRef], categories: Iterable[str], where: str) -> list[record.ShapeRef]:
  """The refs of `categories` (empty = all), sorted by id; an unknown category is a ValueError listing the known."""
  categories = tuple(categories)
  if categories:
    known = sorted({r.category for r in refs})
    unknown = [c for c in categories if c not in known]
    if unknown:
      raise ValueError(f"unknown categories {unknown} {where}; found {known}")
    refs = [r for r in refs if r.category in categories]
  return sorted(refs, key=lambda r: r.id)


def _ikea_lines(path: pathlib.Path) -> list[str]:
  if not path.is_file():
    raise FileNotFoundError(
        f"IKEA list {str(path)!r} does not exist: is the root the ikea_photos_voxels folder "
        "(with Lists/, Voxels/ and Images/)?"
    )
  return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def ikea_shape_id(index: int, model: str, category: str) -> str:
  """The id of IKEA model `index` (1-based line of all_obj_clean.txt): `<category>/<index:03d>_<product>_<variant>`.

  E.g. line 68, 'IKEA_chair_POANG/24abfbc0942cbf8fc8b7874340ccdda3_obj0_object.obj' -> 'chair/068_POANG_24abfbc0'.
  The zero-padded index makes ids sort in the list's order (its classes are contiguous and alphabetical); hash-named
  variants are shortened to 8 characters, named ones ('malm_bed_1') kept.
  """
  folder, _, filename = model.partition("/")
  product = folder.split(f"_{category}_", 1)[-1]
  variant = re.sub(r"(_obj\d+_object)?\.obj$", "", filename)
  if re.fullmatch(r"[0-9a-f]{16,}", variant):
    variant = variant[:8]
  return f"{category}/{index:03d}_{product}_{variant}"


def ikea_models(root: str | os.PathLike) -> list[record.ShapeRef]:
  """The IKEA benchmark's models in list order: `refs[i - 1]` is model i of the photos' `Lists/ModelID.txt`.

  `root/Lists/all_obj_clean.txt` names the models, `all_obj_class.txt` gives their class and `root/Voxels/<i>.mat`
  holds model i's 20^3 occupancy grid. A listed grid that is missing is reported (and skipped) when loading, like a
  broken mesh.

  Raises:
    FileNotFoundError: a list or the Voxels folder is missing (the message names it).
    ValueError: the two lists disagree.
  """
  root = pathlib.Path(root)
  models = _ikea_lines(root / "Lists" / "all_obj_clean.txt")
  classes = _ikea_lines(root / "Lists" / "all_obj_class.txt")
  if len(models) != len(classes):
    raise ValueError(
        f"{str(root / 'Lists')!r}: all_obj_clean.txt lists {len(models)} models but all_obj_class.txt "
        f"{len(classes)} classes"
    )
  voxel_dir = root / "Voxels"
  if not voxel_dir.is_dir():
    raise FileNotFoundError(f"IKEA voxel folder {str(voxel_dir)!r} does not exist")
  return [
      record.ShapeRef(ikea_shape_id(i, model, category), category, str(voxel_dir / f"{i}.mat"))
      for i, (model, category) in enumerate(zip(models, classes), start=1)
  ]


def ikea_refs(root: str | os.PathLike, categories: Iterable[str] = ()) -> list[record.ShapeRef]:
  """The IKEA models of `categories` (empty = all 225), sorted by id (which is the list order; see `ikea_shape_id`).

  Raises:
    FileNotFoundError, ValueError: as `ikea_models`, and for unknown categories.
  """
  return _select_categories(ikea_models(root), categories, "in the IKEA set")


@dataclasses.dataclass
class LoadReport:
  """What loading a collection skipped and which shapes share their geometry."""

  n_listed: int = 0
  n_loaded: int = 0
  skipped: list[tuple[record.ShapeRef, str]] = dataclasses.field(default_factory=list)
  duplicates: list[list[str]] = dataclasses.field(default_factory=list)

  def summary(self) -> str:
    return (
        f"{self.n_loaded} of {self.n_listed} shapes loaded, {len(self.skipped)} skipped, "
        f"{len(self.duplicates)} groups of identical geometry"
    )

  def lines(self) -> list[str]:
    """One line per skipped shape with its reason, one per duplicate group, then the summary."""
    out = [f"skipped {ref.id} ({ref.path}): {reason}" for ref, reason in self.skipped]
    out += [f"identical geometry: {', '.join(group)}" for group in self.duplicates]
    return out + [self.summary()]

  def to_json(self) -> str:
    return json.dumps(
        {
            "n_listed": self.n_listed,
            "n_loaded": self.n_loaded,
            "skipped": [{"id": r.id, "path": r.path, "reason": why} for r, why in self.skipped],
            "duplicates": self.duplicates,
        },
        indent=1,
    )


def iter_shapes(
    refs: list[record.ShapeRef],
    up_axis: str = "y",
    front: str = "auto",
    report: LoadReport | None = None,
    summary: bool = True,
) -> Iterator[record.Shape]:
  """Loads `refs` one at a time; a shape that cannot be used is logged, recorded in `report` and skipped.

  Duplicate geometry is recorded when the iteration ends (it is not an error: the Sammon stage has a rule for it).
  `summary=False` leaves out the closing count line, for callers that load a collection in parts and report the
  total themselves (a per-part count reads like a total).
  """
  report = report if report is not None else LoadReport()
  report.n_listed += len(refs)
  by_fingerprint = collections.defaultdict(list)
  for ref in refs:
    try:
      shape = loading.load_mesh(ref, up_axis, front)
    except loading.MeshError as e:
      logging.warning("skipped %s (%s): %s", ref.id, ref.path, e)
      report.skipped.append((ref, str(e)))
      continue
    report.n_loaded += 1
    by_fingerprint[loading.geometry_fingerprint(shape)].append(ref.id)
    yield shape
  for group in by_fingerprint.values():
    if len(group) > 1:
      logging.warning("identical geometry: %s", ", ".join(group))
      report.duplicates.append(group)
  if summary:
    logging.info("%s", report.summary())


def load_shapes(cfg) -> tuple[list[record.Shape], LoadReport]:
  """Lists and loads a whole (small) collection: `(shapes, report)`. Large collections should use `iter_shapes`."""
  report = LoadReport()
  shapes = list(iter_shapes(list_shapes(cfg), cfg.get("up_axis", "y"), cfg.get("front", "auto"), report))
  return shapes, report


# The checks `launch` runs on this stage's config fields before any work (`jembed.utils.config_checks`).
CONFIG_RULES = {
    "shapes.source": checks.choice(SOURCES),
    "shapes.limit": checks.integer(0),
    "shapes.up_axis": checks.choice(loading.UP_AXES),
    "shapes.front": checks.choice(loading.FRONTS),
}
