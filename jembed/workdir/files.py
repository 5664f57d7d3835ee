"""Writes that never leave a half-written file behind: each goes to a temporary name beside the target, then is
renamed over it (atomic on one filesystem), so a killed run leaves either the old file or the new one."""

import json
import os
import zipfile

import numpy as np


class DamagedFile(ValueError):
  """A file that exists but cannot be read as what it should be (truncated, overwritten, another format)."""


def write_text(path: str, text: str) -> None:
  """`text` (UTF-8) at `path`."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def write_json(path: str, obj, indent: int | None = None) -> None:
  """`obj` as JSON at `path`."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=indent)
  os.replace(tmp, path)


def save_npz(path: str, **arrays) -> None:
  """`np.savez(path, **arrays)`, creating the folder; `path` should end in `.npz`."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}.npz"  # np.savez appends .npz to names without it
  np.savez(tmp, **arrays)
  os.replace(tmp, path)


def load_npz(path: str) -> dict[str, np.ndarray]:
  """Every array of the `.npz` at `path`, read into memory; never unpickles.

  Raises:
    FileNotFoundError: no file at `path`.
    DamagedFile: it is not a readable `.npz` of plain arrays (the message names the file and what is wrong).
  """
  try:
    with np.load(path, allow_pickle=False) as f:
      if not isinstance(f, np.lib.npyio.NpzFile):
        raise DamagedFile(f"{path} is damaged: a single array, not an .npz archive")
      return {k: f[k] for k in f.files}
  except FileNotFoundError:
    raise
  except DamagedFile:
    raise
  except ValueError as e:
    # numpy's text for object arrays points at allow_pickle; our files never hold objects, so say what it means.
    why = "it holds Python objects, not plain arrays" if "pickle" in str(e) else str(e).splitlines()[0][:200]
    raise DamagedFile(f"{path} is damaged: {why}") from None
  except (OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
    why = str(e).splitlines()[0][:200] if str(e) else "truncated"
    raise DamagedFile(f"{path} is damaged ({type(e).__name__}: {why})") from None
