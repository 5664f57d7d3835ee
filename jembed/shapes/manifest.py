"""The shape manifest, `workdir/shapes.json`: which shapes a workdir's shape side was made from.

Written by the first stage that loads every shape (the LFD descriptors of `launch/embed_shapes.py`), read by every
later stage that needs the meshes again (test images, baselines, thumbnails, galleries), so none of them needs the
config that listed the shapes or parses a cache. Per loaded shape, in row order: its id, category, source path and a
fingerprint of its normalized geometry (`loading.geometry_fingerprint`); plus the orientation the meshes were loaded
with and the shapes that were skipped, with the reason.
"""

import dataclasses
import json
import os

from jembed.shapes import record
from jembed.workdir import files
from jembed.workdir import paths

VERSION = 1


@dataclasses.dataclass(frozen=True)
class Manifest:
  """The shapes of a workdir.

  Attributes:
    ids: str[N] in row order (the order of the descriptors and of the shape embedding).
    categories: str[N].
    sources: str[N] where each mesh was read from (a file path, or `catalog://<category>/<index>`).
    fingerprints: str[N] SHA-1 of each normalized mesh's geometry (order-free, see `loading.geometry_fingerprint`).
    up_axis, front: the orientation the meshes were loaded with (`config.shapes`).
    skipped: [id, reason] of the listed shapes that could not be used.
  """

  ids: list[str]
  categories: list[str]
  sources: list[str]
  fingerprints: list[str]
  up_axis: str
  front: str
  skipped: list[list[str]] = dataclasses.field(default_factory=list)

  def save(self, workdir: str) -> str:
    path = paths.manifest(workdir)
    files.write_json(path, dict(dataclasses.asdict(self), version=VERSION), indent=1)
    return path

  @classmethod
  def load(cls, workdir: str) -> "Manifest":
    """Raises FileNotFoundError naming the launcher to run when the workdir has no shape side yet."""
    path = paths.manifest(workdir)
    if not os.path.exists(path):
      raise FileNotFoundError(
          f"no shape manifest {path!r}: run `python -m launch.embed_shapes --workdir={workdir}` " "first"
      )
    with open(path) as f:
      entry = json.load(f)
    entry.pop("version", None)
    return cls(**entry)

  def refs(self, ids=None) -> list[record.ShapeRef]:
    """The loaded shapes as refs (only those of `ids`, when given), in row order."""
    wanted = None if ids is None else set(map(str, ids))
    return [
        record.ShapeRef(i, c, p)
        for i, c, p in zip(self.ids, self.categories, self.sources)
        if wanted is None or i in wanted
    ]


def listed_shapes(workdir: str, ids=None) -> tuple[list[record.ShapeRef], str, str]:
  """(refs, up_axis, front): what a later stage needs to load `workdir`'s meshes again without its config."""
  manifest = Manifest.load(workdir)
  return manifest.refs(ids), manifest.up_axis, manifest.front
