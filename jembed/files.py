"""Writes that never leave a half-written file behind: each goes to a temporary name beside the target, then is
renamed over it (atomic on one filesystem), so a killed run leaves either the old file or the new one."""

import json
import os

import numpy as np


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
