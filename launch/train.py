r"""Trains the image side: a CNN that regresses each image's shape point, on every device, with checkpoints.

  python -m launch.train --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.train --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs

Needs `launch/embed_shapes.py` and `launch/build_dataset.py` run on the same workdir first. A killed run resumes from
its latest checkpoint when started again with the same arguments. On several hosts, start it on each with
`--multihost` (the coordinator comes from the cluster environment: Cloud TPU, Slurm, Kubernetes).
"""

import sys

from absl import app
from absl import flags
from absl import logging

from jembed import stages
from launch import common

_CONFIG, _WORKDIR = common.config_and_workdir("Run folder: reads the embedding and dataset, writes checkpoints.")
_FORCE = common.force_flag("the checkpoints (trained on another shape embedding or dataset: set aside, not deleted)")
_MULTIHOST = flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() before touching devices.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  if _MULTIHOST.value:
    try:
      jax.distributed.initialize()
    except ValueError as e:  # a single host: no coordinator to find ("coordinator_address should be defined")
      logging.warning("jax.distributed.initialize() failed (%s); running on this host only", e)
  from jembed.training import train  # pylint: disable=g-import-not-at-top
  common.log_devices()
  with common.user_errors():
    try:
      final = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, force=_FORCE.value)
    except FloatingPointError as e:  # the message says which checkpoint is good and what to change
      logging.error("%s", e)
      sys.exit(f"error: {e}")
  summary = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k in ("train_loss", "val_loss", "val_top1",
                                                                        "val_top5", "images_per_s"))
  print(f"step {final.get('step', '?')}: {summary}")
  common.print_outputs(stages.training_outputs(_WORKDIR.value))


if __name__ == "__main__":
  common.run(main)
