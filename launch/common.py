"""What every launch script shares: the flags, the multi-process start, quiet logging, checks before any work, and
one-line errors.

Every launcher ends with `common.run(main)` instead of `app.run(main)`. Before `main` runs, the whole config is
validated (`jembed/apps/validate.py`) and the workdir is checked to be a folder that can be written; any error a user
can cause ends the program with one line that names the file or field and the fix (`--debug` shows the traceback).
Third-party INFO logging (orbax, JAX, absl) is off unless `--verbosity` is given.
"""

import atexit
import contextlib
import logging as std_logging
import os
import re
import sys
from typing import Callable

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from jembed.apps import validate
from jembed.utils import distributed
from jembed.workdir import files
from jembed.workdir import locks

_DEBUG = flags.DEFINE_bool("debug", False, "On an error, show the full traceback instead of one line.")
# Errors whose message is written for a user (a wrong path, field, value or state of the workdir): shown as they are.
USER_ERRORS = (
    FileNotFoundError,
    ValueError,
    PermissionError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    app.UsageError,
    locks.Busy,
)
_OWN_CODE = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), d) + os.sep for d in ("jembed", "launch")
)


def config_and_workdir(workdir_help: str, default_config: str = "configs/default.py"):
  """The two flags every launcher takes: `--config` (a configs/ file, `:arg` overrides, `--config.a.b=v` fields) and
  `--workdir`; returns their flag holders."""
  try:  # ml_collections reads `--config.<field>=` flags here, at import: a misspelt field fails now
    config = config_flags.DEFINE_config_file(
        "config", default_config, "Config file (configs/*.py[:arg]).", lock_config=True
    )
  except (AttributeError, KeyError) as e:
    if "--debug" in sys.argv:
      raise
    sys.exit(_no_such_field(e, sys.argv))
  workdir = flags.DEFINE_string("workdir", None, workdir_help, required=True)
  return config, workdir


def define_process_flags() -> Callable[[], None]:
  """Defines --multihost and jax.distributed.initialize's own arguments; returns `start()`, which joins the job.

  `start()` runs before anything touches the devices; a failed start ends the program with the cause (never a
  silent single-process run).
  """
  multihost = flags.DEFINE_bool(
      "multihost",
      False,
      "Join the job's other processes (jax.distributed.initialize), "
      "its settings from the cluster (Cloud TPU, Slurm, Open MPI, Kubernetes) or the "
      "flags below.",
  )
  address = flags.DEFINE_string(
      "coordinator_address",
      "",
      "HOST:PORT of process 0's coordinator (every process " "the same; implies --multihost).",
  )
  count = flags.DEFINE_integer("num_processes", 0, "Processes in the job (with --coordinator_address).")
  index = flags.DEFINE_integer("process_id", -1, "This process, in [0, num_processes).")
  timeout = flags.DEFINE_integer("initialization_timeout", 300, "Seconds to wait for every process to join.")

  def start() -> None:
    settings = distributed.Settings(
        multihost=multihost.value,
        coordinator_address=address.value,
        num_processes=count.value,
        process_id=index.value,
        timeout_s=timeout.value,
    )
    try:
      distributed.initialize(settings)
    except distributed.DistributedError as e:
      logging.error("%s", e)
      sys.exit(f"error: {e}")
    log_devices()

  return start


def define_workdir_lock(writes: tuple[str, ...], reads: tuple[str, ...] = ()) -> Callable[..., None]:
  """Defines --wait; returns `lock(workdir, ...)`, which takes the workdir's stage locks (`jembed.workdir.locks`) for
  the rest of the process: `writes` exclusively, `reads` shared.

  `lock` runs after `start()` of `define_process_flags` (when there is one): with several JAX processes process 0
  alone takes the locks and tells the others whether it could, so a busy workdir stops every process at once.
  """
  wait = flags.DEFINE_bool(
      "wait",
      False,
      "When another launcher holds a stage of the workdir this one needs, wait for it instead of stopping.",
  )

  def lock(workdir: str, *, also_writes: tuple[str, ...] = (), reads_of: dict[str, tuple[str, ...]] | None = None):
    """Takes the locks (`also_writes`: more stages this run writes; `reads_of`: {other workdir: stages read there}).

    Raises:
      locks.Busy: another process holds a stage in a conflicting mode (and no --wait).
    """
    error = ""
    if distributed.is_main():
      try:
        wanted = [(workdir, writes + also_writes, reads)] + [(k, (), v) for k, v in (reads_of or {}).items()]
        for folder, w, r in wanted:
          held = locks.acquire(folder, w, r, wait=wait.value)
          atexit.register(held.release)  # the kernel frees the locks at exit anyway; this removes the note too
      except locks.Busy as e:
        error = str(e)
    if not distributed.main_says(not error):
      raise locks.Busy(error or "process 0 could not lock the workdir: its error names the holder")

  return lock


def _no_such_field(e: Exception, argv: list[str]) -> str:
  """The one line for a `--config.<field>=` flag that names no field (ml_collections' KeyError/AttributeError)."""
  given = " ".join(a for a in argv[1:] if a.startswith("--config."))
  hint = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', str(e))
  why = f"no field {hint.group(2)!r} (did you mean {hint.group(1)!r}?)" if hint else "no such field"
  return f"error: {given}: the config has {why}"


def force_flag(what: str):
  """`--force`: replace `what` although later stages of the workdir were built on it (saying so)."""
  return flags.DEFINE_bool("force", False, f"Replace {what} even though later stages of the workdir were built on it.")


def log_devices() -> None:
  logging.info(
      "JAX %s: process %d of %d, devices %s", jax.__version__, jax.process_index(), jax.process_count(), jax.devices()
  )


def print_outputs(outputs: dict[str, str]) -> None:
  """The closing list of a run: one `<what>  <path>` line per file to look at, the paths aligned; a path that was not
  written (e.g. no checkpoint after 0 steps) is named on one line after them instead."""
  written = {k: v for k, v in outputs.items() if os.path.exists(v)}
  width = max((len(k) for k in written), default=0)
  lines = [f"{k:<{width}}  {v}" for k, v in written.items()]
  missing = [k for k in outputs if k not in written]
  if missing:
    lines.append(f"(not written by this run: {', '.join(missing)})")
  print("\n".join(lines))


def check_workdir(workdir: str, flag: str = "--workdir") -> None:
  """Creates `workdir` if needed; raises a one-line OSError when it is a file or cannot be written (`flag`: how the
  user gave the folder)."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise NotADirectoryError(f"{flag}={workdir} is a file, not a folder: give a folder path (created if missing)")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    why = e.strerror or e
    raise PermissionError(f"cannot create {flag}={workdir} ({why}): give a folder you can write to") from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise PermissionError(f"{flag}={workdir} is not writable: give a folder you can write to")


def _error_line(e: BaseException) -> str:
  if isinstance(e, OSError) and e.errno in files.FIXES and e.filename:  # a full disk, a read-only file: say which
    e = files.os_error(e, os.fspath(e.filename))
  text = (str(e).strip().splitlines() or [""])[0]
  if isinstance(e, USER_ERRORS + (files.WorkdirError,)):
    return text or type(e).__name__
  return f"{type(e).__name__}: {text} (an unexpected error: rerun with --debug for the traceback and report it)"


@contextlib.contextmanager
def user_errors():
  """Ends the program with one line (no traceback) on any error, unless --debug."""
  try:
    yield
  except (KeyboardInterrupt, SystemExit):
    raise
  except Exception as e:  # pylint: disable=broad-except
    if flags.FLAGS.is_parsed() and _DEBUG.value:
      raise
    sys.exit(f"error: {_error_line(e)}")


class _QuietFilter(std_logging.Filter):
  """Lets through our own records at `own_level` and up, other libraries' at WARNING (orbax's at ERROR) and up."""

  def __init__(self, own_level: int):
    super().__init__()
    self._own_level = own_level

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.pathname.startswith(_OWN_CODE):
      return record.levelno >= self._own_level
    return record.levelno >= (std_logging.ERROR if f"{os.sep}orbax{os.sep}" in record.pathname else std_logging.WARNING)


def quiet_logging(own_level: int = std_logging.INFO) -> None:
  """Unless `--verbosity`/`-v` was given: other libraries' INFO records (and orbax's warnings) are dropped."""
  if flags.FLAGS["verbosity"].present:
    return
  logging.get_absl_handler().addFilter(_QuietFilter(own_level))


def run(main, *, quiet: bool = False) -> None:
  """`app.run(main)` with the checks and the error handling of every launcher (module docstring).

  Args:
    main: the launcher's `main(argv)`.
    quiet: also drop our own INFO records unless `--verbosity` (for tools whose output is the answer, e.g. query).
  """

  def checked_main(argv):
    quiet_logging(std_logging.WARNING if quiet else std_logging.INFO)
    with user_errors():
      if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}: every setting is a --flag (see --helpshort)")
      if "config" in flags.FLAGS:
        validate.validate(_config_value())
      if "workdir" in flags.FLAGS and "config" in flags.FLAGS:  # launchers that write a workdir
        check_workdir(flags.FLAGS.workdir)
      return main(argv)

  app.run(checked_main, flags_parser=_parse_flags)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad flag (or a config file that fails to load) reported in one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    if "--debug" in argv:
      raise
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    # A config file's own error comes as a traceback inside the message: its last line is the error itself.
    last = lines[-1] if len(lines) > 1 and "Traceback" in str(e) else (lines or [""])[0]
    flag = lines[0].split(":", 1)[0] if lines else ""
    sys.exit(f"error: {flag}: {last}" if last != lines[0] else f"error: {last}")
  except Exception as e:  # pylint: disable=broad-except  (a config file that is not Python, or raises)
    if "--debug" in argv:
      raise
    if isinstance(e, (AttributeError, KeyError)):
      sys.exit(_no_such_field(e, argv))
    given = " ".join(a for a in argv[1:] if a.startswith("--config"))
    sys.exit(f"error: {given}: {type(e).__name__}: {e} (rerun with --debug for the traceback)")


def _config_value():
  """FLAGS.config; a config file that cannot be read is a one-line OSError naming it."""
  try:
    config = flags.FLAGS.config
    config.keys()  # a file that failed to load reads as a stand-in that raises on any use
    return config
  except OSError:
    path = config_flags.get_config_filename(flags.FLAGS["config"])
    why = "no such file" if not os.path.exists(path) else "it could not be loaded (run with --debug to see why)"
    raise FileNotFoundError(f"--config={path}: {why}; configs are Python files such as configs/default.py") from None
