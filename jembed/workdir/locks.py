"""One writer per workdir stage: OS file locks, so two launchers never write (or one never rewrites what another reads)
at the same time.

Each stage of a workdir has a lock file, `workdir/.locks/<stage>.lock` (`paths.lock`). A launcher takes the stages it
writes exclusively and the stages it reads but others write shared (`fcntl.flock`), for its whole run:

  launch.train           writes training             reads shape_side, dataset
  launch.embed_shapes    writes shape_side           (so it refuses while train reads the embedding)
  launch.build_dataset   writes dataset
  launch.evaluate        writes evaluation           reads shape_side
  launch.render_views    writes contact_sheet        launch.invert   writes inversions, reads shape_side
  launch.demo            writes every stage

A conflicting launcher stops with one line naming the holder (its PID, host and command: each holder leaves a small
JSON note beside the locks, `holder.<host>.<pid>.json`) or, with `--wait`, waits for it. The kernel releases a flock
when its process ends however it ends, so a killed run never leaves a stale lock (a stale note is ignored: its PID is
gone). Readers of finished artifacts (query, serve, `jembed.load`) take no lock: every artifact is replaced by an
atomic rename and checkpoints are immutable once written, so they see the old file or the new one.

Locks are taken in the fixed order of `STAGES`, so two waiting launchers never deadlock. With several JAX processes
only process 0 takes them (the launcher tells the others whether it could, `launch/common.py`). A process that holds
a stage already (the demo, which runs every stage) takes it again without blocking on itself.
"""

import contextlib
import dataclasses
import fcntl
import glob
import json
import os
import socket
import sys
import time
from typing import Iterable

from absl import logging

from jembed.workdir import files
from jembed.workdir import paths

# In the order they are taken.
STAGES = ("contact_sheet", "shape_side", "dataset", "training", "evaluation", "inversions")
# What a person reads in a message: the launcher that writes each stage.
WRITER = {
    "contact_sheet": "launch.render_views",
    "shape_side": "launch.embed_shapes",
    "dataset": "launch.build_dataset",
    "training": "launch.train",
    "evaluation": "launch.evaluate",
    "inversions": "launch.invert",
}


class Busy(RuntimeError):
  """Another process holds a stage this one needs (the message names it and says what to do)."""


@dataclasses.dataclass
class Held:
  """The locks a process holds on one workdir; `release()` (or the end of the process) lets them go."""

  workdir: str
  fds: dict[str, int]

  def release(self) -> None:
    for stage, fd in self.fds.items():
      _HELD.pop((self.workdir, stage), None)
      os.close(fd)  # closing the last descriptor releases the flock
    if self.fds:
      _write_note(self.workdir)
    self.fds = {}


# (real workdir, stage) -> exclusive?, of the locks this process holds: a nested request does not block on itself.
_HELD: dict[tuple[str, str], bool] = {}


def command_line() -> str:
  """How this process was started, as a person would type it (`python -m launch.train --workdir=...`)."""
  argv = list(sys.argv)
  head, tail = os.path.split(argv[0]) if argv else ("", "")
  if os.path.basename(head) == "launch" and tail.endswith(".py"):
    argv[0] = f"python -m launch.{tail[:-3]}"
  return " ".join(argv)[:300]


def _note_path(workdir: str) -> str:
  return paths.lock(workdir, f"holder.{socket.gethostname()}.{os.getpid()}.json")


def _write_note(workdir: str) -> None:
  """This process's note on `workdir`: every stage it holds there (removed when it holds none)."""
  held = {stage: exclusive for (folder, stage), exclusive in _HELD.items() if folder == workdir}
  if not held:
    with contextlib.suppress(FileNotFoundError):
      os.remove(_note_path(workdir))
    return
  note = dict(
      pid=os.getpid(),
      host=socket.gethostname(),
      command=command_line(),
      writes=sorted(s for s, exclusive in held.items() if exclusive),
      reads=sorted(s for s, exclusive in held.items() if not exclusive),
      since=time.strftime("%Y-%m-%d %H:%M:%S"),
  )
  files.write_json(_note_path(workdir), note)


def _alive(note: dict) -> bool:
  """Whether the process of a holder's note may still run (always True for another host's: it cannot be asked)."""
  if note.get("host") != socket.gethostname():
    return True
  try:
    os.kill(int(note["pid"]), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, ValueError, KeyError):
    return True
  return True


def holders(workdir: str) -> list[dict]:
  """The notes of the processes that hold (or held, on another host) locks on `workdir`, stale ones left out."""
  notes = []
  for path in sorted(glob.glob(paths.lock(workdir, "holder.*.json"))):
    try:
      with open(path) as f:
        note = json.load(f)
    except (OSError, ValueError):
      continue  # being written or removed right now
    if _alive(note):
      notes.append(note)
  return notes


def _describe(workdir: str, stage: str, exclusive: bool) -> str:
  """'PID 123 on h since 2026-12-04 12:00:01 (python -m launch.train ...)' for each holder in the way."""
  conflicting = [
      n for n in holders(workdir) if stage in n.get("writes", ()) or (exclusive and stage in n.get("reads", ()))
  ]
  if not conflicting:
    return "another process (it left no note)"
  return "; ".join(
      f"PID {n.get('pid')} on {n.get('host')} since {n.get('since')} ({n.get('command')})" for n in conflicting
  )


def _busy(workdir: str, stage: str, exclusive: bool, wait_flag: str) -> str:
  return (
      f"{workdir} is busy: {_describe(workdir, stage, exclusive)} holds its {stage.replace('_', ' ')} (the stage of "
      f"{WRITER[stage]}), which this launcher {'writes' if exclusive else 'reads'}; wait for it to finish, or "
      f"pass {wait_flag} to start when it does"
  )


def _remove_stale(workdir: str) -> None:
  """Deletes the notes of this host's processes that are gone (killed holders; their locks went with them)."""
  for path in glob.glob(paths.lock(workdir, f"holder.{socket.gethostname()}.*.json")):
    try:
      with open(path) as f:
        stale = not _alive(json.load(f))
    except (OSError, ValueError):
      continue
    if stale:
      with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def acquire(
    workdir: str, writes: Iterable[str] = (), reads: Iterable[str] = (), *, wait: bool = False, wait_flag="--wait"
) -> Held:
  """Takes the stages `writes` exclusively and `reads` shared, in the order of `STAGES`.

  Args:
    workdir: the workdir (created if missing).
    writes: stages this process writes.
    reads: stages this process reads while others could write them.
    wait: block until the holders are done instead of failing.
    wait_flag: how the caller's user asks to wait (named in the message).

  Raises:
    Busy: another process holds a stage in a conflicting mode (and not `wait`); nothing is held then.
    ValueError: an unknown stage name.
  """
  writes, reads = set(writes), set(reads) - set(writes)
  unknown = (writes | reads) - set(STAGES)
  if unknown:
    raise ValueError(f"unknown workdir stage(s) {sorted(unknown)}: one of {STAGES}")
  workdir = os.path.realpath(workdir)
  os.makedirs(paths.lock(workdir), exist_ok=True)
  held = Held(workdir, {})
  try:
    for stage in (s for s in STAGES if s in writes | reads):
      exclusive = stage in writes
      if (workdir, stage) in _HELD and (_HELD[(workdir, stage)] or not exclusive):
        continue  # this process holds it already (the demo's stages)
      fd = os.open(paths.lock(workdir, f"{stage}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
      held.fds[stage] = fd
      mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
      try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
      except BlockingIOError:
        message = _busy(workdir, stage, exclusive, wait_flag)
        if not wait:
          raise Busy(message) from None
        logging.warning("%s: waiting (%s)", message.split(";")[0], wait_flag)
        fcntl.flock(fd, mode)
      _HELD[(workdir, stage)] = exclusive
  except BaseException:
    held.release()
    raise
  _remove_stale(workdir)
  if held.fds:
    _write_note(workdir)
  return held


@contextlib.contextmanager
def hold(workdir: str, writes: Iterable[str] = (), reads: Iterable[str] = (), *, wait: bool = False):
  """`acquire` for the body of a `with` block."""
  held = acquire(workdir, writes, reads, wait=wait)
  try:
    yield held
  finally:
    held.release()
