"""The records that stages hand each other through the workdir: one home, importing nothing above the workdir layer.

`ShapeEmbedding` is what the shape side writes (`shape_embedding.npz`) and what the dataset, training, the public API
and provenance read: it lives here, below all of them, so none of them imports the shape side's pipeline for it.
"""

import dataclasses
import hashlib
import os

import numpy as np

from jembed.workdir import files
from jembed.workdir import paths


@dataclasses.dataclass(frozen=True)
class ShapeEmbedding:
  """One point per shape.

  Attributes:
    ids: str[N] shape ids, sorted (the paper's row order).
    categories: str[N].
    points: float32[N, D] embedding points.
    stress: Sammon stress of `points` against the LFD-HoG distances.
    stress_curve: float32[T] stress per iteration (NaN past the stop).
  """

  ids: np.ndarray
  categories: np.ndarray
  points: np.ndarray
  stress: float
  stress_curve: np.ndarray

  def save(self, path: str) -> None:
    files.save_npz(
        path,
        ids=self.ids,
        categories=self.categories,
        points=self.points,
        stress=np.float32(self.stress),
        stress_curve=self.stress_curve,
    )

  def fingerprint(self) -> str:
    """Hash of the content (ids, categories, float32 points): equal arrays, equal fingerprint (provenance.json)."""
    h = hashlib.sha1()
    for part in ("\n".join(map(str, self.ids)), "\n".join(map(str, self.categories))):
      h.update(part.encode())
    h.update(np.ascontiguousarray(self.points, np.float32).tobytes())
    return h.hexdigest()[:16]

  @classmethod
  def load(cls, path: str) -> "ShapeEmbedding":
    """Raises FileNotFoundError / files.DamagedFile naming the launcher that makes the file (again)."""
    remake = f"`python -m launch.embed_shapes --workdir={os.path.dirname(path) or '.'}`"
    if not os.path.exists(path):
      raise FileNotFoundError(f"no shape embedding at {path!r}: run {remake} first")
    try:
      f = files.load_npz(path)
      return cls(
          ids=f["ids"],
          categories=f["categories"],
          points=f["points"],
          stress=float(f["stress"]),
          stress_curve=f["stress_curve"],
      )
    except files.DamagedFile as e:
      raise files.DamagedFile(f"{e}: run {remake} to make it again") from None
    except KeyError as e:
      raise files.DamagedFile(
          f"{path} is not a shape embedding (no array {e}): run {remake} to make it again"
      ) from None


def load_shape_embedding(workdir: str) -> ShapeEmbedding:
  """`workdir/shape_embedding.npz` (raises as `ShapeEmbedding.load`)."""
  return ShapeEmbedding.load(paths.shape_embedding(workdir))


def file_fingerprint(workdir: str) -> str | None:
  """The fingerprint of `workdir/shape_embedding.npz` (None when absent; raises as `ShapeEmbedding.load`)."""
  path = paths.shape_embedding(workdir)
  return ShapeEmbedding.load(path).fingerprint() if os.path.exists(path) else None
