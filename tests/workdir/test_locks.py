"""One writer per workdir stage: real processes hold the locks, a second writer is refused (naming the holder) or
waits, readers share, and a killed holder leaves nothing stale.

The holders are small Python processes that take a launcher's locks (they start in a fraction of a second); the tests
that start launchers themselves are in tests/launch/test_common.py.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from jembed.workdir import locks
from jembed.workdir import paths

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_HOLDER = """
import sys, time
from jembed.workdir import locks
workdir, writes, reads, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
sys.argv = ["{repo}/launch/train.py", "--config=configs/tiny.py", f"--workdir={{workdir}}"]  # as the note shows it
locks.acquire(workdir, [s for s in writes.split(",") if s], [s for s in reads.split(",") if s])
print("held", flush=True)
time.sleep(seconds)
"""


@contextlib.contextmanager
def holder(workdir, writes=("training",), reads=("shape_side", "dataset"), seconds=60.0):
  """A process that holds `writes`/`reads` of `workdir` for `seconds` (as launch.train would); yields its Popen."""
  proc = subprocess.Popen(
      [sys.executable, "-c", _HOLDER.format(repo=REPO), str(workdir), ",".join(writes), ",".join(reads), str(seconds)],
      stdout=subprocess.PIPE,
      text=True,
      env={**os.environ, "PYTHONPATH": REPO},
  )
  try:
    assert proc.stdout.readline().strip() == "held"
    yield proc
  finally:
    proc.kill()
    proc.wait()


def test_a_second_writer_is_refused_with_the_holders_pid_and_command(tmp_path):
  """embed_shapes (writes the shape side) while train (reads it) runs; and a second train."""
  with holder(tmp_path) as proc:
    for writes in (["shape_side"], ["training"], ["dataset"]):
      with pytest.raises(locks.Busy) as error:
        locks.acquire(tmp_path, writes)
      message = str(error.value)
      assert f"PID {proc.pid}" in message and "python -m launch.train --config=configs/tiny.py" in message
      assert "--wait" in message and "\n" not in message
    assert not any(name.startswith("holder.") and str(os.getpid()) in name for name in os.listdir(paths.lock(tmp_path)))
    locks.acquire(tmp_path, ["evaluation"], ["shape_side"]).release()  # evaluate beside train: no conflict


def test_readers_share_and_a_writer_waits_for_them(tmp_path):
  with holder(tmp_path, writes=(), reads=("shape_side",), seconds=1.5) as proc:
    locks.acquire(tmp_path, [], ["shape_side"]).release()  # two readers
    start = time.monotonic()
    held = locks.acquire(tmp_path, ["shape_side"], wait=True)  # --wait: until the reader's process ends
    waited = time.monotonic() - start
    assert proc.wait(timeout=10) == 0 and waited > 0.5  # it ran to its end; the lock went with it
  held.release()


def test_a_killed_holder_leaves_no_lock_and_its_note_is_cleared(tmp_path):
  with holder(tmp_path) as proc:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    note = paths.lock(tmp_path, f"holder.{os.uname().nodename}.{proc.pid}.json")
    assert os.path.exists(note)  # a SIGKILL leaves the note; the flock went with the process
    held = locks.acquire(tmp_path, ["training"])
    assert not os.path.exists(note)
    held.release()


def test_one_process_takes_its_own_locks_again_and_releases_them(tmp_path):
  """The demo holds every stage and runs them; nothing blocks on itself, and release lets another process in."""
  outer = locks.acquire(tmp_path, ["shape_side", "training"])
  inner = locks.acquire(tmp_path, ["training"], ["shape_side"])
  assert inner.fds == {}
  inner.release()
  (note,) = [n for n in locks.holders(str(tmp_path)) if n["pid"] == os.getpid()]
  assert note["writes"] == ["shape_side", "training"]  # the outer hold is still named
  outer.release()
  assert not [n for n in locks.holders(str(tmp_path)) if n["pid"] == os.getpid()]
  with holder(tmp_path, writes=("shape_side",), reads=()):
    pass
  with pytest.raises(ValueError, match="unknown workdir stage"):
    locks.acquire(tmp_path, ["checkpoints"])


def test_two_shape_sides_at_once_is_refused(tmp_path):
  """Two embed_shapes (say with other render.size): the second stops; the first's points stay the first's."""
  with holder(tmp_path, writes=("shape_side",), reads=()) as proc:
    with pytest.raises(locks.Busy, match=f"PID {proc.pid} .* holds its shape side .* which this launcher writes"):
      locks.acquire(tmp_path, ["shape_side"])
    with pytest.raises(locks.Busy, match="which this launcher reads"):
      locks.acquire(tmp_path, ["training"], ["shape_side", "dataset"])  # train while the embedding is rewritten
