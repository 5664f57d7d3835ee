"""Writes that never leave a half-written file behind: each goes to a temporary name beside the target, then is
renamed over it (atomic on one filesystem), so a killed run leaves either the old file or the new one."""

import contextlib
import errno
import json
import math
import os
import shutil
from typing import Callable
import zipfile

import numpy as np


class DamagedFile(ValueError):
  """A file that exists but cannot be read as what it should be (truncated, overwritten, another format)."""


def _atomic(path: str, write: Callable[[str], None], suffix: str = "") -> None:
  """`write(tmp)` to a temporary name beside `path`, then renamed over it; the temporary file never stays behind
  (an immutable or read-only target, a full disk), and the error names `path` (`os_error`)."""
  tmp = f"{path}.tmp{os.getpid()}{suffix}"
  try:
    write(tmp)
    os.replace(tmp, path)
  except OSError as e:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise os_error(e, path) from None
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def copy_file(source: str, path: str) -> None:
  """Copies `source` to `path` atomically: readers (another server of the same workdir) see the whole file or none."""
  _atomic(path, lambda tmp: shutil.copyfile(source, tmp))


def write_text(path: str, text: str) -> None:
  """`text` (UTF-8) at `path`."""

  def write(tmp):
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)

  _atomic(path, write)


def write_json(path: str, obj, indent: int | None = None) -> None:
  """`obj` as JSON at `path`."""
  write_text(path, json.dumps(obj, indent=indent))


def save_npz(path: str, **arrays) -> None:
  """`np.savez(path, **arrays)`, creating the folder; `path` should end in `.npz`."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  _atomic(path, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")  # np.savez appends .npz to names without it


def open_memmap(path: str, dtype, shape: tuple[int, ...]) -> np.ndarray:
  """A new `.npy` memory map (`np.lib.format.open_memmap(mode='w+')`) whose disk space is reserved now.

  A memory map over a sparse file takes its blocks when pages are written: on a full disk that write kills the
  process with SIGBUS ("Bus error", no Python traceback). Reserving them up front turns that into an error here.

  Raises:
    OSError: no space for it (the message names the file, its size and the fix).
  """
  out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
  if hasattr(os, "posix_fallocate"):  # Linux; elsewhere the file stays sparse
    try:
      with open(path, "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, os.path.getsize(path))
    except OSError as e:
      del out
      with contextlib.suppress(OSError):
        os.remove(path)
      raise os_error(e, path, f"{np.dtype(dtype).itemsize * math.prod(shape) / 1e9:.2f} GB") from None
  return out


class WorkdirError(OSError):
  """An OS error on a workdir file, in one line that names the file and the fix (`os_error`)."""

  def __str__(self) -> str:
    return str(self.args[0])


# What to do about the OS errors a user can cause (a full disk, a read-only or protected file).
FIXES = {
    errno.ENOSPC: "free space on its disk or use another --workdir",
    errno.EDQUOT: "free space within your quota or use another --workdir",
    errno.EROFS: "the file system is read-only: use another --workdir",
    errno.EACCES: "make it writable (chmod) or use another --workdir",
    errno.EPERM: "it is protected (immutable: chattr -i) or not yours: make it writable or use another --workdir",
}


def os_error(e: OSError, path: str, size: str = "") -> OSError:
  """`WorkdirError` of `e` naming `path` (and `size`, what was to be written) and the fix; `e` itself when it is no
  error of `FIXES`."""
  if e.errno not in FIXES or isinstance(e, WorkdirError):
    return e
  out = WorkdirError(f"{e.strerror or 'cannot write'}: {path}" + (f" ({size})" if size else "") + f"; {FIXES[e.errno]}")
  out.errno, out.filename = e.errno, path
  return out


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
