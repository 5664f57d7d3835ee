"""Boolean-free mesh primitives for the procedural catalog, in plain numpy.

Every primitive returns a `Mesh`, a `(vertices: float64[V, 3], faces: int64[F, 3])` pair, closed and wound outward,
and a shape is the plain union (concatenation) of its parts, as `trimesh.util.concatenate` would make it: no booleans,
so
parts may interpenetrate. We build the arrays ourselves instead of calling `trimesh.creation` because a `Trimesh` object
per part costs ~1 ms of bookkeeping, and the whole catalog (~200 shapes of 10–60 parts) is rebuilt often; one
`trimesh.Trimesh` is made per shape at the end (`MeshBuilder.to_trimesh`).

Most primitives are lofts: a stack of rings `float[R, P, 3]` joined by quads and closed by fans at both ends. Boxes,
tubes, revolved profiles, car bodies, fuselages and wings are all lofts with differently shaped rings.
"""

import functools

import numpy as np
import trimesh

Mesh = tuple[np.ndarray, np.ndarray]

_UP = np.array([0.0, 1.0, 0.0])


class MeshBuilder:
  """Accumulates parts and concatenates them into one `trimesh.Trimesh` (a boolean-free union)."""

  def __init__(self):
    self._vertices: list[np.ndarray] = []
    self._faces: list[np.ndarray] = []
    self._num_vertices = 0

  def add(self, *meshes: Mesh) -> "MeshBuilder":
    for vertices, faces in meshes:
      self._vertices.append(vertices)
      self._faces.append(faces + self._num_vertices)
      self._num_vertices += len(vertices)
    return self

  def add_mirrored_x(self, *meshes: Mesh) -> "MeshBuilder":
    """Adds each mesh and its mirror image across the x = 0 plane (left/right pairs of parts)."""
    for mesh in meshes:
      self.add(mesh, mirror_x(mesh))
    return self

  def to_trimesh(self) -> trimesh.Trimesh:
    vertices = np.concatenate(self._vertices, axis=0)
    faces = np.concatenate(self._faces, axis=0)
    # process=False: parts are disjoint closed surfaces; merging vertices would only cost time.
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


def mirror_x(mesh: Mesh) -> Mesh:
  """Mirror image across x = 0; faces are re-wound so the mirror stays outward-facing."""
  vertices, faces = mesh
  return vertices * np.array([-1.0, 1.0, 1.0]), faces[:, ::-1]


def transform(mesh: Mesh, rotation: np.ndarray | None = None, translation=(0.0, 0.0, 0.0)) -> Mesh:
  """Rotates (float[3, 3], applied first) then translates a mesh."""
  vertices, faces = mesh
  if rotation is not None:
    vertices = vertices @ np.asarray(rotation).T
  return vertices + np.asarray(translation, dtype=np.float64), faces


def rotation_x(angle: float) -> np.ndarray:
  """float[3, 3]; positive angles turn +Y towards +Z."""
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(angle: float) -> np.ndarray:
  """float[3, 3]; positive angles turn +Z towards +X."""
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_z(angle: float) -> np.ndarray:
  """float[3, 3]; positive angles turn +X towards +Y."""
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _grid_faces(num_rings: int, num_points: int, wrap_rings: bool) -> np.ndarray:
  """int64[F, 3]: two triangles per quad between consecutive rings of `num_points` points each."""
  ring = np.arange(num_rings if wrap_rings else num_rings - 1)
  point = np.arange(num_points)
  r0, p0 = np.meshgrid(ring, point, indexing="ij")
  r1, p1 = (r0 + 1) % num_rings, (p0 + 1) % num_points
  a, b, c, d = r0 * num_points + p0, r0 * num_points + p1, r1 * num_points + p1, r1 * num_points + p0
  faces = np.stack([np.stack([a, b, c], -1), np.stack([a, c, d], -1)], axis=2)
  return faces.reshape(-1, 3)


def _orient_outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """Flips the winding when the closed surface's signed volume is negative (the rings ran clockwise)."""
  tri = vertices[faces]
  signed_volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()
  return faces[:, ::-1] if signed_volume < 0 else faces


def loft(rings: np.ndarray, wrap_rings: bool = False) -> Mesh:
  """Joins a stack of closed rings into a closed surface.

  Args:
    rings: float[R, P, 3], R >= 2 rings of P >= 3 points each, all running the same way round.
    wrap_rings: join the last ring back to the first (a torus-like surface, e.g. a revolved closed profile); otherwise
      the first and last rings are closed by fans around their centroids, so end rings should be (near) convex.

  Returns:
    The closed, outward-wound mesh: vertices float64[R * P (+2), 3], faces int64[F, 3].
  """
  rings = np.asarray(rings, dtype=np.float64)
  num_rings, num_points, _ = rings.shape
  vertices = rings.reshape(-1, 3)
  faces = _grid_faces(num_rings, num_points, wrap_rings)
  if not wrap_rings:
    start, end = len(vertices), len(vertices) + 1
    vertices = np.concatenate([vertices, rings[0].mean(0, keepdims=True), rings[-1].mean(0, keepdims=True)])
    point = np.arange(num_points)
    following = (point + 1) % num_points
    last = (num_rings - 1) * num_points
    start_cap = np.stack([np.full(num_points, start), following, point], -1)
    end_cap = np.stack([np.full(num_points, end), last + point, last + following], -1)
    faces = np.concatenate([faces, start_cap, end_cap])
  return vertices, _orient_outward(vertices, faces)


@functools.cache
def _unit_circle(num_points: int) -> np.ndarray:
  """float[P, 2] (cos, sin) around the circle."""
  angle = np.linspace(0.0, 2.0 * np.pi, num_points, endpoint=False)
  return np.stack([np.cos(angle), np.sin(angle)], -1)


def _perpendicular_frame(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Two unit vectors perpendicular to `direction` and to each other."""
  helper = _UP if abs(direction @ _UP) < 0.9 else np.array([1.0, 0.0, 0.0])
  u = np.cross(direction, helper)
  u /= np.linalg.norm(u)
  return u, np.cross(direction, u)


def tube(start, end, radius_start: float, radius_end: float | None = None, sections: int = 16) -> Mesh:
  """A closed (possibly tapered) cylinder from point `start` to point `end`: legs, poles, rods, nacelles."""
  start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
  radius_end = radius_start if radius_end is None else radius_end
  axis = end - start
  u, v = _perpendicular_frame(axis / np.linalg.norm(axis))
  circle = _unit_circle(sections)
  ring = circle[:, :1] * u + circle[:, 1:] * v
  rings = np.stack([start + radius_start * ring, end + radius_end * ring])
  return loft(rings)


@functools.cache
def _unit_icosphere(subdivisions: int) -> Mesh:
  sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
  return np.asarray(sphere.vertices, np.float64), np.asarray(sphere.faces, np.int64)


def ellipsoid(center, radii, subdivisions: int = 2) -> Mesh:
  """An axis-aligned ellipsoid (a sphere when `radii` is a scalar): joints, casters, spinners, knobs."""
  vertices, faces = _unit_icosphere(subdivisions)
  return vertices * np.asarray(radii, np.float64) + np.asarray(center, np.float64), faces


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """float[3, 3]: the smallest rotation taking unit vector `a` to unit vector `b` (Rodrigues' formula)."""
  axis = np.cross(a, b)
  sine, cosine = np.linalg.norm(axis), float(a @ b)
  if sine < 1e-12:
    return np.eye(3)
  k = axis / sine
  cross_matrix = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
  return np.eye(3) + sine * cross_matrix + (1.0 - cosine) * cross_matrix @ cross_matrix


def polyline_tube(points, radius: float, sections: int = 12) -> Mesh:
  """A bent rod swept along `points` (float[N, 3]) as one closed surface with mitred joints (sled runners, arcs).

  The cross-section frame is carried from segment to segment by the smallest rotation, so the tube does not twist;
  at each inner joint the ring is the incoming circle projected onto the bisecting (mitre) plane, which is exactly
  where the incoming and outgoing straight tubes meet.
  """
  points = np.asarray(points, np.float64)
  directions = np.diff(points, axis=0)
  directions /= np.linalg.norm(directions, axis=1, keepdims=True)
  circle = _unit_circle(sections)
  u, v = _perpendicular_frame(directions[0])
  rings = [points[0] + radius * (circle[:, :1] * u + circle[:, 1:] * v)]
  for i in range(1, len(points)):
    incoming = directions[i - 1]
    ring = points[i] + radius * (circle[:, :1] * u + circle[:, 1:] * v)
    if i < len(points) - 1:
      outgoing = directions[i]
      mitre = incoming + outgoing
      mitre /= np.linalg.norm(mitre)
      ring += (-((ring - points[i]) @ mitre) / (incoming @ mitre))[:, None] * incoming
      turn = _rotation_between(incoming, outgoing)
      u, v = turn @ u, turn @ v
    rings.append(ring)
  return loft(np.stack(rings))


def concatenate(meshes: list[Mesh]) -> Mesh:
  """Boolean-free union of meshes, as one `Mesh`."""
  offsets = np.cumsum([0] + [len(v) for v, _ in meshes[:-1]])
  vertices = np.concatenate([v for v, _ in meshes])
  faces = np.concatenate([f + o for (_, f), o in zip(meshes, offsets)])
  return vertices, faces


def rounded_rectangle(half_x: float, half_z: float, corner_radius: float, corner_points: int = 4) -> np.ndarray:
  """float[4 * corner_points, 2]: a convex rounded rectangle in the (x, z) plane, counter-clockwise.

  With `corner_radius` 0 the corner points coincide, so callers pass a positive radius (use `box` for sharp ones).
  """
  corner_radius = min(corner_radius, 0.999 * min(half_x, half_z))
  points = []
  for quadrant, (sx, sz) in enumerate([(1, 1), (-1, 1), (-1, -1), (1, -1)]):
    angle = np.linspace(0.0, 0.5 * np.pi, corner_points) + 0.5 * np.pi * quadrant
    centre = np.array([sx * (half_x - corner_radius), sz * (half_z - corner_radius)])
    points.append(centre + corner_radius * np.stack([np.cos(angle), np.sin(angle)], -1))
  return np.concatenate(points)


def _vertex_normals_2d(outline: np.ndarray) -> np.ndarray:
  """float[P, 2] outward unit normals at the vertices of a convex polygon (either winding)."""
  edges = np.roll(outline, -1, axis=0) - outline
  normals = np.stack([edges[:, 1], -edges[:, 0]], -1)
  normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
  midpoints = outline + 0.5 * edges
  if np.einsum("ij,ij->", normals, midpoints - outline.mean(0)) < 0:
    normals = -normals
  vertex_normals = normals + np.roll(normals, 1, axis=0)
  return vertex_normals / (np.linalg.norm(vertex_normals, axis=1, keepdims=True) + 1e-12)


def prism(
    outline,
    y_bottom: float,
    y_top: float,
    center=(0.0, 0.0, 0.0),
    rotation: np.ndarray | None = None,
    bevel: float = 0.0,
) -> Mesh:
  """A flat slab: the convex `outline` (float[P, 2] in the local x–z plane) extruded from `y_bottom` to `y_top`.

  Round and rounded seats, table tops, shelves and disc bases. `bevel` > 0 chamfers the top and bottom edges by that
  much (clamped to a third of the thickness), which reads as a softened edge in renders.
  """
  outline = np.asarray(outline, np.float64)
  bevel = min(bevel, (y_top - y_bottom) / 3.0)
  if bevel > 0:
    inset = outline - bevel * _vertex_normals_2d(outline)
    levels = [(inset, y_bottom), (outline, y_bottom + bevel), (outline, y_top - bevel), (inset, y_top)]
  else:
    levels = [(outline, y_bottom), (outline, y_top)]
  rings = np.stack([np.insert(points, 1, y, axis=1) for points, y in levels])
  return transform(loft(rings), rotation, center)


def box(center, size, rotation: np.ndarray | None = None) -> Mesh:
  """A sharp box of full extents `size` (x, y, z), rotated about its centre: slats, rails, planks."""
  hx, hy, hz = 0.5 * np.asarray(size, np.float64)
  square = np.array([[hx, hz], [-hx, hz], [-hx, -hz], [hx, -hz]])
  rings = np.stack([np.insert(square, 1, y, axis=1) for y in (-hy, hy)])
  return transform(loft(rings), rotation, center)


def rounded_box(center, size, radius: float, rotation: np.ndarray | None = None, segments: int = 3) -> Mesh:
  """A box with all edges rounded by `radius` (cushions, seats, table tops, car panels).

  Built as rings stacked along local y, each a rounded rectangle inset by the quarter-circle edge profile, so the mesh
  is a smooth ~200-face solid instead of a 12-face block (the renderers' HoG features see edges and shading).
  """
  half = 0.5 * np.asarray(size, np.float64)
  radius = min(radius, 0.9 * half.min())
  # Skip the angle-0 ring (inset = radius, where corner arcs would collapse onto one point).
  angles = np.linspace(0.0, 0.5 * np.pi, segments + 1)[1:]
  heights = radius * (1.0 - np.cos(angles)) - radius * (1.0 - np.cos(angles[0]))
  insets = radius * (1.0 - np.sin(angles))
  rings = []
  for sign, order in ((-1.0, slice(None)), (1.0, slice(None, None, -1))):
    for height, inset in zip(heights[order], insets[order]):
      outline = rounded_rectangle(half[0] - inset, half[2] - inset, radius - inset)
      rings.append(np.insert(outline, 1, sign * (half[1] - height), axis=1))
  return transform(loft(np.stack(rings)), rotation, center)


def revolve(
    profile,
    center=(0.0, 0.0, 0.0),
    sections: int = 24,
    closed_profile: bool = False,
    rotation: np.ndarray | None = None,
) -> Mesh:
  """Revolves a (radius, height) profile around the local y axis: shades, bases, wheels, pedestals.

  Args:
    profile: float[N, 2] of (radius > 0, height) pairs.
    center: where the local origin goes.
    sections: points per ring.
    closed_profile: the profile is a closed loop (a shell with wall thickness, e.g. a lamp shade or a tyre) and the
      surface wraps around; otherwise the two end rings are capped flat.
    rotation: float[3, 3] applied before the translation (e.g. to turn a wheel's axis to x).

  Returns:
    The closed, outward-wound `Mesh`.
  """
  profile = np.asarray(profile, np.float64)
  circle = _unit_circle(sections)
  rings = np.stack([np.stack([r * circle[:, 0], np.full(sections, h), r * circle[:, 1]], -1) for r, h in profile])
  return transform(loft(rings, wrap_rings=closed_profile), rotation, center)


def superellipse(half_width: float, half_height: float, exponent: float, num_points: int) -> np.ndarray:
  """float[P, 2]: |x/a|^n + |y/b|^n = 1, counter-clockwise from +x; exponent 2 is an ellipse, large ones a box."""
  circle = _unit_circle(num_points)
  power = 2.0 / exponent
  return np.stack(
      [
          half_width * np.sign(circle[:, 0]) * np.abs(circle[:, 0]) ** power,
          half_height * np.sign(circle[:, 1]) * np.abs(circle[:, 1]) ** power,
      ],
      -1,
  )


def section_loft(stations, exponent: float = 4.0, num_points: int = 24, taper_top: float = 1.0) -> Mesh:
  """A body lofted along z through rounded cross-sections: car bodies, cabins, fuselages, nacelles.

  Args:
    stations: float[S, 4] rows (z, y_bottom, y_top, half_width); the sections are superellipses spanning
      [y_bottom, y_top] vertically and ±half_width in x.
    exponent: superellipse exponent (2 round, 4–6 boxy).
    num_points: points per section.
    taper_top: x scale at the top of each section relative to the bottom (< 1 leans the sides in, like a car's
      greenhouse).

  Returns:
    The closed `Mesh`.
  """
  stations = np.asarray(stations, np.float64)
  unit = superellipse(1.0, 1.0, exponent, num_points)
  x_scale = 1.0 + (taper_top - 1.0) * 0.5 * (unit[:, 1] + 1.0)
  rings = []
  for z, y_bottom, y_top, half_width in stations:
    centre_y, half_height = 0.5 * (y_top + y_bottom), 0.5 * (y_top - y_bottom)
    rings.append(
        np.stack([half_width * unit[:, 0] * x_scale, centre_y + half_height * unit[:, 1], np.full(num_points, z)], -1)
    )
  return loft(np.stack(rings))


def wing(
    root, tip, root_chord: float, tip_chord: float, thickness: float, num_points: int = 16, vertical: bool = False
) -> Mesh:
  """A tapered lifting surface from `root` to `tip` (leading-edge points); chord runs along +z (nose is -z).

  Args:
    root: float[3], the leading edge at the root.
    tip: float[3], the leading edge at the tip (sweep and dihedral come from its offset to `root`).
    root_chord: chord length at the root; tip_chord at the tip.
    thickness: thickness-to-chord ratio of the (elliptical) section.
    num_points: points per section.
    vertical: the section lies in the y–z plane instead of x–z (a fin rather than a wing).

  Returns:
    The closed `Mesh`.
  """
  circle = _unit_circle(num_points)
  rings = []
  for leading_edge, chord in ((root, root_chord), (tip, tip_chord)):
    along = chord * 0.5 * (1.0 + circle[:, 0])
    across = chord * thickness * 0.5 * circle[:, 1]
    if vertical:
      section = np.stack([across, np.zeros(num_points), along], -1)
    else:
      section = np.stack([np.zeros(num_points), across, along], -1)
    rings.append(np.asarray(leading_edge, np.float64) + section)
  return loft(np.stack(rings))
