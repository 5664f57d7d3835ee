"""The shape record every stage passes along: a stable id, a category and a normalized mesh.

Listing a collection is cheap (`ShapeRef`: id, category, where it comes from); loading is per shape (`Shape`), so a
collection of 50k ShapeNet meshes never sits in memory at once.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ShapeRef:
  """Where a shape comes from, before anything is read.

  Attributes:
    id: stable id, unique within a collection and sortable: ShapeNet `<synset>/<model id>`, folder
      `<relative path without extension>`, catalog `<category>/<index:03d>`.
    category: category name (ShapeNet: the synset's taxonomy name when known, else the synset id).
    path: the source file, or `catalog://<category>/<index>` for the built-in catalog.
  """

  id: str
  category: str
  path: str


@dataclasses.dataclass(frozen=True, eq=False)
class Shape:
  """A loaded, normalized mesh (+Y up, bounding box centred at 0, bounding-sphere radius 1).

  Attributes:
    ref: the `ShapeRef` it was loaded from.
    vertices: float32[V, 3].
    faces: int32[F, 3], indices into `vertices`.
    corner_colors: uint8[F, 3, 3] the mesh's own sRGB colour at each face corner (materials, textures sampled at the
      corners, vertex or face colours), or None when it was not read (`loading.load_mesh(..., appearance=True)`).
    face_groups: int32[F] the file's group (material) of each face, or None.
  """

  ref: ShapeRef
  vertices: np.ndarray
  faces: np.ndarray
  corner_colors: np.ndarray | None = None
  face_groups: np.ndarray | None = None

  @property
  def id(self) -> str:
    return self.ref.id

  @property
  def category(self) -> str:
    return self.ref.category
