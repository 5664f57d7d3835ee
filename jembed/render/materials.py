"""Coloured surfaces: per-part materials with solid textures and a specular lobe, shaded the same way by both backends.

The gray path (`shading.shade`, `glsl_shade`) stays as it is for the LFD views. A render that asks for an `Appearance`
takes a deferred path instead: each backend only finds, per supersample, the face it hits and the hit point
(`Hits`), and the colour is computed here, in NumPy, for both of them; so the two backends can differ only where
their rasterization differs (silhouettes), never in the colour of a surface.

    linear_c = clip(albedo_c(part, p) · (ambient + Σ_l E_l · falloff(r_l) · max(0, n·l_l))
                    + specular · Σ_l E_l · falloff(r_l) · [n·l_l > 0] · max(0, n·h_l)^shininess, 0, 1)

(Blinn-Phong; h_l is the half vector between the directions to the lamp and to the eye). The albedo is a
material's base colour, or two colours mixed by a **solid texture** of the point p in the normalized object frame
(no UVs needed, so every mesh can be textured, also the IKEA voxel grids): value noise, stripes, a checker, wood-like
rings around an axis, or fabric-like fine noise. A mesh's own appearance (`own_color`: per-face colours baked from
its materials, vertex colours or UV textures) is one more "pattern".
"""

import dataclasses

import numpy as np

from jembed.render import lights as lights_lib
from jembed.render import shading

PATTERNS = ("plain", "noise", "stripes", "checker", "wood", "fabric", "own")


@dataclasses.dataclass(frozen=True)
class Palette:
  """The materials of one view, indexed by material row m.

  Attributes:
    color: float32[M, 3] linear base albedo in [0, 1].
    color2: float32[M, 3] the second colour a pattern mixes in.
    pattern: int32[M] index into `PATTERNS`.
    frequency: float32[M] pattern cells (or bands) per unit length of the normalized object.
    axis: float32[M, 3] unit direction of stripes and of the wood rings' axis.
    offset: float32[M, 3] shift of the pattern in object space (a new draw of the same texture).
    specular: float32[M] strength of the Blinn-Phong lobe (0 = matte).
    shininess: float32[M] its exponent (higher = smaller, sharper highlight).
  """

  color: np.ndarray
  color2: np.ndarray
  pattern: np.ndarray
  frequency: np.ndarray
  axis: np.ndarray
  offset: np.ndarray
  specular: np.ndarray
  shininess: np.ndarray

  @classmethod
  def plain(cls, color, specular: float = 0.0, shininess: float = 1.0) -> "Palette":
    """One untextured material of linear albedo `color` (float[3])."""
    color = np.asarray(color, np.float32).reshape(1, 3)
    return cls(
        color,
        color,
        np.zeros(1, np.int32),
        np.ones(1, np.float32),
        np.array([[1.0, 0.0, 0.0]], np.float32),
        np.zeros((1, 3), np.float32),
        np.full(1, specular, np.float32),
        np.full(1, shininess, np.float32),
    )

  @property
  def size(self) -> int:
    return len(self.pattern)


@dataclasses.dataclass(frozen=True)
class Appearance:
  """How the faces of one mesh are coloured in each view of a render call.

  Attributes:
    face_material: int32[F], each face's part; the part's material in a view is row `face_material % M` of its
      palette (so a palette need not know how many parts a mesh has).
    palettes: one `Palette` per view.
    own_color: float32[F, 3, 3] the mesh's own linear albedo at each face corner (interpolated across the face), used
      by rows whose pattern is 'own'; None when the mesh has none.
    canonical: int32[F] the face whose colour each face shows (`canonical_faces`); filled in by the renderers.
  """

  face_material: np.ndarray
  palettes: tuple
  own_color: np.ndarray | None = None
  canonical: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Hits:
  """What a backend found at each supersample of one view.

  Attributes:
    face: int32[S] the hit face, -1 where nothing is hit.
    points: float32[S, 3] the hit points (world frame), anything where nothing is hit.
  """

  face: np.ndarray
  points: np.ndarray


def canonical_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """int32[F]: for each face, the lowest-index face with the same three corner positions (itself when unique).

  ShapeNet meshes often hold a surface twice (two-sided copies with their own vertices and materials). Which copy a
  sample hits is a depth tie that the rasterizer and the ray caster break differently, so both copies are coloured
  as the first one: the backends then agree, also on the mesh's own colours.
  """
  corners = np.round(np.asarray(vertices, np.float64)[np.asarray(faces)], 6).reshape(-1, 3)  # [3F, 3]
  owner = np.repeat(np.arange(len(faces)), 3)
  order = np.lexsort((corners[:, 2], corners[:, 1], corners[:, 0], owner))  # each face's corners in one order
  key = corners[order].reshape(len(faces), 9)
  _, inverse = np.unique(key, axis=0, return_inverse=True)
  inverse = inverse.reshape(-1)
  first = np.full(int(inverse.max()) + 1 if len(inverse) else 0, len(faces), np.int64)
  np.minimum.at(first, inverse, np.arange(len(faces)))
  return first[inverse].astype(np.int32)


def _hash3(cells: np.ndarray, seed: int) -> np.ndarray:
  """A pseudo-random value in [0, 1) per integer lattice point: int64[..., 3] -> float32[...]."""
  c = cells.astype(np.int64) & 0xFFFFF
  h = (c[..., 0] * 73856093) ^ (c[..., 1] * 19349663) ^ (c[..., 2] * 83492791) ^ (seed * 2654435761)
  h = (h ^ (h >> 13)) * 1274126177
  h = h ^ (h >> 16)
  return ((h & 0xFFFF).astype(np.float32)) / 65536.0


def value_noise(points: np.ndarray, seed: int = 0) -> np.ndarray:
  """Smooth 3-D value noise in [0, 1): float[P, 3] (lattice units) -> float32[P], trilinear with smoothstep weights."""
  base = np.floor(points)
  f = (points - base).astype(np.float32)
  w = f * f * (3.0 - 2.0 * f)
  base = base.astype(np.int64)
  out = np.zeros(len(points), np.float32)
  for corner in np.ndindex(2, 2, 2):
    c = np.asarray(corner)
    weight = np.prod(np.where(c == 1, w, 1.0 - w), axis=-1)
    out += weight * _hash3(base + c, seed)
  return out


def _fractal(points: np.ndarray, octaves: int, seed: int) -> np.ndarray:
  """Sum of octaves of value noise, normalized to [0, 1)."""
  total, amplitude, norm = np.zeros(len(points), np.float32), 1.0, 0.0
  for octave in range(octaves):
    total += amplitude * value_noise(points * 2.0**octave, seed + octave)
    norm += amplitude
    amplitude *= 0.5
  return total / norm


def pattern_mix(pattern: int, p: np.ndarray, frequency: np.ndarray, axis: np.ndarray) -> np.ndarray:
  """How much of `color2` each point takes, float32[P] in [0, 1], for one pattern.

  Args:
    pattern: index into `PATTERNS` (not 'plain' or 'own').
    p: float32[P, 3] points in the object frame, already shifted by their material's offset.
    frequency: float32[P] cells per unit length.
    axis: float32[P, 3] unit directions.
  """
  name = PATTERNS[pattern]
  q = p * frequency[:, None]
  if name == "noise":
    return _fractal(q, 3, 1)
  if name == "stripes":
    return (np.mod(np.sum(q * axis, -1), 1.0) < 0.5).astype(np.float32)
  if name == "checker":
    return (np.sum(np.floor(q), -1).astype(np.int64) % 2).astype(np.float32)
  if name == "wood":
    along = np.sum(p * axis, -1, keepdims=True)
    radius = np.linalg.norm(p - along * axis, axis=-1) * frequency
    rings = np.mod(radius + 0.6 * _fractal(q * 0.5, 2, 7), 1.0)
    return np.clip(np.abs(rings - 0.5) * 2.5 - 0.25, 0.0, 1.0).astype(np.float32)  # soft bands
  if name == "fabric":
    return (0.35 * _fractal(q * 8.0, 2, 3)).astype(np.float32)  # fine, low-contrast weave-like grain
  raise ValueError(f"pattern {name!r} has no mix")


def albedo(
    points: np.ndarray, face: np.ndarray, barycentric: np.ndarray, appearance: Appearance, palette: Palette
) -> tuple[np.ndarray, np.ndarray]:
  """Linear albedo and material row of hit points of one view.

  Args:
    points: float32[P, 3] hit points (object = world frame: meshes are rendered where they are).
    face: int32[P] their faces.
    barycentric: float32[P, 3] their weights of the face's corners (for 'own' colours).
    appearance: the mesh's parts and own colours.
    palette: this view's materials.

  Returns:
    (float32[P, 3] albedo, int32[P] material row).
  """
  row = np.asarray(appearance.face_material, np.int64)[face] % palette.size
  out = palette.color[row].copy()
  pattern = palette.pattern[row]
  for index in np.unique(pattern):
    name = PATTERNS[int(index)]
    sel = np.flatnonzero(pattern == index)
    if name == "plain":
      continue
    if name == "own":
      if appearance.own_color is not None:
        corners = appearance.own_color[face[sel]]  # [p, 3 corners, 3 channels]
        out[sel] = np.einsum("pk,pkc->pc", barycentric[sel], corners)
      continue
    r = row[sel]
    t = pattern_mix(int(index), points[sel] + palette.offset[r], palette.frequency[r], palette.axis[r])
    out[sel] = palette.color[r] + t[:, None] * (palette.color2[r] - palette.color[r])
  return np.clip(out, 0.0, 1.0).astype(np.float32), row.astype(np.int32)


def barycentric(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  """float32[P, 3] weights of points in their triangles float[P, 3 corners, 3] (clipped to the triangle)."""
  a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
  v0, v1, v2 = b - a, c - a, points - a
  d00, d01, d11 = np.sum(v0 * v0, -1), np.sum(v0 * v1, -1), np.sum(v1 * v1, -1)
  d20, d21 = np.sum(v2 * v0, -1), np.sum(v2 * v1, -1)
  denom = d00 * d11 - d01 * d01
  denom = np.where(np.abs(denom) > 1e-20, denom, 1.0)
  v = (d11 * d20 - d01 * d21) / denom
  w = (d00 * d21 - d01 * d20) / denom
  weights = np.clip(np.stack([1.0 - v - w, v, w], -1), 0.0, 1.0)
  return (weights / np.maximum(weights.sum(-1, keepdims=True), 1e-12)).astype(np.float32)


def shade_color(
    hits: Hits,
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    eye: np.ndarray,
    lights: lights_lib.Lights,
    appearance: Appearance,
    palette: Palette,
    out: np.ndarray | None = None,
) -> np.ndarray:
  """Linear RGB of the hit samples of one view: float32[S, 3] (0 where nothing is hit); see the module docstring.

  `out`: a zeroed float32[S, 3] to write into (saves a copy per view)."""
  out = np.zeros((len(hits.face), 3), np.float32) if out is None else out
  hit = np.flatnonzero(hits.face >= 0)
  if not len(hit):
    return out
  face, p = hits.face[hit], np.asarray(hits.points[hit], np.float32)
  if appearance.canonical is not None:
    face = appearance.canonical[face]
  weights = barycentric(p, vertices[faces[face]]) if appearance.own_color is not None else None
  base, row = albedo(p, face, weights, appearance, palette)
  n = normals[face]
  to_eye = np.asarray(eye, np.float32) - p
  n = np.where(np.sum(n * to_eye, -1, keepdims=True) < 0, -n, n)  # both sides lit, as in the gray path
  view = to_eye / np.maximum(np.linalg.norm(to_eye, axis=-1, keepdims=True), 1e-12)
  diffuse = np.full(len(p), lights.ambient, np.float32)
  glossy = np.zeros(len(p), np.float32)
  specular, shininess = palette.specular[row], palette.shininess[row]
  for position, energy in zip(lights.positions, lights.energies):
    to_lamp = position - p
    r2 = np.sum(to_lamp * to_lamp, -1)
    l = to_lamp / np.sqrt(r2)[:, None]
    cosine = np.sum(n * l, -1)
    scale = energy * shading.falloff(r2)
    diffuse += scale * np.maximum(0.0, cosine)
    if np.any(specular > 0):
      half = l + view
      half /= np.maximum(np.linalg.norm(half, axis=-1, keepdims=True), 1e-12)
      lobe = np.maximum(0.0, np.sum(n * half, -1)) ** shininess
      glossy += np.where(cosine > 0, scale * lobe, 0.0).astype(np.float32)
  out[hit] = np.clip(base * diffuse[:, None] + (specular * glossy)[:, None], 0.0, 1.0)
  return out


def per_view(appearance: Appearance, n: int) -> Appearance:
  """Checks that `appearance` has one palette per view (one palette is shared by all n)."""
  palettes = tuple(appearance.palettes)
  if len(palettes) == 1 and n != 1:
    palettes = palettes * n
  if len(palettes) != n:
    raise ValueError(f"{len(palettes)} palettes for {n} views")
  return dataclasses.replace(appearance, palettes=palettes)
