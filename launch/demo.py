r"""The main job on the built-in default: every stage of jembed, one after the other, into one workdir.

  python -m launch.demo --workdir=/tmp/jembed
  python -m launch.demo --config=configs/tiny.py --workdir=/tmp/jembed_tiny     # a one-minute smoke run

Re-running it reuses the stages that finished.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from jembed import demo
from launch import common

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder of every stage.", required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  common.log_devices()
  with common.user_errors():
    outputs = demo.run(_CONFIG.value, _WORKDIR.value)
  table = outputs.pop("table", "")
  print(f"\n{table}\n")
  common.print_outputs(outputs)


if __name__ == "__main__":
  app.run(main)
