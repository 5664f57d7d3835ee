r"""Evaluates a trained run as the paper does: the joint embedding against HoG-NN and raw pixels on the same images.

  python -m launch.evaluate --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.evaluate --config=configs/ikea.py:root=/data/ikea_photos_voxels --workdir=/runs/ikea

Needs launch/embed_shapes.py, launch/build_dataset.py and launch/train.py run on the same workdir first. Writes
workdir/eval/results.json (set -> method -> metric), results.md, pr_curves.png, topk_curves.png and retrievals.png,
and prints the table.

Started as several JAX processes (the flags of launch/train.py), process 0 evaluates and writes; the others wait.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from jembed import distributed
from launch import common

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Config file.", lock_config=True)
_START = common.define_process_flags()
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder with a trained model.", required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from jembed.evaluation import report  # pylint: disable=g-import-not-at-top
  from jembed.evaluation import evaluate  # pylint: disable=g-import-not-at-top
  _START()
  if distributed.is_main():  # the test sets are small: process 0 evaluates on its devices, the others wait
    with common.user_errors():
      results = evaluate.evaluate(_CONFIG.value, _WORKDIR.value)
      paths = report.write_report(_CONFIG.value, _WORKDIR.value, results, evaluate.PR_AUC_DEFINITION)
    print(report.results_table(results))
    common.print_outputs(paths)
  distributed.barrier("evaluation written")


if __name__ == "__main__":
  app.run(main)
