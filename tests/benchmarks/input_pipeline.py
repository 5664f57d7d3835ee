r"""Input pipeline throughput per host core, PNG against raw shards, next to the training step it has to feed.

  python tests/benchmarks/input_pipeline.py                     # 160-px images of configs/accelerator.py:tiny
  python tests/benchmarks/input_pipeline.py --data_arg=tiny,image_size=224 --records=1000

1. **Built**: the same images as two datasets in `--workdir`, `data.image_format` 'png' and 'raw' (the raw build
   reuses the png build's renders), unless they are there; images/s rendered and bytes per stored image.
2. **Per host core**: what one core does per image for the training stream, in one thread: read the record from the
   ArrayRecord shard, decode it (Pillow PNG decode, or the raw array's copy) and join the shape's point
   (`pipeline.DecodeAndJoin`), over `--records` train records; the best of 3 passes (the machine is shared).
3. **Streamed**: the whole pipeline (`pipeline.create_input_iterator`: grain shuffle, decode, per-host batches, global
   arrays on the devices, device prefetch) with the data config's threads and decode processes, after a warm-up.
4. **Step**: images/s of the accelerator config's bf16 update step on this machine (`tests/benchmarks/train.py`'s
   timer, synthetic batch: `tiny` on CPU, full size on a GPU/TPU), and the host cores each format needs to feed it.

The last stdout line is one JSON object: {"benchmark": "input_pipeline", "ours": raw images/s per host core,
"peer": png images/s per host core, "unit": "images/s per host core", "ratio": ours / peer, "step_images_per_s",
"cores_to_feed_step": {format: step images/s / per-core rate}, "streamed", "bytes_per_image", ...}.
"""

import argparse
import importlib.util
import json
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from configs import accelerator  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.data import build  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.data import naming  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.data import pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.workdir import records  # pylint: disable=g-import-not-at-top,wrong-import-position

# The step timer lives in the training benchmark: one home for how a step is timed.
_spec_file = importlib.util.spec_from_file_location("train_benchmark", pathlib.Path(__file__).with_name("train.py"))
train_benchmark = importlib.util.module_from_spec(_spec_file)
_spec_file.loader.exec_module(train_benchmark)

FORMATS = ("png", "raw")


def ensure_dataset(config, workdir: str, workers: int) -> dict:
  """Builds the dataset of `config` unless it is there; {images rendered per s (None when reused), bytes/image}."""
  fresh = not os.path.exists(os.path.join(naming.dataset_dir(config, workdir), "dataset_info.json"))
  result = build.build_dataset(config, workdir, workers=workers, keep_cache=naming.image_format(config) == "png")
  folder = naming.dataset_dir(config, workdir)
  stored = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if ".array_record-" in f)
  rendered = result.images_per_second if fresh and result.images_rendered else None
  return dict(built_images_per_s=rendered, bytes_per_image=stored / sum(result.num_examples.values()))


def ensure_embedding(config, workdir: str) -> None:
  """A made-up shape_embedding.npz with the dataset's shapes, unless the shape stage wrote a real one."""
  path = os.path.join(workdir, "shape_embedding.npz")
  if os.path.exists(path):
    return
  ids = pipeline.read_metadata(naming.dataset_dir(config, workdir))["shape_ids"]
  points = np.random.default_rng(0).normal(size=(len(ids), int(config.mds.dim))).astype(np.float32)
  records.ShapeEmbedding(
      ids=np.array(ids),
      categories=np.array([i.split("/")[0] for i in ids]),
      points=points,
      stress=0.0,
      stress_curve=np.zeros(1, np.float32),
  ).save(path)


def per_core_images_per_s(config, workdir: str, n_records: int, batch: int = 32) -> float:
  """Images/s of one thread reading, decoding and joining `n_records` train records (best of 3 passes)."""
  source = pipeline.data_source(config, workdir, "train")
  table = pipeline.join_points(
      pipeline.read_metadata(naming.dataset_dir(config, workdir)), records.load_shape_embedding(workdir)
  )
  decode = pipeline.DecodeAndJoin(table)
  n = min(n_records, len(source))
  best = float("inf")
  for _ in range(3):
    start = time.perf_counter()
    for first in range(0, n, batch):
      decode.map([source[i] for i in range(first, min(first + batch, n))])
    best = min(best, time.perf_counter() - start)
  return n / best


def streamed_images_per_s(config, workdir: str, n_batches: int) -> float:
  """Images/s the whole pipeline delivers as ready global arrays, after a warm-up."""
  iterator = pipeline.create_input_iterator(config, workdir, "train")
  jax.block_until_ready([next(iterator) for _ in range(3)])  # threads started, buffers filled
  start = time.perf_counter()
  for _ in range(n_batches):
    jax.block_until_ready(next(iterator))
  return n_batches * int(config.input.batch_size) / (time.perf_counter() - start)


def step_images_per_s(step_arg: str, batch: int, steps: int) -> dict:
  """The accelerator config's bf16 update step on a synthetic batch (tests/benchmarks/train.py's `step_rate`)."""
  config = accelerator.get_config(step_arg)
  config.train.compute_dtype = "bfloat16"
  batch = batch or int(config.input.batch_size)
  return train_benchmark.step_rate(config, train_benchmark._spec(config), batch - batch % jax.device_count(), steps)  # pylint: disable=protected-access


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default="/tmp/jembed_bench_input")
  parser.add_argument(
      "--data_arg",
      default="tiny,image_size=160,data.images_per_shape=24,batch_size=32",
      help="configs/accelerator.py overrides of the benchmark's dataset (its images are the full config's size)",
  )
  parser.add_argument("--records", type=int, default=384, help="records decoded per pass for the per-core rate")
  parser.add_argument("--batches", type=int, default=20, help="batches timed when streaming")
  parser.add_argument("--step_arg", default="", help="overrides of the timed step's config ('tiny' on CPU first)")
  parser.add_argument("--step_batch", type=int, default=0, help="its global batch (0: 32 on CPU, the config's else)")
  parser.add_argument("--steps", type=int, default=5, help="training steps timed")
  parser.add_argument("--workers", type=int, default=0, help="rendering processes (0 = all cores)")
  args = parser.parse_args()
  cpu = jax.default_backend() == "cpu"
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  out = {"benchmark": "input_pipeline", "unit": "images/s per host core", "host_cores": cores}
  rates, streamed, sizes = {}, {}, {}
  for fmt in FORMATS:
    config = accelerator.get_config(f"{args.data_arg},data.image_format={fmt}")
    built = ensure_dataset(config, args.workdir, args.workers)
    ensure_embedding(config, args.workdir)
    rates[fmt] = per_core_images_per_s(config, args.workdir, args.records)
    streamed[fmt] = streamed_images_per_s(config, args.workdir, args.batches)
    sizes[fmt] = built["bytes_per_image"]
    print(
        f"{fmt}: {rates[fmt]:.0f} images/s per host core (read + decode + join, one thread), {streamed[fmt]:.0f} "
        f"images/s streamed as global batches ({config.input.read_threads} threads, {config.input.decode_processes} "
        f"decode processes, {cores} cores), {sizes[fmt] / 1e3:.1f} kB/image on disk, "
        f"{config.data.image_size} px"
        + (f"; built at {built['built_images_per_s']:.1f} images/s" if built["built_images_per_s"] else "")
    )
  step_arg = ",".join(x for x in ("tiny" if cpu else "", args.step_arg) if x)
  step = step_images_per_s(step_arg, args.step_batch or (32 if cpu else 0), args.steps)
  print(
      f"step (configs/accelerator.py:{step_arg}, bfloat16, batch {step['batch']}, {step['image_size']} px): "
      f"{step['images_per_s']:.0f} images/s on {jax.device_count()} x {jax.devices()[0].device_kind}; host cores "
      f"to feed it: png {step['images_per_s'] / rates['png']:.2f}, raw {step['images_per_s'] / rates['raw']:.2f}"
  )
  out.update(
      ours=round(rates["raw"], 1),
      peer=round(rates["png"], 1),
      ratio=round(rates["raw"] / rates["png"], 2),
      image_size=int(config.data.image_size),
      streamed={k: round(v, 1) for k, v in streamed.items()},
      bytes_per_image={k: round(v) for k, v in sizes.items()},
      step_images_per_s=round(step["images_per_s"], 1),
      step_config=f"configs/accelerator.py:{step_arg}",
      cores_to_feed_step={k: round(step["images_per_s"] / v, 3) for k, v in rates.items()},
      devices=f"{jax.device_count()} x {jax.devices()[0].device_kind}",
  )
  print(json.dumps(out))


if __name__ == "__main__":
  main()
