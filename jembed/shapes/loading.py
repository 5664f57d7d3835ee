"""Reading one mesh file with trimesh (or one voxel grid as its cube surface), checking it and normalizing it.

The canonical frame every later stage assumes is the paper's: ShapeNetCore.v1's, **+Y up and the front facing +X**,
so that the paper's camera at azimuth 0 (on +X) looks at the front of the object. Loading brings each mesh there:

1. Up: `up_axis='z'` converts a Z-up source (ObjectNet3D, most CAD exports, Blender scenes) by the inverse of
   Blender's OBJ import, (x, y, z) <- (X, Z, -Y): a Z-up model's top ends up at +Y and nothing is mirrored.
   `up_axis='x'` converts an X-up source, (x, y, z) <- (-Y, X, Z): the IKEA voxel grids are X-up (array axis 0).
2. Front: a rotation about +Y turns the source's front direction (given in the source's own frame) to +X.
   `front='auto'` knows the layouts we read: ShapeNetCore.v1 `model.obj` faces +X; ShapeNetCore.v2
   `model_normalized.obj` and the built-in catalog face -Z; any other file is taken to face +X.
   ObjectNet3D / PASCAL3D+ models are Z-up facing -Y: `up_axis='z', front='-y'`. The IKEA voxel grids are X-up, and
   most of their chairs, sofas and beds face +Z (their azimuths are not consistent): `up_axis='x', front='+z'`.
3. Normalization: the bounding box of the vertices that faces use is centred at the origin and the mesh is scaled to
   unit bounding-sphere radius (the farthest used vertex from that centre is at distance 1).
"""

import gzip
import hashlib
import io
import os
import pathlib

import numpy as np
import trimesh

from jembed.shapes import catalog
from jembed.shapes import record
from jembed.shapes import voxels

# File types a shape folder may hold: meshes trimesh reads and MATLAB voxel grids (`grid`, see `voxels`); `.gz`
# files are decompressed first.
MESH_SUFFIXES = (".obj", ".off", ".stl", ".ply", ".glb", ".gltf", ".mat")
UP_AXES = ("y", "z", "x")
# Taubin iterations that round a voxel grid's staircase before rendering (see voxels.grid_to_mesh). Chosen by looking
# at renders of the IKEA grids: exact cubes show jagged outlines, and stair-stepped diagonals give HoG false edge
# orientations; 2 rounds them while flat faces stay flat and 1-voxel legs survive (~3 % volume lost); 5 makes parts
# blobby, and marching cubes chamfers every edge.
VOXEL_SMOOTH_ITERATIONS = 2
FRONTS = ("auto", "+x", "-x", "+y", "-y", "+z", "-z")


class MeshError(ValueError):
  """A mesh that cannot be used; the message is the reason a report prints."""


def mesh_suffix(path: str | os.PathLike) -> str | None:
  """The mesh file type of `path` ('.obj' for 'a.obj.gz'), or None when it is not a mesh we read."""
  name = os.fspath(path).lower()
  if name.endswith(".gz"):
    name = name[:-3]
  for suffix in MESH_SUFFIXES:
    if name.endswith(suffix):
      return suffix
  return None


def read_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
  """Reads a mesh file as one triangle mesh (a scene's geometries are concatenated; materials are ignored).

  Raises:
    MeshError: unreadable file, unknown type, or nothing that is a triangle mesh.
  """
  path = pathlib.Path(path)
  suffix = mesh_suffix(path)
  if suffix is None:
    raise MeshError(f"not a mesh file type we read ({', '.join(MESH_SUFFIXES)}, .obj.gz)")
  if suffix == ".mat":
    return _read_voxels(path)
  try:
    if path.name.lower().endswith(".gz"):
      with gzip.open(path, "rb") as f:
        data = io.BytesIO(f.read())
      # Relative resources (mtl, textures) are not needed: materials are ignored.
      mesh = trimesh.load(data, file_type=suffix[1:], force="mesh", process=False, skip_materials=True)
    else:
      mesh = trimesh.load(str(path), force="mesh", process=False, skip_materials=True)
  except Exception as e:  # trimesh raises many types for broken files; all mean "unreadable".
    raise MeshError(f"unreadable: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")) from e
  if not isinstance(mesh, trimesh.Trimesh):
    raise MeshError("empty: no triangle geometry in the file")
  return mesh


def _corner_colors(mesh: trimesh.Trimesh) -> np.ndarray:
  """uint8[F, 3 corners, 3] sRGB colour of one geometry's faces: its texture sampled at the corners' UVs times the
  material's diffuse colour, else the material's colour, else its face or vertex colours (gray when it has none)."""
  visual, faces = mesh.visual, np.asarray(mesh.faces)
  gray = np.full((len(faces), 3, 3), 128, np.uint8)
  if visual.kind == "texture" or isinstance(visual, trimesh.visual.TextureVisuals):
    material = getattr(visual, "material", None)
    if material is None:
      return gray
    color = np.asarray(material.main_color, np.float32)[:3]
    image, uv = getattr(material, "image", None), getattr(visual, "uv", None)
    if image is None or uv is None or len(uv) != len(mesh.vertices):
      return np.broadcast_to(color.astype(np.uint8), (len(faces), 3, 3)).copy()
    texels = np.asarray(image.convert("RGB"), np.float32)
    h, w = texels.shape[:2]
    uv = np.mod(np.asarray(uv, np.float64), 1.0)  # repeat wrapping, as OBJ viewers do
    rows = np.clip(((1.0 - uv[:, 1]) * h).astype(np.int64), 0, h - 1)  # v runs up, image rows down
    cols = np.clip((uv[:, 0] * w).astype(np.int64), 0, w - 1)
    per_vertex = texels[rows, cols] * (color / 255.0)
    return np.clip(np.rint(per_vertex[faces]), 0, 255).astype(np.uint8)
  if visual.kind == "face":
    return np.repeat(np.asarray(visual.face_colors)[:, None, :3], 3, axis=1).astype(np.uint8)
  if visual.kind == "vertex":
    return np.asarray(visual.vertex_colors)[faces][..., :3].astype(np.uint8)
  return gray


def read_appearance(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
  """A mesh file's geometry with its own appearance, for the training images (`config.data.appearance`).

  Returns:
    (float64[V, 3] vertices, int64[F, 3] faces, uint8[F, 3, 3] sRGB colour of each face corner (`_corner_colors`),
    int32[F] group of each face: the file's geometries, which trimesh splits by material); colours and groups are
    None for files without materials (voxel grids; gzipped meshes, whose material files are not read).

  Raises:
    MeshError: as `read_mesh`.
  """
  path = pathlib.Path(path)
  if mesh_suffix(path) in (None, ".mat") or path.name.lower().endswith(".gz"):
    mesh = read_mesh(path)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces), None, None
  try:
    loaded = trimesh.load(str(path), process=False)
  except Exception as e:  # as read_mesh: every failure means "unreadable"
    raise MeshError(f"unreadable: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")) from e
  parts = [loaded] if isinstance(loaded, trimesh.Trimesh) else loaded.dump(concatenate=False)
  parts = [m for m in parts if isinstance(m, trimesh.Trimesh) and len(m.faces)]
  if not parts:
    raise MeshError("empty: no triangle geometry in the file")
  offsets = np.cumsum([0] + [len(m.vertices) for m in parts])
  vertices = np.concatenate([np.asarray(m.vertices, np.float64) for m in parts])
  faces = np.concatenate([np.asarray(m.faces) + o for m, o in zip(parts, offsets)])
  colors = np.concatenate([_corner_colors(m) for m in parts])
  groups = np.concatenate([np.full(len(m.faces), i, np.int32) for i, m in enumerate(parts)])
  return vertices, faces, colors, groups


def _read_voxels(path: pathlib.Path) -> trimesh.Trimesh:
  """The cube surface of a `.mat` (or `.mat.gz`) occupancy grid, in voxel units (see `voxels.grid_to_mesh`)."""
  try:
    if path.name.lower().endswith(".gz"):
      with gzip.open(path, "rb") as f:
        grid = voxels.read_voxel_mat(io.BytesIO(f.read()), name=str(path))
    else:
      grid = voxels.read_voxel_mat(path)
  except (OSError, voxels.VoxelError) as e:
    raise MeshError(str(e)) from e
  vertices, faces = voxels.grid_to_mesh(grid, smooth_iterations=VOXEL_SMOOTH_ITERATIONS)
  return trimesh.Trimesh(vertices, faces, process=False)


def to_y_up(vertices: np.ndarray, up_axis: str) -> np.ndarray:
  """Rotates float[V, 3] vertices from the source's up axis to +Y up (a proper rotation, no mirroring)."""
  if up_axis == "y":
    return vertices
  if up_axis == "z":
    return np.stack([vertices[:, 0], vertices[:, 2], -vertices[:, 1]], axis=1)
  if up_axis == "x":
    return np.stack([-vertices[:, 1], vertices[:, 0], vertices[:, 2]], axis=1)
  raise ValueError(f"up_axis must be one of {UP_AXES}, got {up_axis!r}")


def auto_front(path: str) -> str:
  """The front direction of a source file in its own frame, for the layouts we know (see module docstring)."""
  name = path.rsplit("/", 1)[-1]
  if path.startswith("catalog://") or name.startswith("model_normalized."):
    return "-z"
  return "+x"


def to_canonical(vertices: np.ndarray, up_axis: str = "y", front: str = "+x") -> np.ndarray:
  """Rotates float[V, 3] vertices from the source frame to +Y up, front +X (a proper rotation, no mirroring).

  Args:
    vertices: float[V, 3] in the source frame.
    up_axis: the source's up axis, 'y', 'z' or 'x'.
    front: the source's front direction in its own frame ('+x', '-z', ...); must be horizontal once up is +Y.
  """
  if front not in FRONTS[1:]:
    raise ValueError(f"front must be one of {FRONTS}, got {front!r}")
  f = np.zeros((1, 3))
  f[0, "xyz".index(front[1])] = 1.0 if front[0] == "+" else -1.0
  vertices, (fx, fy, fz) = to_y_up(vertices, up_axis), to_y_up(f, up_axis)[0]
  if abs(fy) > 0:
    raise ValueError(f"front {front!r} is the up axis of a {up_axis}-up source; it must be horizontal")
  # The rotation about +Y that takes (fx, 0, fz) to (1, 0, 0).
  rotation = np.array([[fx, 0, fz], [0, 1, 0], [-fz, 0, fx]])
  return vertices @ rotation.T


def normalize(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Checks a raw mesh and returns it normalized (see module docstring); `normalize_kept` also says which faces
  were kept."""
  vertices, faces, _ = normalize_kept(vertices, faces)
  return vertices, faces


def normalize_kept(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Checks a raw mesh and returns it normalized (see module docstring), with bool[F] the input faces kept.

  Args:
    vertices: float[V, 3], any float dtype.
    faces: int[F, 3] (polygons already triangulated).

  Returns:
    vertices float32[V', 3] (only vertices that faces use, centred, unit bounding-sphere radius) and faces int32[F', 3]
    (degenerate zero-area faces dropped).

  Raises:
    MeshError: empty, non-finite, out-of-range faces or zero surface area.
  """
  vertices = np.asarray(vertices, dtype=np.float64)
  faces = np.asarray(faces)
  if vertices.size == 0 or faces.size == 0:
    raise MeshError("empty: no vertices" if vertices.size == 0 else "empty: no faces")
  if faces.ndim != 2 or faces.shape[1] != 3:
    raise MeshError(f"faces must be triangles, got shape {faces.shape}")
  if faces.min() < 0 or faces.max() >= len(vertices):
    raise MeshError(f"faces index vertices out of range [0, {len(vertices)})")
  used, faces = np.unique(faces, return_inverse=True)
  vertices = vertices[used]
  faces = faces.reshape(-1, 3)
  if not np.isfinite(vertices).all():
    raise MeshError(f"non-finite vertices ({int((~np.isfinite(vertices)).any(axis=1).sum())} NaN/inf)")
  tri = vertices[faces]
  areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
  total = areas.sum()
  extent = np.ptp(vertices, axis=0).max()
  # Area relative to the squared extent, so that a tiny but real model (millimetre units) is not called degenerate.
  if extent == 0 or total <= 1e-12 * extent * extent:
    raise MeshError("zero surface area (all faces degenerate)")
  kept = areas > 1e-14 * extent * extent
  faces = faces[kept]
  center = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
  vertices = vertices - center
  vertices /= np.linalg.norm(vertices, axis=1).max()
  return vertices.astype(np.float32), faces.astype(np.int32), kept


def load_mesh(ref: record.ShapeRef, up_axis: str = "y", front: str = "auto", appearance: bool = False) -> record.Shape:
  """Loads, checks and normalizes the mesh of `ref` (catalog shapes are built, `.mat` voxel grids meshed, other files
  read with trimesh).

  Args:
    ref: the shape to load.
    up_axis: the source's up axis ('y', 'z' or 'x'); ignored for the catalog, which is built +Y up.
    front: the source's front direction in its own frame, or 'auto' (see module docstring).
    appearance: also read the file's own colours and groups (`read_appearance`); only mesh files have them.

  Raises:
    MeshError: the shape cannot be used; the message says why.
  """
  colors = groups = None
  if ref.path.startswith("catalog://"):
    category, index = ref.path[len("catalog://") :].rsplit("/", 1)
    mesh = catalog.build_mesh(category, int(index))
    raw_vertices, raw_faces = mesh.vertices, mesh.faces
    up_axis = "y"  # The catalog is built +Y up whatever a folder source says.
  elif appearance:
    raw_vertices, raw_faces, colors, groups = read_appearance(ref.path)
  else:
    mesh = read_mesh(ref.path)
    raw_vertices, raw_faces = mesh.vertices, mesh.faces
  front = auto_front(ref.path) if front == "auto" else front
  vertices = to_canonical(np.asarray(raw_vertices, np.float64), up_axis, front)
  vertices, faces, kept = normalize_kept(vertices, np.asarray(raw_faces))
  if colors is not None:
    colors, groups = colors[kept], groups[kept]
  return record.Shape(ref=ref, vertices=vertices, faces=faces, corner_colors=colors, face_groups=groups)


def geometry_fingerprint(shape: record.Shape, decimals: int = 4) -> str:
  """A hash of the normalized geometry that ignores vertex and face order: equal for duplicate meshes.

  It hashes the sorted, rounded vertex set together with the face count and the rounded surface area, which is enough to
  catch re-exported or re-ordered copies of one model (the case that makes Sammon weights infinite later).
  """
  v = np.round(shape.vertices.astype(np.float64), decimals) + 0.0  # +0.0 folds -0.0 into 0.0.
  v = v[np.lexsort(v.T[::-1])]
  tri = shape.vertices[shape.faces].astype(np.float64)
  area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
  h = hashlib.sha1(v.tobytes())
  h.update(f"{len(shape.faces)}:{area:.{decimals}f}".encode())
  return h.hexdigest()
