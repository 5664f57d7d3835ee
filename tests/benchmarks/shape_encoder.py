r"""Shape encoder throughput: shapes/s of its forward pass vs the LFD-HoG descriptor path it replaces, and the joint
image network + shape encoder train step (images/s, shapes/s, MFU).

  python tests/benchmarks/shape_encoder.py                       # CPU: the demo config's encoder, batch 64
  python tests/benchmarks/shape_encoder.py --batch=1024          # on a GPU: batch 1024, with MFU
  python tests/benchmarks/shape_encoder.py --batch=1024 --preset=ppat_l14 --points=10000   # OpenShape's L/14 size

What is timed, each after a compile and a warm-up:
  ours   `jax.jit(jembed.embed_shapes)` on a device-resident float32[B, P, 3] batch of clouds (the placement of B new
         shapes once their clouds exist); also with the clouds' sampling from the meshes (trimesh, on the host).
  peer   the LFD-HoG descriptor of one shape, per shape: 20 LFD renders -> crop -> 120 px -> HoG pyramid (the default
         renderer and config.render's size), which `embed_shapes --into` without an encoder needs before its N x M
         distances and the out-of-sample Sammon fit (not timed here: they only add to the peer's cost).
  train  `joint.make_update_fn`'s step (both networks, symmetric HCL, anchors, AdamW) on a synthetic batch of B images
         (the dataset's size) and their B clouds, sharded over all devices; FLOPs from XLA's cost analysis, MFU against
         the peak table of tests/benchmarks/train.py (GPUs only).

The last stdout line is one JSON object: {"benchmark": "shape_encoder", "ours": shapes/s of the encoder's forward pass,
"peer": shapes/s of the LFD-HoG descriptor path, "unit": "shapes/s", "ratio": ours / peer, "train": {...}, ...}.
"""

import argparse
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import train as train_bench  # pylint: disable=g-import-not-at-top,wrong-import-position  (tests/benchmarks/train.py)

from configs import default  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.api import embed  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.embedding import descriptors  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.embedding import hog_input  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.render import backend  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.shapes import point_clouds  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.shapes import sources  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import joint  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import model as model_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import optimizer  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import point_encoder  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.training import step_fns  # pylint: disable=g-import-not-at-top,wrong-import-position


def _timed(fn, steps: int) -> float:
  """Seconds per call of `fn` (blocked on), after two warm-up calls."""
  for _ in range(2):
    jax.block_until_ready(fn())
  start = time.perf_counter()
  for _ in range(steps):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps


def encoder_rate(spec: point_encoder.EncoderSpec, batch: int, points: int, steps: int) -> dict:
  variables = point_encoder.init_params(spec, jax.random.key(0), points)
  params = embed.ShapeParams(variables, spec)
  clouds = jax.device_put(np.random.default_rng(0).uniform(-1, 1, (batch, points, 3)).astype(np.float32))
  fn = jax.jit(embed.embed_shapes)
  seconds = _timed(lambda: fn(params, clouds), steps)
  return dict(
      shapes_per_s=batch / seconds,
      step_s=seconds,
      batch=batch,
      points=points,
      params=sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables)),
      gflop_per_shape=point_encoder.flops_per_cloud(spec, points) / 1e9,
  )


def lfd_and_sampling_rates(config, shapes: int, points: int) -> dict:
  """Shapes/s of the LFD-HoG descriptor path and of the clouds' sampling, on the first catalog shapes."""
  cfg = config.shapes.copy_and_resolve_references()
  cfg.limit = max(1, shapes // 6 + 1)
  loaded = [s for s, _ in zip(sources.iter_shapes(sources.list_shapes(cfg)), range(shapes))]
  renderer = backend.get_renderer(config.render.backend)

  def descriptor(shape):
    views = hog_input.lfd_images(
        renderer,
        shape.vertices,
        shape.faces,
        shape.category,
        size=config.render.size,
        antialias=config.render.antialias,
    )
    return descriptors.batch_descriptors(views[None])  # the stage's own kernel

  jax.block_until_ready(descriptor(loaded[0]))  # compile
  start = time.perf_counter()
  jax.block_until_ready([descriptor(s) for s in loaded])
  lfd = len(loaded) / (time.perf_counter() - start)
  start = time.perf_counter()
  for s in loaded:
    point_clouds.sample_surface(s.vertices, s.faces, points, point_clouds.shape_seed(0, s.id))
  sampling = len(loaded) / (time.perf_counter() - start)
  return dict(lfd_shapes_per_s=lfd, sampling_shapes_per_s=sampling, shapes_timed=len(loaded))


def train_rate(config, spec: point_encoder.EncoderSpec, batch: int, points: int, steps: int) -> dict:
  """The joint train step at global batch `batch`: images/s (= shapes/s: one cloud per image), FLOPs, MFU."""
  config = joint.joint_config(config)
  mesh = step_fns.create_mesh()
  image_spec = model_lib.ModelSpec.from_config(
      config.model,
      dim=spec.out_dim,
      num_categories=6,
      point_scale=2.5,
      image_size=config.model.image_size or config.data.image_size,
  )
  init = joint._init_fn(image_spec, spec, points)  # pylint: disable=protected-access
  tx, schedule = optimizer.make_optimizer(config, jax.eval_shape(init, jax.random.key(0), None))
  update = joint.make_update_fn(
      model_lib.EmbeddingNet(image_spec), point_encoder.PointEncoder(spec), tx, schedule, mesh, config, spread2=6.0
  )
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.jit(
      lambda k: dict(step=jnp.zeros((), jnp.int32), params=(p := init(k, None)), opt_state=tx.init(p)),
      out_shardings=replicated,
  )(jax.random.key(0))
  rng, size, n_shapes = np.random.default_rng(0), int(config.data.image_size), 4 * batch
  shape_index = rng.integers(0, n_shapes, batch).astype(np.int32)
  batch_arrays = step_fns.place_batch(
      dict(
          image=rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
          point=rng.normal(size=(batch, spec.out_dim)).astype(np.float32),
          shape_index=shape_index,
          azimuth=np.zeros(batch, np.float32),
          tilt=np.zeros(batch, np.float32),
      ),
      mesh,
  )
  clouds = jax.device_put(rng.uniform(-1, 1, (n_shapes, points, 3)).astype(np.float32), replicated)
  key = jax.random.key(1)
  start = time.perf_counter()
  compiled = update.jitted.lower(state, batch_arrays, clouds, key).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0)) if cost else 0.0
  holder = {"state": state}

  def step():
    holder["state"], metrics = update(holder["state"], batch_arrays, clouds, key)
    return metrics

  seconds = _timed(step, steps)
  out = dict(
      images_per_s=batch / seconds,
      shapes_per_s=batch / seconds,
      step_s=seconds,
      batch=batch,
      flops_per_step=flops,
      achieved_tflops=flops / seconds / 1e12,
      compile_s=compile_s,
  )
  peak = train_bench.peak_flops("float32")
  if peak and flops:  # one device's program against one device's peak
    out["mfu"] = flops / seconds / peak
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=64, help="clouds per forward pass and global train batch")
  parser.add_argument("--points", type=int, default=0, help="points per cloud (0: the config's)")
  parser.add_argument("--preset", default="demo", help="encoder size: demo | ppat_bigg | ppat_l14 | ppat_b32")
  parser.add_argument("--steps", type=int, default=5, help="timed steps")
  parser.add_argument("--lfd_shapes", type=int, default=6, help="shapes timed on the LFD-HoG path")
  parser.add_argument("--skip_train", action="store_true", help="only the forward pass and its peer")
  args = parser.parse_args()
  devices = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  print(f"devices: {devices} ({jax.default_backend()})")
  config = default.get_config()
  config.shape_encoder.preset = args.preset
  points = args.points or int(config.shape_encoder.points)
  config.shape_encoder.points = points
  batch = args.batch - args.batch % jax.device_count()
  spec = point_encoder.spec_from_config(config.shape_encoder, out_dim=int(config.mds.dim))
  ours = encoder_rate(spec, batch, points, args.steps)
  print(
      f"encoder forward ({args.preset}, {points} points, batch {batch}): {ours['shapes_per_s']:.1f} shapes/s, "
      f"{ours['gflop_per_shape']:.3f} GFLOP/shape, {ours['params']:,} params"
  )
  peer = lfd_and_sampling_rates(config, args.lfd_shapes, points)
  with_sampling = 1.0 / (1.0 / ours["shapes_per_s"] + 1.0 / peer["sampling_shapes_per_s"])
  print(
      f"LFD-HoG descriptor path: {peer['lfd_shapes_per_s']:.2f} shapes/s; cloud sampling "
      f"{peer['sampling_shapes_per_s']:.1f} shapes/s; sampling + encoder {with_sampling:.1f} shapes/s"
  )
  out = {
      "benchmark": "shape_encoder",
      "ours": round(ours["shapes_per_s"], 2),
      "peer": round(peer["lfd_shapes_per_s"], 3),
      "unit": "shapes/s",
      "ratio": round(ours["shapes_per_s"] / peer["lfd_shapes_per_s"], 1),
      "devices": devices,
      "sampling_plus_encoder_shapes_per_s": round(with_sampling, 2),
      "encoder": ours,
      "lfd": peer,
  }
  if not args.skip_train:
    result = train_rate(config, spec, batch, points, args.steps)
    mfu = f", MFU {result['mfu']:.1%}" if "mfu" in result else ""
    print(
        f"joint train step (batch {batch}): {result['images_per_s']:.1f} images/s + {result['shapes_per_s']:.1f} "
        f"shapes/s, {result['flops_per_step'] / 1e9:.1f} GFLOP/step, {result['achieved_tflops']:.3f} TFLOP/s{mfu}"
    )
    out["train"] = {k: round(v, 4) for k, v in result.items()}
  print(json.dumps(out))


if __name__ == "__main__":
  main()
