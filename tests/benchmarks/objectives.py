r"""Training throughput of each objective: images/s of the update step with the regression, InfoNCE and HCL losses.

  python tests/benchmarks/objectives.py                         # CPU: the default network, batch 64, 192 shapes
  python tests/benchmarks/objectives.py --shapes=50000          # the contrastive term against 50,000 shape points
  python tests/benchmarks/objectives.py --batch=1024            # on a GPU: images/s and MFU at batch 1024

What is timed: the default config's update step (`step_fns.make_update_fn`, shard_map over all devices, AdamW, state
donated) on a synthetic batch already on the devices, once per objective in the same process: 'regression' (the
paper's L2 to the shape's point) and `config.train.loss` = 'infonce' / 'hcl' against `--shapes` random shape points
of the embedding's dimension (all of them negatives up to `config.contrastive.max_negatives`, each image's hardest
that many above), both with the default's shape->image term (`config.contrastive.shape_to_image`, its image points
gathered over the devices); 'infonce_one_way' is InfoNCE without it. FLOPs come from XLA's count of the compiled
step; MFU = achieved FLOP/s over one device's peak (tests/benchmarks/train.py's table; GPUs only).

The last stdout line is one JSON object: {"benchmark": "objectives", "ours": images/s of the HCL step, "peer":
images/s of the regression step, "unit": "images/s", "ratio": ours / peer, "runs": {objective: {...}}}: a ratio near
1 means the rank-aware loss costs nothing next to the network.
"""

import argparse
import importlib.util
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from configs import default  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import losses  # pylint: disable=g-import-not-at-top,wrong-import-position

# The step timer and the model spec live in the training benchmark: one home for how a step is timed.
_spec_file = importlib.util.spec_from_file_location("train_benchmark", pathlib.Path(__file__).with_name("train.py"))
train_benchmark = importlib.util.module_from_spec(_spec_file)
_spec_file.loader.exec_module(train_benchmark)

OBJECTIVES = ("regression", "infonce", "infonce_one_way", "hcl")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=0, help="global batch (0: the default config's, 64)")
  parser.add_argument("--shapes", type=int, default=192, help="shape points (the default catalog has 192)")
  parser.add_argument("--steps", type=int, default=10, help="timed steps per objective")
  parser.add_argument(
      "--objectives", default=",".join(OBJECTIVES), help="comma-separated subset of " + ",".join(OBJECTIVES)
  )
  args = parser.parse_args()
  devices = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  print(f"devices: {devices} ({jax.default_backend()})")
  config = default.get_config()
  batch = args.batch or int(config.input.batch_size)
  batch -= batch % jax.device_count()
  spec = train_benchmark._spec(config)  # pylint: disable=protected-access
  points = np.random.default_rng(0).normal(scale=20.0, size=(args.shapes, spec.dim)).astype(np.float32)
  runs = {}
  default_shape_to_image = config.contrastive.shape_to_image
  for name in args.objectives.split(","):
    config.train.loss = name.removesuffix("_one_way")
    config.contrastive.shape_to_image = 0.0 if name.endswith("_one_way") else default_shape_to_image
    objective = losses.RankObjective.from_config(config, points)
    runs[name] = train_benchmark.step_rate(config, spec, batch, args.steps, shape_points=points, objective=objective)
    train_benchmark._show(name, runs[name])  # pylint: disable=protected-access
  ours, peer = runs.get("hcl"), runs.get("regression")
  out = {
      "benchmark": "objectives",
      "ours": round(ours["images_per_s"], 1) if ours else None,
      "peer": round(peer["images_per_s"], 1) if peer else None,
      "unit": "images/s",
      "ratio": round(ours["images_per_s"] / peer["images_per_s"], 3) if ours and peer else None,
      "devices": devices,
      "batch": batch,
      "shapes": args.shapes,
      "runs": {k: {m: round(v, 4) for m, v in r.items()} for k, r in runs.items()},
  }
  print(json.dumps(out))


if __name__ == "__main__":
  main()
