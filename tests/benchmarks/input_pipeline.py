r"""Input pipeline throughput: images/s built, images/s streamed as global batches, and what a training step consumes.

  python tests/benchmarks/input_pipeline.py                          # default config, dataset in /tmp/jembed_bench
  python tests/benchmarks/input_pipeline.py --workdir=/tmp/jembed --batches=200

1. **Built**: builds the default config's dataset in `--workdir` if it is not there (`build_dataset`, all CPU cores)
   and reports images rendered per second (from `dataset.json` when it was built before).
2. **Streamed**: `pipeline.create_input_iterator` on the train split (grain: shuffle, PNG decode, point join,
   per-host batching, `make_array_from_process_local_data`), batches made ready on the devices, after a warm-up.
   A made-up `shape_embedding.npz` stands in when the shape stage has not run in the workdir.
3. **Consumed** (there is no model yet, so a stand-in): the paper's network on the default image size, CaffeNet
   conv1-conv5 frozen (forward only, as the paper used R-CNN's pool5) plus fc6-fc7-fc(D) trained with the Euclidean
   loss and SGD, one jitted step on the same global batches over the ('data',) mesh. Its images/s is what a default
   training step would consume on this machine; the pipeline must deliver more (ratio = streamed / consumed > 1).

The last stdout line is one JSON object: {"benchmark": "input_pipeline", "ours": streamed images/s, "peer":
consumed images/s, "unit": "images/s", "ratio": ours / peer, ...}.
"""

import argparse
import json
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import flax.linen as nn  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
from jax.sharding import NamedSharding  # pylint: disable=g-import-not-at-top,wrong-import-position
from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from configs import default  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.data import build  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.data import naming  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.data import pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.workdir import records


class CaffeNetStandIn(nn.Module):
  """CaffeNet (conv1-5, LRN left out) with the paper's fc6-fc7-fc(dim) head; the trunk is frozen."""

  dim: int = 128

  @nn.compact
  def __call__(self, images):
    x = pipeline.normalize_images(images)
    for features, kernel, stride, pool in (
        (96, 11, 4, True),
        (256, 5, 1, True),
        (384, 3, 1, False),
        (384, 3, 1, False),
        (256, 3, 1, True),
    ):
      x = nn.relu(nn.Conv(features, (kernel, kernel), (stride, stride), padding="SAME")(x))
      if pool:
        x = nn.max_pool(x, (3, 3), (2, 2))
    x = jax.lax.stop_gradient(x.reshape(x.shape[0], -1))  # frozen pool5, as the paper
    x = nn.relu(nn.Dense(4096)(x))
    x = nn.relu(nn.Dense(4096)(x))
    return nn.Dense(self.dim)(x)


def consumed_images_per_s(batches: list[dict], dim: int, steps: int) -> float:
  """Images/s of a jitted SGD step of the stand-in network on these global batches.

  The step is the per-device program of DESIGN.md: `jax.shard_map` over 'data', gradients averaged with pmean.
  """
  model = CaffeNetStandIn(dim)
  mesh = batches[0]["image"].sharding.mesh
  params = model.init(jax.random.key(0), np.asarray(batches[0]["image"].addressable_shards[0].data))
  params = jax.device_put(params, NamedSharding(mesh, P()))

  def per_device(params, batch):
    def loss_fn(p):
      diff = model.apply(p, batch["image"]) - batch["point"]
      return 0.5 * jnp.mean(jnp.sum(diff * diff, -1))  # the paper's 1/(2N) sum of squares

    loss, grads = jax.value_and_grad(loss_fn)(params)
    grads, loss = jax.lax.pmean((grads, loss), "data")
    return jax.tree.map(lambda w, g: w - 1e-4 * g, params, grads), loss

  step = jax.jit(
      jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("data")), out_specs=(P(), P())), donate_argnums=0
  )
  inputs = [{k: b[k] for k in ("image", "point")} for b in batches]
  params, loss = step(params, inputs[0])  # compile
  jax.block_until_ready(loss)
  start = time.perf_counter()
  for i in range(steps):
    params, loss = step(params, inputs[i % len(inputs)])
  jax.block_until_ready(loss)
  return steps * batches[0]["image"].shape[0] / (time.perf_counter() - start)


def streamed_images_per_s(config, workdir: str, n_batches: int) -> tuple[float, list[dict]]:
  """Images/s delivered by the input pipeline as ready global arrays; also returns a few batches for the step."""
  iterator = pipeline.create_input_iterator(config, workdir, "train")
  kept = [next(iterator) for _ in range(3)]  # warm-up: threads started, buffers filled
  jax.block_until_ready(kept)
  start = time.perf_counter()
  for _ in range(n_batches):
    jax.block_until_ready(next(iterator))
  seconds = time.perf_counter() - start
  return n_batches * int(config.input.batch_size) / seconds, kept


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


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default="/tmp/jembed_bench")
  parser.add_argument("--batches", type=int, default=100, help="batches timed when streaming")
  parser.add_argument("--steps", type=int, default=10, help="training steps timed")
  parser.add_argument("--workers", type=int, default=0, help="rendering processes (0 = all cores)")
  args = parser.parse_args()
  config = default.get_config()
  summary_path = os.path.join(args.workdir, "dataset.json")
  fresh = not os.path.exists(os.path.join(naming.dataset_dir(config, args.workdir), "dataset_info.json"))
  if fresh:
    result = build.build_dataset(config, args.workdir, workers=args.workers)
    built = result.images_per_second
  with open(summary_path) as f:
    summary = json.load(f)
  built = built if fresh else summary.get("images_per_second")
  print(
      f"built: {sum(summary['splits'].values())} images, {built:.1f} images/s "
      f"({'this run' if fresh else 'from ' + summary_path}), {os.cpu_count()} CPUs"
  )
  ensure_embedding(config, args.workdir)
  streamed, batches = streamed_images_per_s(config, args.workdir, args.batches)
  print(
      f"streamed: {streamed:.1f} images/s (global batch {config.input.batch_size}, {config.data.image_size} px, "
      f"{jax.device_count()} {jax.devices()[0].platform} devices, {config.input.read_threads} read threads)"
  )
  consumed = consumed_images_per_s(batches, int(config.mds.dim), args.steps)
  print(f"consumed by the stand-in training step: {consumed:.1f} images/s")
  print(
      json.dumps(
          {
              "benchmark": "input_pipeline",
              "ours": round(streamed, 1),
              "peer": round(consumed, 1),
              "unit": "images/s",
              "ratio": round(streamed / consumed, 2),
              "built_images_per_s": round(built, 1),
              "batch_size": int(config.input.batch_size),
              "image_size": int(config.data.image_size),
              "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
          }
      )
  )


if __name__ == "__main__":
  main()
