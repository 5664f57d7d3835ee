r"""Trains the image side: a CNN that regresses each image's shape point, on every device, with checkpoints.

  python -m launch.train --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.train --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs

Needs `launch/embed_shapes.py` and `launch/build_dataset.py` run on the same workdir first. A killed run resumes from
its latest checkpoint when started again with the same arguments.

Several processes (hosts, or GPUs of one host), one model: start the same command in every process with
`--multihost` where JAX detects the cluster (Cloud TPU, Slurm, Open MPI, Kubernetes), or with the addresses given:
  python -m launch.train --config=... --workdir=/nfs/run --coordinator_address=host0:1234 --num_processes=2 \
      --process_id=0     # and --process_id=1 on the other
The workdir must be one folder every process sees (checkpoints are written by all of them together; metrics and
the loss curve by process 0). A failed start is an error, never a run of this process alone.

With `--config.shape_encoder.enabled=True` it then trains the shape encoder jointly with (a copy of) the image network
(`jembed.training.joint`) into `W/shape_encoder/`.
"""

import sys

from absl import app
from absl import logging

from jembed.apps import stages
from jembed.training import joint
from jembed.training import train
from jembed.utils import distributed
from launch import common

_CONFIG, _WORKDIR = common.config_and_workdir("Run folder: reads the embedding and dataset, writes checkpoints.")
_FORCE = common.force_flag("the checkpoints (trained on another shape embedding or dataset: set aside, not deleted)")
_START = common.define_process_flags()
_LOCK = common.define_workdir_lock(writes=("training",), reads=("shape_side", "dataset"))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  _START()
  with common.user_errors():
    _LOCK(_WORKDIR.value)
    try:
      final = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, force=_FORCE.value)
    except FloatingPointError as e:  # the message says which checkpoint is good and what to change
      logging.error("%s", e)
      sys.exit(f"error: {e}")
    if _CONFIG.value.shape_encoder.enabled:
      encoder_final = joint.train_joint(_CONFIG.value, _WORKDIR.value)
      print(
          f"shape encoder, step {encoder_final.get('step', '?')}: val_top1 {encoder_final.get('val_top1', 0):.3g}"
          f"\n  {joint.run_dir(_WORKDIR.value)}"
      )
  if not distributed.is_main():
    return
  summary = ", ".join(
      f"{k} {v:.4g}"
      for k, v in final.items()
      if k in ("train_loss", "val_loss", "val_top1", "val_top5", "images_per_s")
  )
  print(f"step {final.get('step', '?')}: {summary}")
  common.print_outputs(stages.training_outputs(_WORKDIR.value))


if __name__ == "__main__":
  common.run(main)
