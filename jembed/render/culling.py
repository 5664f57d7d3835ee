"""When back faces may be skipped: closed, consistently wound meshes seen from outside.

Rasterizing on llvmpipe costs per triangle (setup and binning), and a closed mesh's back faces, about half of them,
are always hidden behind its front faces. Culling them is exact only when

* every edge is shared by exactly two faces that run it in opposite directions (the surface is closed and its winding
  consistent, so each connected component bounds a volume),
* each component's faces wind counter-clockwise seen from outside (its signed volume is positive: the normals point
  out), and
* every eye is outside the mesh's bounding box (so outside every volume: from inside one, its far side faces inward).

Then the first surface a ray from the eye meets is a front face (its generalized winding number goes from 0 to 1
there), so culling changes no silhouette and no visible surface. Two exceptions: a component whose surface passes
through itself and encloses a region of negative winding (an inside-out pocket) shows the face behind there; and
where a back face of one part lies exactly on the front face of a part it touches, the unculled draw let whichever
came first win that depth tie (0-5 of 110,592 samples of a catalog shape's views; tests/render/test_culling.py).
ShapeNet's models rarely pass (their winding is inconsistent or their surfaces open); our procedural catalog and
voxel meshes do. The check works on vertex indices: a mesh whose faces do not share vertices (split for flat
shading) counts as open.

Measured (`tests/benchmarks/render.py`, the 20,480-face icosphere at 128², 2 CPU cores): 225 -> 395 images per
CPU-second, every pixel equal.
"""

import collections
import hashlib
import threading

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

_VERDICTS_KEPT = 512  # meshes whose verdict `closed_outward_cached` remembers
_verdicts: collections.OrderedDict = collections.OrderedDict()
_verdicts_lock = threading.Lock()  # the web page renders on its own thread


def closed_outward(vertices: np.ndarray, faces: np.ndarray) -> bool:
  """Whether each edge of `faces` is run once in each direction and every connected component encloses a positive
  volume.

  Args:
    vertices: float32[V, 3].
    faces: int32[F, 3], indices into `vertices`.

  Returns:
    True when the mesh is closed and oriented outward (module docstring); False for an empty mesh.
  """
  if len(faces) == 0:
    return False
  faces = np.asarray(faces, np.int64)
  tails = faces.ravel()
  heads = faces[:, [1, 2, 0]].ravel()
  if np.any(tails == heads):  # a degenerate face repeats a vertex: not a closed 2-manifold by index
    return False
  n = int(faces.max()) + 1
  directed = np.sort(tails * n + heads)
  if np.any(directed[1:] == directed[:-1]):  # an edge run twice the same way: inconsistent winding or non-manifold
    return False
  if not np.array_equal(directed, np.sort(heads * n + tails)):  # an edge without its opposite: open
    return False
  graph = scipy.sparse.coo_matrix((np.ones(len(tails), np.int8), (tails, heads)), shape=(n, n))
  _, label = scipy.sparse.csgraph.connected_components(graph, directed=False)
  corners = np.asarray(vertices, np.float64)[faces]
  # Six times each face's signed tetrahedron volume against the origin; a closed component's sum is its volume.
  volume = np.einsum("fi,fi->f", corners[:, 0], np.cross(corners[:, 1], corners[:, 2]))
  return bool(np.all(np.bincount(label[faces[:, 0]], weights=volume) > 0))


def closed_outward_cached(vertices: np.ndarray, faces: np.ndarray) -> bool:
  """`closed_outward`, remembered by the mesh's bytes: the verification's fine step renders each candidate mesh in
  many small calls (9 views), where the check (~0.7 ms for 2,000 faces) would cost as much as a view; hashing the
  arrays costs ~0.03 ms."""
  vertices, faces = np.ascontiguousarray(vertices), np.ascontiguousarray(faces)
  digest = hashlib.blake2b(digest_size=16)
  for array in (vertices, faces):
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.data)
  key = digest.digest()
  with _verdicts_lock:
    if key in _verdicts:
      _verdicts.move_to_end(key)
      return _verdicts[key]
  verdict = closed_outward(vertices, faces)
  with _verdicts_lock:
    _verdicts[key] = verdict
    if len(_verdicts) > _VERDICTS_KEPT:
      _verdicts.popitem(last=False)
  return verdict


def eyes_outside(vertices: np.ndarray, eyes: np.ndarray) -> bool:
  """Whether every eye (float[N, 3]) lies outside the axis-aligned bounding box of `vertices` (float[V, 3])."""
  low, high = np.min(vertices, axis=0), np.max(vertices, axis=0)
  inside = np.all((eyes >= low) & (eyes <= high), axis=1)
  return not bool(np.any(inside))
