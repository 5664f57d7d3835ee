"""Random appearance of the training renders: a mesh's parts, and one random material per part per image.

Real furniture is not one gray: a chair has a dark frame and a fabric seat, a table a wood top and metal legs, and
near-black and near-white pieces are common. Domain randomisation (Tremblay et al. 2018) trains on random,
non-photoreal textures and colours of the object so that the network keys on shape, not on our renderer's one gray.

* **Parts** (`mesh_parts`): the mesh's connected components (largest first; the smallest share the last part);
  a mesh of fewer than 3 components (the IKEA voxel grids are one) is cut further into `SPATIAL_PARTS` spatial
  clusters of its face centroids (k-means), so that legs, seat and back can still differ.
* **Materials** (`sample_palette`): `PALETTE_ROWS` random materials per image, part p taking row p mod rows; with
  probability `share` every row is the same material (one-colour furniture). Each: a colour over the whole range of
  lightness (value U(0.02, 1), mostly low saturation), one of the solid textures of `jembed.render.materials`, and a
  Blinn-Phong lobe of random strength and shininess.
"""

import dataclasses

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from jembed.render import materials

PALETTE_ROWS = 8
SPATIAL_PARTS = 4
MAX_COMPONENTS = 8
# Pattern probabilities, in `materials.PATTERNS` order (plain, noise, stripes, checker, wood, fabric, own).
PATTERN_PROBS = (0.35, 0.15, 0.08, 0.05, 0.2, 0.17, 0.0)
_FREQUENCY = {
    "plain": (1, 1),
    "noise": (2, 8),
    "stripes": (3, 14),
    "checker": (2, 7),
    "wood": (3, 12),
    "fabric": (8, 24),
}


def connected_components(num_vertices: int, faces: np.ndarray) -> np.ndarray:
  """int32[F] component label of each face (faces sharing a vertex are connected), largest component (by face count)
  first."""
  f = len(faces)
  rows = np.repeat(np.arange(f), 3)
  graph = sparse.coo_matrix((np.ones(3 * f, np.int8), (rows, faces.reshape(-1))), shape=(f, num_vertices)).tocsr()
  # Faces and vertices as one bipartite graph: its components are the mesh's.
  n, labels = csgraph.connected_components(sparse.bmat([[None, graph], [graph.T, None]]), directed=False)
  face_labels = labels[:f]
  order = np.argsort(-np.bincount(face_labels, minlength=n), kind="stable")
  rank = np.empty(n, np.int32)
  rank[order] = np.arange(n, dtype=np.int32)
  return rank[face_labels]


def spatial_clusters(centroids: np.ndarray, k: int, iterations: int = 10) -> np.ndarray:
  """int32[F] k-means clusters of float[F, 3] points, started from the farthest-point sampling of the topmost one."""
  k = min(k, len(centroids))
  centers = [centroids[int(np.argmax(centroids[:, 1]))]]
  for _ in range(1, k):
    dist = np.min([np.sum((centroids - c) ** 2, -1) for c in centers], axis=0)
    centers.append(centroids[int(np.argmax(dist))])
  centers = np.asarray(centers, np.float64)
  labels = np.zeros(len(centroids), np.int32)
  for _ in range(iterations):
    labels = np.argmin(((centroids[:, None] - centers[None]) ** 2).sum(-1), axis=1).astype(np.int32)
    for j in range(k):
      if np.any(labels == j):
        centers[j] = centroids[labels == j].mean(0)
  return labels


def mesh_parts(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """int32[F] part of each face (see the module docstring); deterministic for a mesh."""
  faces = np.asarray(faces, np.int64)
  if not len(faces):
    return np.zeros(0, np.int32)
  labels = np.minimum(connected_components(len(vertices), faces), MAX_COMPONENTS - 1)
  if labels.max() < 2:
    centroids = np.asarray(vertices, np.float64)[faces].mean(1)
    labels = labels * SPATIAL_PARTS + spatial_clusters(centroids, SPATIAL_PARTS)
  return labels.astype(np.int32)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
  i = int(h * 6.0) % 6
  f = h * 6.0 - int(h * 6.0)
  p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
  return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], np.float32)


def random_color(rng: np.random.Generator) -> np.ndarray:
  """A linear albedo float32[3]: any hue, mostly muted (furniture), lightness over the whole range."""
  saturation = rng.beta(1.0, 3.0) if rng.random() < 0.7 else rng.uniform(0.3, 1.0)
  value = rng.uniform(0.02, 1.0)  # display value: near-black and near-white furniture exist
  return _hsv_to_rgb(rng.random(), saturation, value) ** 2.2  # display -> linear albedo


def sample_material(rng: np.random.Generator) -> tuple:
  """One material's (color, color2, pattern, frequency, axis, offset, specular, shininess)."""
  pattern = int(rng.choice(len(PATTERN_PROBS), p=PATTERN_PROBS))
  color = random_color(rng)
  if materials.PATTERNS[pattern] in ("wood", "fabric", "noise") or rng.random() < 0.5:
    color2 = np.clip(color * rng.uniform(0.2, 1.8), 0.0, 1.0)  # a darker or lighter shade: grain, weave
  else:
    color2 = random_color(rng)
  low, high = _FREQUENCY[materials.PATTERNS[pattern]]
  frequency = rng.uniform(low, high)
  axis = rng.normal(size=3)
  axis /= max(float(np.linalg.norm(axis)), 1e-9)
  offset = rng.uniform(-10.0, 10.0, 3)
  specular = rng.uniform(0.0, 0.6) if rng.random() < 0.5 else 0.0
  shininess = float(np.exp(rng.uniform(np.log(4.0), np.log(200.0))))
  return color, color2, pattern, frequency, axis, offset, specular, shininess


def sample_palette(rng: np.random.Generator, share: float = 0.4) -> materials.Palette:
  """`PALETTE_ROWS` random materials (all one material with probability `share`); a fixed number of draws per row."""
  rows = [sample_material(rng) for _ in range(PALETTE_ROWS)]
  if rng.random() < share:
    rows = rows[:1] * PALETTE_ROWS
  fields = list(zip(*rows))
  return materials.Palette(
      color=np.asarray(fields[0], np.float32),
      color2=np.asarray(fields[1], np.float32),
      pattern=np.asarray(fields[2], np.int32),
      frequency=np.asarray(fields[3], np.float32),
      axis=np.asarray(fields[4], np.float32),
      offset=np.asarray(fields[5], np.float32),
      specular=np.asarray(fields[6], np.float32),
      shininess=np.asarray(fields[7], np.float32),
  )


def own(palette: materials.Palette) -> materials.Palette:
  """`palette` with every row showing the mesh's own appearance (its random colours stay as the fallback of a mesh
  that has none, its specular lobes are kept)."""
  return dataclasses.replace(palette, pattern=np.full_like(palette.pattern, materials.PATTERNS.index("own")))


def to_linear(srgb: np.ndarray) -> np.ndarray:
  """uint8 sRGB -> float32 linear albedo in [0, 1] (the inverse of `shading.display`)."""
  x = np.asarray(srgb, np.float32) / 255.0
  return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def shape_parts(vertices: np.ndarray, faces: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
  """int32[F] parts: the file's groups (materials) when it has several, else `mesh_parts`."""
  if groups is not None and len(np.unique(groups)) > 1:
    return np.asarray(groups, np.int32)
  return mesh_parts(vertices, faces)
