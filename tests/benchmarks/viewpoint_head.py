r"""What the viewpoint head costs: the default model's update step with and without Render for CNN's three 360-bin
azimuth / elevation / tilt heads (and their soft view losses).

  python tests/benchmarks/viewpoint_head.py                 # CPU, the default config's batch and image size
  python tests/benchmarks/viewpoint_head.py --rounds=5 --steps=20

Timed as `train.py` times the step (`step_rate`: compiled, warmed up, synthetic batch on the devices), the two
variants alternating for `--rounds` rounds so that a machine's changing load hits both alike; the median over rounds
is kept. XLA's FLOP count per step is the load-independent part of the answer.

The last stdout line is one JSON object: {"benchmark": "viewpoint_head", "ours": ms/step with the head, "peer": ms/step
without, "unit": "ms/step", "ratio": ours / peer, "flops_ratio": ...}; ratio - 1 is the head's share of the step.
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

from configs import default  # pylint: disable=g-import-not-at-top,wrong-import-position


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=10, help="timed steps per round and variant")
  parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the median is kept)")
  args = parser.parse_args()
  devices = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  print(f"devices: {devices} ({jax.default_backend()})")

  def make_config(head: bool):
    config = default.get_config()
    config.model.viewpoint_head = head
    return config

  runs = train_benchmark.alternating_step_rates(make_config, args.steps, args.rounds)
  ms = {head: float(np.median([r["step_s"] for r in rs])) * 1e3 for head, rs in runs.items()}
  flops = {head: rs[0]["flops_per_step"] for head, rs in runs.items()}
  params = {head: rs[0]["params"] for head, rs in runs.items()}
  for head in (False, True):
    rounds = ", ".join(f"{r['step_s'] * 1e3:.1f}" for r in runs[head])
    print(
        f"{'with' if head else 'without'} the viewpoint head: {ms[head]:.1f} ms/step (rounds: {rounds}), "
        f"{flops[head] / 1e9:.3f} GFLOP/step, {params[head]:,} params"
    )
  print(
      json.dumps(
          {
              "benchmark": "viewpoint_head",
              "ours": round(ms[True], 2),
              "peer": round(ms[False], 2),
              "unit": "ms/step",
              "ratio": round(ms[True] / ms[False], 4),
              "flops_ratio": round(flops[True] / flops[False], 4) if flops[False] else None,
              "params": params,
              "devices": devices,
          }
      )
  )


if __name__ == "__main__":
  main()
