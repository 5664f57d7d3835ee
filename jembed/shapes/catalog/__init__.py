"""The built-in procedural shape catalog: the default shape source, so the whole system runs with no download.

Six categories (airplane, car, chair, lamp, sofa, table) of `SHAPES_PER_CATEGORY` shapes each. Every shape is drawn
from its own deterministic seed, `np.random.default_rng([category_index, index])`, with real structural variation
(leg / back / arm styles of chairs, table supports, sofa arms and chaises, lamp arms and shades, car body types and
axles, airplane engines, wings and tails) plus continuous proportions, and built as a boolean-free union of numpy
primitives (`primitives.py`: boxes, rounded boxes, tubes, prisms, revolved profiles, lofted sections, wings).

Frame (the ShapeNetCore.v2 `model_normalized.obj` convention, checked on its chairs):
  * +Y is up; every shape rests on y = 0 (its lowest point).
  * The front faces -Z: a chair's back and a sofa's back rise at +Z, a car's bonnet and an airplane's nose point to
    -Z, a lamp's arm reaches out towards -Z. X runs across (left/right), shapes are mirror-symmetric in x except
    for deliberate asymmetries (an L-shaped sofa's chaise).
  * ShapeNetCore.v1 `model.obj` files use the same up axis but face +X (nose of the v1 airplane, front of the v1
    chair); v2 is v1 turned 90 degrees about +Y. We follow v2.
Units are metres with realistic proportions; the loader normalizes (bounding-box centre to the origin, unit
bounding-sphere radius) afterwards.

Typical use:

  refs = catalog_refs(limit=4)            # 4 per category, sorted by (category, index)
  mesh = build_mesh('chair', 3)           # trimesh.Trimesh, raw metres, +Y up, front -Z
  describe('chair', 3)                    # {'legs': 'swivel', 'back': 'slatted', 'arms': 'open', ...}
"""

from collections.abc import Sequence
import types

import numpy as np
import trimesh

from jembed.shapes.catalog import airplanes
from jembed.shapes.catalog import cars
from jembed.shapes.catalog import chairs
from jembed.shapes.catalog import lamps
from jembed.shapes.catalog import sofas
from jembed.shapes.catalog import tables
from jembed.shapes.record import ShapeRef

_BUILDERS: dict[str, types.ModuleType] = {
    "airplane": airplanes,
    "car": cars,
    "chair": chairs,
    "lamp": lamps,
    "sofa": sofas,
    "table": tables,
}

CATEGORIES: tuple[str, ...] = tuple(sorted(_BUILDERS))
SHAPES_PER_CATEGORY: int = 32

__all__ = ["CATEGORIES", "SHAPES_PER_CATEGORY", "build_mesh", "catalog_refs", "describe"]


def _check_category(category: str) -> None:
  if category not in _BUILDERS:
    raise ValueError(f"unknown catalog category {category!r}; known categories: {', '.join(CATEGORIES)}")


def _check_shape(category: str, index: int) -> None:
  _check_category(category)
  if not 0 <= index < SHAPES_PER_CATEGORY:
    raise ValueError(f"catalog index {index} out of range [0, {SHAPES_PER_CATEGORY}) for category {category!r}")


def catalog_refs(categories: Sequence[str] = (), limit: int = 0) -> list[ShapeRef]:
  """Lists catalog shapes, sorted by (category, index).

  Args:
    categories: category names to include; empty means all of `CATEGORIES`.
    limit: 0 for all `SHAPES_PER_CATEGORY` shapes per category, else the first `limit` of each category, so a small
      run still covers every category.

  Returns:
    `ShapeRef(id=f"{category}/{index:03d}", category, path=f"catalog://{category}/{index}")` per shape.

  Raises:
    ValueError: on an unknown category (the message lists the known ones) or a negative limit.
  """
  if isinstance(categories, str):
    categories = (categories,)
  for category in categories:
    _check_category(category)
  if limit < 0:
    raise ValueError(f"limit must be >= 0, got {limit}")
  count = min(limit, SHAPES_PER_CATEGORY) if limit else SHAPES_PER_CATEGORY
  return [
      ShapeRef(id=f"{category}/{index:03d}", category=category, path=f"catalog://{category}/{index}")
      for category in sorted(set(categories or CATEGORIES))
      for index in range(count)
  ]


def describe(category: str, index: int) -> dict:
  """The sampled parameters of one shape: structural choices (str/bool/int) and proportions (float, metres/degrees).

  Deterministic: the seed is `[category_index, index]`, independent of Python's hash randomisation and of the order in
  which shapes are built.
  """
  _check_shape(category, index)
  rng = np.random.default_rng([CATEGORIES.index(category), index])
  return _BUILDERS[category].sample(rng, index)


def build_mesh(category: str, index: int) -> trimesh.Trimesh:
  """Builds one catalog shape: a raw (un-normalized) mesh in metres, +Y up, floor at y = 0, front towards -Z.

  Returns:
    `trimesh.Trimesh` with vertices float64[V, 3] and faces int64[F, 3] (~400 to ~6k faces), the
    concatenation of closed, outward-wound parts (parts may interpenetrate: no booleans).
  """
  params = describe(category, index)
  mesh = _BUILDERS[category].build(params).to_trimesh()
  # Builders place parts from the floor up, but tilted ends (splayed legs, casters, tyres, a plane's belly) may dip a
  # few millimetres below or float above it; rest the lowest point exactly on y = 0.
  mesh.vertices[:, 1] -= mesh.vertices[:, 1].min()
  return mesh
