"""What every launch script shares: the multi-process start, device logging, user mistakes as one clear line."""

import contextlib
import sys
from typing import Callable

from absl import flags
from absl import logging
from ml_collections import config_flags

from jembed import distributed


def config_and_workdir(workdir_help: str, default_config: str = "configs/default.py"):
  """The two flags every launcher takes: `--config` (a configs/ file, `:arg` overrides, `--config.a.b=v` fields) and
  `--workdir`; returns their flag holders."""
  config = config_flags.DEFINE_config_file("config", default_config, "Config file (configs/*.py[:arg]).",
                                           lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, workdir_help, required=True)
  return config, workdir


def define_process_flags() -> Callable[[], None]:
  """Defines --multihost and jax.distributed.initialize's own arguments; returns `start()`, which joins the job.

  `start()` runs before anything touches the devices; a failed start ends the program with the cause (never a
  silent single-process run).
  """
  multihost = flags.DEFINE_bool("multihost", False, "Join the job's other processes (jax.distributed.initialize), "
                                "its settings from the cluster (Cloud TPU, Slurm, Open MPI, Kubernetes) or the "
                                "flags below.")
  address = flags.DEFINE_string("coordinator_address", "", "HOST:PORT of process 0's coordinator (every process "
                                "the same; implies --multihost).")
  count = flags.DEFINE_integer("num_processes", 0, "Processes in the job (with --coordinator_address).")
  index = flags.DEFINE_integer("process_id", -1, "This process, in [0, num_processes).")
  timeout = flags.DEFINE_integer("initialization_timeout", 300, "Seconds to wait for every process to join.")

  def start() -> None:
    settings = distributed.Settings(multihost=multihost.value, coordinator_address=address.value,
                                    num_processes=count.value, process_id=index.value, timeout_s=timeout.value)
    try:
      distributed.initialize(settings)
    except distributed.DistributedError as e:
      logging.error("%s", e)
      sys.exit(f"error: {e}")
    log_devices()
  return start


def log_devices() -> None:
  import jax  # pylint: disable=g-import-not-at-top
  logging.info("JAX %s: process %d of %d, devices %s", jax.__version__, jax.process_index(), jax.process_count(),
               jax.devices())


def print_outputs(outputs: dict[str, str]) -> None:
  """The closing list of a run: one `<what>  <path>` line per file to look at, the paths aligned."""
  width = max((len(k) for k in outputs), default=0)
  print("\n".join(f"{k:<{width}}  {v}" for k, v in outputs.items()))


@contextlib.contextmanager
def user_errors():
  """Ends the program with the message (no traceback) on a wrong path or a bad config value."""
  try:
    yield
  except (FileNotFoundError, ValueError) as e:
    logging.error("%s", e)
    sys.exit(f"error: {e}")
