"""Content checksums of a workdir's artifacts: SHA-256, recorded when an artifact is written, verified when it is read.

What carries which (docs/faults.md has the whole table):
  provenance.json        a digest of its own entries (`provenance.py`)
  lfd/descriptors.npy    one digest per batch of rows, in lfd/progress.json (`embedding/descriptors.py`)
  lfd/distances.npy      its digest, in lfd/distances.json (`embedding/shape_embedding.py`)
  *.npz                  the zip format's own CRC-32 per array, checked by every read (`files.load_npz`); the shape
                         embedding's content hash is in provenance.json as well
  checkpoints/<step>/    digests.json beside orbax's files: every file of the step (`training/checkpoints.py`)
  the dataset's folder   checksums.json: every shard and TFDS's JSON files (`data/pipeline.py`)

A folder's digests are a `{relative path: sha256}` JSON file inside it (`write_folder_digests`), checked by
`verify_folder`. Reading a file to hash it costs about 1 s per GB (SHA-256 with the CPU's SHA instructions); a file
that passed is remembered for the process (by path, size and modification time), so a second read of it is free.
"""

import hashlib
import json
import os

import numpy as np

from jembed.workdir import files

_CHUNK = 1 << 22
# (real path, size, mtime_ns) -> digest, of the files this process has hashed.
_SEEN: dict[tuple[str, int, int], str] = {}


class Mismatch(files.DamagedFile):
  """An artifact whose content is not what was recorded when it was written (bits flipped, overwritten, truncated)."""


def digest_bytes(data) -> str:
  """Hex SHA-256 of bytes (or any buffer: a C-contiguous array's memory)."""
  return hashlib.sha256(memoryview(data).cast("B")).hexdigest()


def digest_array(array: np.ndarray) -> str:
  """Hex SHA-256 of an array's values in C order (a memory map is read once, in order)."""
  h = hashlib.sha256()
  flat = np.asarray(array).reshape(len(array), -1) if np.ndim(array) else np.asarray(array).reshape(1, 1)
  rows = max(1, _CHUNK // max(1, flat[:1].nbytes))
  for lo in range(0, len(flat), rows):
    h.update(memoryview(np.ascontiguousarray(flat[lo : lo + rows])).cast("B"))
  return h.hexdigest()


def digest_file(path: str) -> str:
  """Hex SHA-256 of a file's bytes, streamed (remembered for this process while the file is unchanged)."""
  stat = os.stat(path)
  key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
  if key not in _SEEN:
    with open(path, "rb") as f:
      _SEEN[key] = hashlib.file_digest(f, "sha256").hexdigest()
  return _SEEN[key]


def check_file(path: str, expected: str, remake: str) -> None:
  """Raises `Mismatch` naming `path` and `remake` (what makes it again) when its digest is not `expected`."""
  found = digest_file(path)
  if found != expected:
    raise Mismatch(f"{path} is damaged (its SHA-256 is not the one recorded when it was written): {remake}")


def folder_digests(folder: str, names: list[str] | None = None) -> dict[str, str]:
  """{relative path: SHA-256} of every file under `folder` (or of `names`), the digests file itself left out."""
  if names is None:
    names = sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, found in os.walk(folder)
        for name in found
        if name != DIGESTS
    )
  return {name: digest_file(os.path.join(folder, name)) for name in names}


DIGESTS = "digests.json"


def write_folder_digests(folder: str, names: list[str] | None = None) -> str:
  """Writes `folder/digests.json` ({relative path: SHA-256}, see `folder_digests`); returns its path."""
  path = os.path.join(folder, DIGESTS)
  files.write_json(path, folder_digests(folder, names), indent=0)
  return path


def verify_folder(folder: str, remake: str) -> bool:
  """Checks every file `folder/digests.json` lists; False when there is no digests file (made before them).

  Raises:
    Mismatch: a listed file is missing or differs, or the digests file is unreadable (the message names the file
      and ends with `remake`).
  """
  path = os.path.join(folder, DIGESTS)
  try:
    with open(path) as f:
      expected = json.load(f)
  except FileNotFoundError:
    return False
  except (OSError, ValueError) as e:
    raise Mismatch(f"{path} is damaged ({e}): {remake}") from None
  if not isinstance(expected, dict):
    raise Mismatch(f"{path} is damaged (not a table of digests): {remake}")
  for name, digest in sorted(expected.items()):
    target = os.path.join(folder, name)
    if not os.path.exists(target):
      raise Mismatch(f"{target} is missing (listed in {path}): {remake}")
    check_file(target, digest, remake)
  return True
