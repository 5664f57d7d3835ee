"""Shape sources: the built-in catalog, ShapeNetCore (v1 and v2 layouts) and any folder of meshes.

`list_shapes(config.shapes)` lists a collection without reading a mesh; `iter_shapes` loads it one shape at a time,
skipping (and reporting) what cannot be used. Row order everywhere is the sorted id order listed here, as in the paper
(sorted by synset, then model id).
"""

import collections
import dataclasses
import json
import os
import pathlib
from typing import Iterable, Iterator

from absl import logging

from jembed.shapes import catalog
from jembed.shapes import loading
from jembed.shapes import record
from jembed.shapes import synsets

SOURCES = ("catalog", "shapenet", "folder")


def list_shapes(cfg) -> list[record.ShapeRef]:
  """Lists the shapes `cfg` (the `config.shapes` ConfigDict) asks for, sorted by id.

  Fields read: `source` ('catalog' | 'shapenet' | 'folder'), `root` (a folder; unused by the catalog), `categories`
  (names or, for ShapeNet, synset ids; empty = all), `limit` (at most this many shapes per category; 0 = all).

  Raises:
    FileNotFoundError: `root` does not exist (the message names it).
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
  else:
    refs = folder_refs(root, categories)
  return _limit_per_category(refs, limit)


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
  else from the ShapeNetCore table in `synsets`. Model folders without a mesh file are skipped with a warning.
  """
  names = synsets.names_from_taxonomy(root / "taxonomy.json")
  synset_dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
  if not synset_dirs:
    raise ValueError(f"no ShapeNet synset folders (8-digit names) under {str(root)!r}: is it the ShapeNetCore root?")
  wanted = synsets.resolve(categories, names, available=[p.name for p in synset_dirs])
  refs = []
  for synset_dir in synset_dirs:
    if wanted and synset_dir.name not in wanted:
      continue
    category = names.get(synset_dir.name) or synsets.name(synset_dir.name)
    for model_dir in sorted(p for p in synset_dir.iterdir() if p.is_dir()):
      path = _model_file(model_dir)
      if path is None:
        logging.warning("skipped %s/%s: no model.obj or models/model_normalized.obj", synset_dir.name, model_dir.name)
        continue
      refs.append(record.ShapeRef(f"{synset_dir.name}/{model_dir.name}", category, str(path)))
  return refs


def folder_refs(root: pathlib.Path, categories: Iterable[str] = ()) -> list[record.ShapeRef]:
  """Lists every mesh file under `root` (.obj .off .stl .ply .glb .gltf and .obj.gz), sorted by relative path.

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
  categories = tuple(categories)
  if categories:
    known = sorted({r.category for r in refs})
    unknown = [c for c in categories if c not in known]
    if unknown:
      raise ValueError(f"unknown categories {unknown} under {str(root)!r}; found {known}")
    refs = [r for r in refs if r.category in categories]
  return sorted(refs, key=lambda r: r.id)


@dataclasses.dataclass
class LoadReport:
  """What loading a collection skipped and which shapes share their geometry."""
  n_listed: int = 0
  n_loaded: int = 0
  skipped: list[tuple[record.ShapeRef, str]] = dataclasses.field(default_factory=list)
  duplicates: list[list[str]] = dataclasses.field(default_factory=list)

  def summary(self) -> str:
    return (f"{self.n_loaded} of {self.n_listed} shapes loaded, {len(self.skipped)} skipped, "
            f"{len(self.duplicates)} groups of identical geometry")

  def lines(self) -> list[str]:
    """One line per skipped shape with its reason, one per duplicate group, then the summary."""
    out = [f"skipped {ref.id} ({ref.path}): {reason}" for ref, reason in self.skipped]
    out += [f"identical geometry: {', '.join(group)}" for group in self.duplicates]
    return out + [self.summary()]

  def to_json(self) -> str:
    return json.dumps({
        "n_listed": self.n_listed, "n_loaded": self.n_loaded,
        "skipped": [{"id": r.id, "path": r.path, "reason": why} for r, why in self.skipped],
        "duplicates": self.duplicates}, indent=1)


def iter_shapes(refs: list[record.ShapeRef], up_axis: str = "y", front: str = "auto",
                report: LoadReport | None = None) -> Iterator[record.Shape]:
  """Loads `refs` one at a time; a shape that cannot be used is logged, recorded in `report` and skipped.

  Duplicate geometry is recorded when the iteration ends (it is not an error: the Sammon stage has a rule for it).
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
  logging.info("%s", report.summary())


def load_shapes(cfg) -> tuple[list[record.Shape], LoadReport]:
  """Lists and loads a whole (small) collection: `(shapes, report)`. Large collections should use `iter_shapes`."""
  report = LoadReport()
  shapes = list(iter_shapes(list_shapes(cfg), cfg.get("up_axis", "y"), cfg.get("front", "auto"), report))
  return shapes, report
