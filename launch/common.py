"""What every launch script shares: device logging and turning user mistakes into one clear line."""

import contextlib
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags


def config_and_workdir(workdir_help: str, default_config: str = "configs/default.py"):
  """The two flags every launcher takes: `--config` (a configs/ file, `:arg` overrides, `--config.a.b=v` fields) and
  `--workdir`; returns their flag holders."""
  config = config_flags.DEFINE_config_file("config", default_config, "Config file (configs/*.py[:arg]).",
                                           lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, workdir_help, required=True)
  return config, workdir


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
