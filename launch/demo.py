r"""The main job on the built-in default: every stage of jembed, one after the other, into one workdir.

  python -m launch.demo --workdir=/tmp/jembed
  python -m launch.demo --config=configs/tiny.py --workdir=/tmp/jembed_tiny     # a one-minute smoke run

Re-running it reuses the stages that finished.
"""

from absl import app

from jembed.apps import demo
from launch import common

_CONFIG, _WORKDIR = common.config_and_workdir("Output folder of every stage.")
_LOCK = common.define_workdir_lock(writes=("contact_sheet", "shape_side", "dataset", "training", "evaluation"))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  common.log_devices()
  with common.user_errors():
    _LOCK(_WORKDIR.value)
    outputs = demo.run(_CONFIG.value, _WORKDIR.value)
    print(f"\n{demo.results_table(_WORKDIR.value)}\n")
  common.print_outputs(outputs)


if __name__ == "__main__":
  common.run(main)
