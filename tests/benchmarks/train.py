r"""Training throughput: images/s, step time, XLA's FLOPs and MFU of the jitted update step, per network.

  python tests/benchmarks/train.py                                   # CPU: default, paper net, accelerator:tiny
  python tests/benchmarks/train.py --workdir=/tmp/jembed             # + the input pipeline's rate
  python tests/benchmarks/train.py --paper_batch=1024                # on a GPU / TPU: full sizes, with MFU
  python tests/benchmarks/train.py --skip_paper --accelerator_batch=1024 --accelerator_arg=model.remat=dots

What is timed: `step_fns.make_update_fn`'s step (the per-device program under `jax.shard_map` over all devices, the
optimizer of the config, state donated) on a synthetic uint8 batch already on the devices, after a compile and a
warm-up step; `--steps` steps, blocked on at the end. FLOPs per step come from XLA's own count
(`jax.jit(step).lower(...).compile().cost_analysis()`, one device's program); MFU = achieved FLOP/s over one device's
dense peak for the step's compute dtype (`PEAKS`: bf16 for bfloat16, TF32 for float32 on GPUs, which XLA uses for
float32 matmuls and convolutions there by default; none on CPUs).

  default      configs/default.py's network (small backbone) at its image size and global batch
  paper        configs/shapenet_chairs.py's: CaffeNet conv1-pool5 + fc6-fc7 (4096) + fc128, trained end to end (the
               costlier case: the paper froze conv1-5), SGD with momentum, 227 x 227, batch --paper_batch
  accelerator  configs/accelerator.py's (ViT-S/16 from scratch, 160 px) in bfloat16 and, as its peer, in float32
               (CPU: its `tiny` override, 2 blocks of width 64 at 32 px); with `--full_flops` (default on CPU) also
               XLA's FLOPs and temporary memory per image of the full-size step for each remat policy, compiled but
               not run

The last stdout line is one JSON object: {"benchmark": "train", "ours": images/s of the accelerator step in bfloat16,
"peer": images/s of the same step in float32, "unit": "images/s", "ratio": ours / peer, "default", "paper",
"accelerator": {...}, "pipeline_images_per_s": what the input pipeline streams (with --workdir)}.
"""

import argparse
import dataclasses
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from configs import accelerator  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import default  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import shapenet_chairs  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.backbones import compute  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import model as model_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import optimizer  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import photometric  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import state as state_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import step_fns  # pylint: disable=g-import-not-at-top,wrong-import-position

# Dense (no sparsity) peak FLOP/s of one JAX device, by `device_kind` prefix (the first match wins: longer first), for
# a step computing in bfloat16 or in float32 as XLA runs float32 matmuls and convolutions by default.
PEAKS = (
    # NVIDIA datasheets (https://www.nvidia.com/en-us/data-center/h100/, .../h200/, .../a100/, .../l4/): the tables
    # give BF16 and TF32 tensor-core figures "with sparsity"; dense is half. H100 SXM: BF16 1,979 / TF32 989 sparse.
    ("NVIDIA H100 PCIe", {"bfloat16": 756e12, "float32": 378e12}),
    ("NVIDIA H100", {"bfloat16": 989.4e12, "float32": 494.7e12}),  # SXM5 (device_kind 'NVIDIA H100 80GB HBM3')
    ("NVIDIA H200", {"bfloat16": 989.4e12, "float32": 494.7e12}),  # the H100 SXM's tensor cores, more HBM
    ("NVIDIA A100", {"bfloat16": 312e12, "float32": 156e12}),  # SXM4 and PCIe alike
    ("NVIDIA L4", {"bfloat16": 121e12, "float32": 60e12}),
    # Cloud TPU docs (https://cloud.google.com/tpu/docs/v4, .../v5e, .../v5p): BF16 peak per chip, one JAX device. TPUs
    # run float32 matmuls as bf16 passes: one at JAX's default precision (the bf16 peak), 3 or 6 at 'high'/'highest'.
    ("TPU v5 lite", {"bfloat16": 197e12, "float32": 197e12}),  # v5e
    ("TPU v5", {"bfloat16": 459e12, "float32": 459e12}),  # v5p
    ("TPU v4", {"bfloat16": 275e12, "float32": 275e12}),
)


def peak_flops(compute_dtype: str = "float32", device_kind: str | None = None) -> float | None:
  """One device's dense peak FLOP/s for `compute_dtype` ('float32' | 'bfloat16'); None for an unknown device (CPUs)."""
  kind = device_kind or jax.devices()[0].device_kind
  return next((peaks[compute_dtype] for prefix, peaks in PEAKS if kind.startswith(prefix)), None)


def _step_and_batch(config, spec: model_lib.ModelSpec, batch_size: int, shape_points=None, objective=None):
  """(update_fn, mesh, optimizer, abstract params, a synthetic global batch on the devices) of `config` on `spec`.

  The synthetic images have the dataset's size (`config.data.image_size`), so a network that sees a smaller image
  pays for the resize, as in training.
  """
  mesh = step_fns.create_mesh()
  abstract = jax.eval_shape(lambda: model_lib.init_params(spec, jax.random.key(0)))
  tx, schedule = optimizer.make_optimizer(config, abstract)
  update_fn = step_fns.make_update_fn(
      model_lib.EmbeddingNet(spec),
      tx,
      schedule,
      mesh,
      {k: float(v) for k, v in config.loss.items()},
      flip=bool(config.train.augment_flip),
      shift=float(config.train.augment_shift),
      shape_points=shape_points,
      objective=objective,
      photometric=photometric.Photometric.from_config(config.get("photometric")),
  )
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
  return update_fn, mesh, tx, abstract, step_fns.place_batch(batch, mesh)


def _compile(update_fn, state, batch) -> tuple[float, float, float]:
  """(XLA's FLOPs of one device's program of the step, its temporary buffers in bytes (activations and the like:
  `memory_analysis`), seconds to compile it)."""
  start = time.perf_counter()
  compiled = update_fn.lower(state, batch, jax.random.key(1)).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  memory = compiled.memory_analysis()
  temp = float(memory.temp_size_in_bytes) if memory is not None else 0.0
  return (float(cost.get("flops", 0.0)) if cost else 0.0), temp, time.perf_counter() - start


def step_flops(config, spec: model_lib.ModelSpec, batch_size: int) -> dict:
  """XLA's FLOPs of the update step of `config` on `spec` at `batch_size`, compiled against the state's shapes only
  (nothing is initialized or run: a full-size network's count on a small machine)."""
  update_fn, mesh, tx, abstract, batch = _step_and_batch(config, spec, batch_size)
  state = jax.eval_shape(lambda key: state_lib.create_state(spec, tx, key, mesh), jax.random.key(0))
  flops, temp, compile_s = _compile(update_fn, state, batch)
  return dict(
      batch=batch_size,
      image_size=spec.image_size,
      flops_per_step=flops,
      temp_bytes=temp,
      flops_per_image=flops * mesh.size / batch_size,  # one device's program x devices, per image
      compile_s=compile_s,
      params=sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract)),
  )


def step_rate(
    config, spec: model_lib.ModelSpec, batch_size: int, steps: int, shape_points=None, objective=None
) -> dict:
  """Images/s, seconds/step and XLA's FLOPs/step of the update step of `config`'s optimizer on `spec`.

  With `objective` (a `losses.RankObjective`) the step adds the contrastive term against `shape_points` float32[N, D].
  """
  update_fn, mesh, tx, abstract, batch = _step_and_batch(config, spec, batch_size, shape_points, objective)
  state = state_lib.create_state(spec, tx, jax.random.key(0), mesh)
  key = jax.random.key(1)
  flops, _, compile_s = _compile(update_fn, state, batch)
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
      data_image_size=int(config.data.image_size),
      compute_dtype=spec.compute_dtype,
      flops_per_step=flops,
      flops_per_image=flops * mesh.size / batch_size,
      achieved_tflops=flops / seconds / 1e12,
      compile_s=compile_s,
      params=sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract)),
  )
  peak = peak_flops(spec.compute_dtype)
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
      flip_trained=bool(config.train.augment_flip),
      compute_dtype=config.train.get("compute_dtype", "float32"),
  )


def alternating_step_rates(make_config, steps: int, rounds: int) -> dict[bool, list[dict]]:
  """`step_rate` of two variants, `make_config(False)` and `make_config(True)`, in alternating rounds (a change of
  load hits both): {variant: [one `step_rate` dict per round]}."""
  runs = {False: [], True: []}
  for _ in range(rounds):
    for variant in (False, True):
      config = make_config(variant)
      runs[variant].append(step_rate(config, _spec(config), int(config.input.batch_size), steps))
  return runs


def _show(name: str, r: dict) -> None:
  mfu = f", MFU {r['mfu']:.1%}" if "mfu" in r else ""
  print(
      f"{name}: {r['images_per_s']:.1f} images/s (batch {r['batch']}, {r['image_size']} px, {r['step_s'] * 1e3:.1f} "
      f"ms/step, {r['flops_per_step'] / 1e9:.1f} GFLOP/step, {r['achieved_tflops']:.3f} TFLOP/s{mfu}; "
      f"{r['params']:,} params, compiled in {r['compile_s']:.1f} s)"
  )


def _rounded(r: dict) -> dict:
  return {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}


def accelerator_rates(arg: str, batch: int, steps: int) -> dict[str, dict]:
  """The accelerator config's step (`configs/accelerator.py:<arg>`) in bfloat16 and in float32, timed.

  With remat on, XLA's count includes the recomputed forward passes; MFU is then taken from the model's own FLOPs
  (the same step compiled without remat) and 'hfu' from XLA's count.
  """
  config = accelerator.get_config(arg)
  runs = {}
  for dtype in ("bfloat16", "float32"):
    config.train.compute_dtype = dtype
    spec = _spec(config)
    run = step_rate(config, spec, batch, steps)
    if spec.remat != "none":
      model_flops = step_flops(config, dataclasses.replace(spec, remat="none"), batch)["flops_per_step"]
      run.update(model_flops_per_step=model_flops)
      if "mfu" in run:
        run.update(hfu=run["mfu"], mfu=run["mfu"] * model_flops / run["flops_per_step"])
    _show(f"accelerator ({arg or 'full size'}, {dtype})", run)
    runs[dtype] = run
  return runs


def full_size_costs(arg: str) -> dict:
  """XLA's FLOPs and temporary memory of the full-size accelerator step, compiled but not run: per image (the slope
  between per-device batches of 1 and 2) and per step at the config's global batch, for each remat policy."""
  config = accelerator.get_config(arg)
  spec, devices, batch = _spec(config), jax.device_count(), int(config.input.batch_size)
  out = dict(image_size=spec.image_size, compute_dtype=spec.compute_dtype, batch=batch, remat={})
  for remat in compute.REMAT_POLICIES:
    one, two = (step_flops(config, dataclasses.replace(spec, remat=remat), n * devices) for n in (1, 2))
    per_image = two["flops_per_step"] - one["flops_per_step"]  # one device's program: per-device batch 1 -> 2
    out["params"] = one["params"]
    out["remat"][remat] = dict(
        flops_per_image=per_image,
        flops_per_step=(one["flops_per_step"] - per_image) * devices + per_image * batch,  # all devices together
        temp_bytes_per_image=two["temp_bytes"] - one["temp_bytes"],
        compile_s=one["compile_s"] + two["compile_s"],
    )
    r = out["remat"][remat]
    print(
        f"accelerator, full size ({spec.backbone}, {spec.image_size} px, {spec.compute_dtype}, remat {remat}): XLA "
        f"counts {per_image / 1e9:.2f} GFLOP and {r['temp_bytes_per_image'] / 2**20:.1f} MiB of temporaries per "
        f"training image, {r['flops_per_step'] / 1e12:.2f} TFLOP a step of {batch} (compiled, not run)"
    )
  out["flops_per_image"] = out["remat"]["none"]["flops_per_image"]  # the model's FLOPs (MFU's numerator)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=5, help="timed steps per model")
  parser.add_argument(
      "--paper_batch", type=int, default=0, help="global batch of the paper's network (0: 1024 on GPU/TPU, 16 on CPU)"
  )
  parser.add_argument("--skip_paper", action="store_true", help="no paper network")
  parser.add_argument("--accelerator_arg", default="", help="overrides of configs/accelerator.py (CPU: after 'tiny')")
  parser.add_argument(
      "--accelerator_batch", type=int, default=0, help="its global batch (0: the config's on GPU/TPU, 32 on CPU)"
  )
  parser.add_argument(
      "--full_flops", default="auto", choices=("auto", "yes", "no"), help="count the full-size step (auto: on CPU)"
  )
  parser.add_argument("--workdir", default="", help="a workdir with the default dataset: measure the pipeline too")
  parser.add_argument("--batches", type=int, default=50, help="batches timed for the pipeline rate")
  args = parser.parse_args()
  cpu = jax.default_backend() == "cpu"
  devices = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  print(f"devices: {devices} ({jax.default_backend()})")
  config = default.get_config()
  out = {"benchmark": "train", "ours": None, "peer": None, "unit": "images/s", "ratio": None, "devices": devices}
  out["default"] = _rounded(step_rate(config, _spec(config), int(config.input.batch_size), args.steps))
  _show("default model", out["default"])
  if not args.skip_paper:
    paper_config = shapenet_chairs.get_config()
    batch = args.paper_batch or (16 if cpu else 1024)
    batch -= batch % jax.device_count()
    out["paper"] = _rounded(step_rate(paper_config, _spec(paper_config), batch, args.steps))
    _show("paper network", out["paper"])
  arg = ",".join(x for x in ("tiny" if cpu else "", args.accelerator_arg) if x)
  batch = args.accelerator_batch or (32 if cpu else int(accelerator.get_config(arg).input.batch_size))
  runs = accelerator_rates(arg, batch - batch % jax.device_count(), args.steps)
  out["accelerator"] = {dtype: _rounded(run) for dtype, run in runs.items()}
  bf16, f32 = runs["bfloat16"]["images_per_s"], runs["float32"]["images_per_s"]
  out.update(ours=round(bf16, 1), peer=round(f32, 1), ratio=round(bf16 / f32, 3))
  if args.full_flops == "yes" or (args.full_flops == "auto" and cpu):
    costs = full_size_costs(args.accelerator_arg)
    out["accelerator"]["full_size"] = dict(_rounded(costs), remat={k: _rounded(v) for k, v in costs["remat"].items()})
  if args.workdir:
    rate = pipeline_rate(args.workdir, args.batches)
    if rate:
      print(f"input pipeline (default config): {rate:.1f} images/s")
      out["pipeline_images_per_s"] = round(rate, 1)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
