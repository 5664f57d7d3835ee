r"""Evaluates a trained run as the paper does: the joint embedding against HoG-NN and raw pixels on the same images.

  python -m launch.evaluate --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.evaluate --config=configs/ikea.py:root=/data/ikea_photos_voxels --workdir=/runs/ikea

Needs launch/embed_shapes.py, launch/build_dataset.py and launch/train.py run on the same workdir first. Writes
workdir/eval/results.json (set -> method -> metric), results.md, pr_curves.png, topk_curves.png and retrievals.png,
and prints the table.

Started as several JAX processes (the flags of launch/train.py), process 0 evaluates and writes; the others wait.
"""

from absl import app

from jembed.apps import demo
from jembed.apps import stages
from jembed.utils import distributed
from launch import common

_CONFIG, _WORKDIR = common.config_and_workdir("Run folder with a trained model.")
_START = common.define_process_flags()
_LOCK = common.define_workdir_lock(writes=("evaluation",), reads=("shape_side",))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  _START()
  with common.user_errors():
    _LOCK(_WORKDIR.value)
  if distributed.is_main():  # the test sets are small: process 0 evaluates on its devices, the others wait
    with common.user_errors():
      outputs = stages.evaluation(_CONFIG.value, _WORKDIR.value)
      print(demo.results_table(_WORKDIR.value))
    common.print_outputs(outputs)
  distributed.barrier("evaluation written")


if __name__ == "__main__":
  common.run(main)
