r"""What the on-device photometric augmentation costs: the IKEA config's update step with and without it (its values
from `configs.ikea.all_photo_like`; configs/ikea.py itself keeps it off).

  python tests/benchmarks/photometric.py                 # CPU, configs/ikea.py's batch and image sizes
  python tests/benchmarks/photometric.py --rounds=5 --steps=20

Timed as `train.py` times the step (`step_rate`: compiled, warmed up, synthetic uint8 batch on the devices), the two
variants alternating for `--rounds` rounds so that a machine's changing load hits both alike; the median is kept.
The augmentation runs inside the jitted step (`jembed/training/photometric.py`): no host work, no extra transfer.

The last stdout line is one JSON object: {"benchmark": "photometric", "ours": images/s with the augmentation,
"peer": images/s without, "unit": "images/s", "ratio": ours / peer, ...}; 1 - ratio is its share of the step.
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import train as train_benchmark  # pylint: disable=g-import-not-at-top,wrong-import-position

from configs import ikea  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import photometric  # pylint: disable=g-import-not-at-top,wrong-import-position


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=10, help="timed steps per round and variant")
  parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the median is kept)")
  args = parser.parse_args()
  devices = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  print(f"devices: {devices} ({jax.default_backend()})")

  def make_config(on: bool):
    config = ikea.all_photo_like(ikea.get_config())
    if not on:
      for op in photometric.OPERATIONS:
        config.photometric[op] = 0.0
    return config

  runs = train_benchmark.alternating_step_rates(make_config, args.steps, args.rounds)
  rate = {on: float(np.median([r["images_per_s"] for r in rs])) for on, rs in runs.items()}
  for on in (False, True):
    rounds = ", ".join(f"{r['images_per_s']:.0f}" for r in runs[on])
    print(f"{'with' if on else 'without'} photometric augmentation: {rate[on]:.0f} images/s (rounds: {rounds})")
  print(
      json.dumps(
          {
              "benchmark": "photometric",
              "ours": round(rate[True], 1),
              "peer": round(rate[False], 1),
              "unit": "images/s",
              "ratio": round(rate[True] / rate[False], 4),
              "flops_ratio": round(runs[True][0]["flops_per_step"] / runs[False][0]["flops_per_step"], 4)
              if runs[False][0]["flops_per_step"]
              else None,
              "devices": devices,
          }
      )
  )


if __name__ == "__main__":
  main()
