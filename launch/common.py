"""What every launch script shares: device logging and turning user mistakes into one clear line."""

import contextlib
import sys

from absl import logging


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
