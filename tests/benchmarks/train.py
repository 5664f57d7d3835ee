r"""Training throughput: images/s of the jitted update step for the default model and for the paper's network.

  python tests/benchmarks/train.py                                   # CPU: default model, paper net at 227^2
  python tests/benchmarks/train.py --workdir=/tmp/jembed             # + the input pipeline's rate as the peer
  python tests/benchmarks/train.py --paper_batch=1024                # on a GPU: the paper's batch, with MFU

What is timed: `train.make_update_fn`'s step (the per-device program under `jax.shard_map` over all devices, the
optimizer of the config, state donated) on a synthetic uint8 batch already on the devices, after a compile and a
warm-up step; `--steps` steps, blocked on at the end. FLOPs per step come from XLA's own count
(`jax.jit(step).lower(...).compile().cost_analysis()`); MFU = achieved FLOP/s over the device's peak (GPUs only;
the peak is TF32 dense for float32 matmuls and convolutions, which XLA uses on these GPUs by default).

  default  configs/default.py's network (small backbone) at its image size and global batch
  paper    configs/shapenet_chairs.py's: CaffeNet conv1-pool5 + fc6-fc7 (4096) + fc128, trained end to end (the
           costlier case: the paper froze conv1-5), SGD with momentum, 227 x 227, batch --paper_batch

The last stdout line is one JSON object: {"benchmark": "train", "ours": images/s of the default model's step,
"peer": images/s the input pipeline streams for the default config (null without --workdir), "unit": "images/s",
"ratio": ours / peer, ...}: a ratio below 1 means the pipeline keeps up with training.
"""

import argparse
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from configs import default  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import shapenet_chairs  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import model as model_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import optimizer  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import train  # pylint: disable=g-import-not-at-top,wrong-import-position

# Dense peak FLOP/s per device for float32 math as XLA runs it (TF32 tensor cores), by device_kind prefix.
PEAK_FLOPS = {"NVIDIA H100": 494.7e12, "NVIDIA H200": 494.7e12, "NVIDIA A100": 156e12, "NVIDIA L4": 60e12}


def step_rate(
    config, spec: model_lib.ModelSpec, batch_size: int, steps: int, shape_points=None, objective=None
) -> dict:
  """Images/s, seconds/step and XLA's FLOPs/step of the update step of `config`'s optimizer on `spec`.

  The synthetic images have the dataset's size (`config.data.image_size`), so a network that sees a smaller image
  pays for the resize, as in training. With `objective` (a `losses.RankObjective`) the step adds the contrastive term
  against `shape_points` float32[N, D].
  """
  mesh = train.create_mesh()
  abstract = jax.eval_shape(lambda: model_lib.init_params(spec, jax.random.key(0)))
  tx, schedule = optimizer.make_optimizer(config, abstract)
  update_fn = train.make_update_fn(
      model_lib.EmbeddingNet(spec),
      tx,
      schedule,
      mesh,
      {k: float(v) for k, v in config.loss.items()},
      flip=bool(config.train.augment_flip),
      shift=float(config.train.augment_shift),
      shape_points=shape_points,
      objective=objective,
  )
  state = train.create_state(spec, tx, jax.random.key(0), mesh)
  rng = np.random.default_rng(0)
  size = int(config.data.image_size)
  n = 1 if shape_points is None else len(shape_points)
  batch = dict(
      image=rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8),
      point=rng.normal(size=(batch_size, spec.dim)).astype(np.float32),
      shape_index=rng.integers(0, n, batch_size).astype(np.int32),
  )
  if spec.viewpoint_bins:  # the heads' labels, degrees
    batch.update({a: rng.uniform(0, 360, batch_size).astype(np.float32) for a in model_lib.VIEW_ANGLES})
  if spec.num_categories:
    batch["category_index"] = rng.integers(0, spec.num_categories, batch_size).astype(np.int32)
  batch = train.place_batch(batch, mesh)
  key = jax.random.key(1)
  start = time.perf_counter()
  compiled = update_fn.lower(state, batch, key).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0)) if cost else 0.0
  for _ in range(2):  # warm-up: the first runs allocate
    state, metrics = update_fn(state, batch, key)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = update_fn(state, batch, key)
  jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - start) / steps
  result = dict(
      images_per_s=batch_size / seconds,
      step_s=seconds,
      batch=batch_size,
      image_size=spec.image_size,
      data_image_size=size,
      flops_per_step=flops,
      achieved_tflops=flops / seconds / 1e12,
      compile_s=compile_s,
      params=sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract)),
  )
  peak = next((v for k, v in PEAK_FLOPS.items() if jax.devices()[0].device_kind.startswith(k)), None)
  if peak and flops:  # cost_analysis counts one device's program: compare with one device's peak
    result["mfu"] = flops / seconds / peak
  return result


def pipeline_rate(workdir: str, batches: int) -> float | None:
  """Images/s the input pipeline streams for the default config from `workdir` (None when no dataset is there)."""
  from jembed.data import pipeline  # pylint: disable=g-import-not-at-top

  try:
    iterator = pipeline.create_input_iterator(default.get_config(), workdir, "train")
    jax.block_until_ready([next(iterator) for _ in range(3)])
  except (FileNotFoundError, ValueError) as e:
    print(f"no input pipeline rate: {e}")
    return None
  start = time.perf_counter()
  for _ in range(batches):
    jax.block_until_ready(next(iterator))
  return batches * int(default.get_config().input.batch_size) / (time.perf_counter() - start)


def _spec(config) -> model_lib.ModelSpec:
  return model_lib.ModelSpec.from_config(
      config.model,
      dim=int(config.mds.dim),
      image_size=config.model.image_size or config.data.image_size,
      num_categories=6,
      point_scale=2.5,
  )


def _show(name: str, r: dict) -> None:
  mfu = f", MFU {r['mfu']:.1%}" if "mfu" in r else ""
  print(
      f"{name}: {r['images_per_s']:.1f} images/s (batch {r['batch']}, {r['image_size']} px, {r['step_s'] * 1e3:.1f} "
      f"ms/step, {r['flops_per_step'] / 1e9:.1f} GFLOP/step, {r['achieved_tflops']:.3f} TFLOP/s{mfu}; "
      f"{r['params']:,} params, compiled in {r['compile_s']:.1f} s)"
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=5, help="timed steps per model")
  parser.add_argument(
      "--paper_batch", type=int, default=0, help="global batch of the paper's network (0: 1024 on GPU/TPU, 16 on CPU)"
  )
  parser.add_argument("--skip_paper", action="store_true", help="only the default model")
  parser.add_argument("--workdir", default="", help="a workdir with the default dataset: measure the pipeline too")
  parser.add_argument("--batches", type=int, default=50, help="batches timed for the pipeline rate")
  args = parser.parse_args()
  devices = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  print(f"devices: {devices} ({jax.default_backend()})")
  config = default.get_config()
  ours = step_rate(config, _spec(config), int(config.input.batch_size), args.steps)
  _show("default model", ours)
  out = {
      "benchmark": "train",
      "ours": round(ours["images_per_s"], 1),
      "peer": None,
      "unit": "images/s",
      "ratio": None,
      "devices": devices,
      "default": {k: round(v, 4) for k, v in ours.items()},
  }
  if not args.skip_paper:
    paper_config = shapenet_chairs.get_config()
    batch = args.paper_batch or (16 if jax.default_backend() == "cpu" else 1024)
    batch -= batch % jax.device_count()
    paper = step_rate(paper_config, _spec(paper_config), batch, args.steps)
    _show("paper network", paper)
    out["paper"] = {k: round(v, 4) for k, v in paper.items()}
  if args.workdir:
    peer = pipeline_rate(args.workdir, args.batches)
    if peer:
      print(f"input pipeline (default config): {peer:.1f} images/s")
      out.update(peer=round(peer, 1), ratio=round(ours["images_per_s"] / peer, 3))
  print(json.dumps(out))


if __name__ == "__main__":
  main()
