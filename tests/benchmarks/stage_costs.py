r"""Per-shape and per-image cost of every stage, and the scale plan they give (docs/scale.md).

  nice -n 5 python tests/benchmarks/stage_costs.py                     # this machine (CPU), real meshes if present
  python tests/benchmarks/stage_costs.py --gpu                          # on a GPU machine: larger samples
  python tests/benchmarks/stage_costs.py --costs=costs.json --hosts=1,8,64   # only the plan, from measured costs

Measured with the paper's settings (configs/shapenet_chairs.py: 224 px LFD renders, 227 px images, CaffeNet), one
process on whatever `jax.devices()` holds, each after a warm-up call (compiles excluded):
  load      read + normalize one mesh (../shared/data ShapeNet samples, else the catalog)      s / shape
  lfd       20 LFD views rendered, cropped, 120 px                                              s / shape
  hog       HoG pyramid of the 20 views (batched, jitted)                                       s / shape
  distance  one pair of 203,760-D descriptors (blockwise GEMM over all devices)                 s / pair
  sammon    one L-BFGS iteration of exact Sammon, per matrix entry (N = --sammon_n)             s / (N^2 iter)
  oos       one shape placed out of sample against L = 2,000 landmarks                          s / shape
  image     one synthetic image: view, lamps, render, crop, background, PNG                    s / image
  train     one image through the paper network's update step (batch --train_batch)             s / image
  embed     one image through the trained network (evaluation, queries)                         s / image
and the bytes a shape's descriptor and an image's PNG take.

The plan: time and storage for ShapeNetCore chairs (6,777), ShapeNetCore (51,300) and Objaverse (800,000 shapes), 125
images per shape, on 1 and K hosts of this machine's kind. Per-shape and per-image stages (load, LFD, HoG, images,
out-of-sample) split over hosts (Beam workers); distances split by tiles over JAX processes; exact Sammon runs on one
host; training (the paper's 40,000 steps of 1,024 images) splits over hosts at --scaling efficiency (measured by
tests/benchmarks/scaling.py). Methods by size: exact
Sammon up to `config.mds.exact_max_n` (20,000) shapes, landmark Sammon (L = 2,000) above; at Objaverse size the
descriptor store itself (0.8 MB a shape) is the cost, which a learned shape encoder (branch shape-encoder) removes.

The last stdout line is one JSON object: {"benchmark": "stage_costs", "costs": {...}, "plan": [...], "ours": the
landmark embedding's time at 6,777 chairs, "peer": the exact one's, "ratio": ours / peer}.
"""

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count()}")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from configs import shapenet_chairs  # pylint: disable=g-import-not-at-top,wrong-import-position

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
DATASETS = (("ShapeNetCore chairs", 6_777), ("ShapeNetCore", 51_300), ("Objaverse", 800_000))
IMAGES_PER_SHAPE, LANDMARKS, EXACT_MAX_N, SAMMON_ITERS = 125, 2_000, 20_000, 128
TRAIN_IMAGES = 40_000 * 1_024  # the paper's schedule: 40,000 SGD steps of 1,024 images


def _timed(fn, repeat: int = 1) -> float:
  """Seconds per call of fn() after one warm-up call (compiles excluded), results blocked on."""
  jax.block_until_ready(fn())
  start = time.perf_counter()
  for _ in range(repeat):
    jax.block_until_ready(fn())
  return (time.perf_counter() - start) / repeat


def _shapes(config, limit: int):
  from jembed.shapes import sources  # pylint: disable=g-import-not-at-top

  if (SHARED / "shapenet_samples" / "ShapeNetCore.v2").is_dir():
    config.shapes.update(source="shapenet", root=str(SHARED / "shapenet_samples" / "ShapeNetCore.v2"), categories=())
  else:
    config.shapes.update(source="catalog", categories=(), limit=2)
  refs = sources.list_shapes(config.shapes)[:limit]
  return refs, config.shapes.source


def shape_side(args) -> dict:
  from jembed.embedding import descriptors  # pylint: disable=g-import-not-at-top
  from jembed.embedding import hog_input  # pylint: disable=g-import-not-at-top
  from jembed.render import backend  # pylint: disable=g-import-not-at-top
  from jembed.shapes import loading  # pylint: disable=g-import-not-at-top

  config = shapenet_chairs.get_config()
  refs, source = _shapes(config, args.shapes)
  renderer = backend.get_renderer("auto")
  t = time.perf_counter()
  shapes = [loading.load_mesh(r, config.shapes.up_axis, config.shapes.front) for r in refs]
  load = (time.perf_counter() - t) / len(shapes)
  views = np.stack(
      [
          hog_input.lfd_images(
              renderer, s.vertices, s.faces, s.category, size=config.render.size, antialias=config.render.antialias
          )
          for s in shapes[:1]
      ]
  )  # warm-up
  t = time.perf_counter()
  views = np.stack(
      [
          hog_input.lfd_images(
              renderer, s.vertices, s.faces, s.category, size=config.render.size, antialias=config.render.antialias
          )
          for s in shapes
      ]
  )
  lfd = (time.perf_counter() - t) / len(shapes)
  hog = _timed(lambda: descriptors.batch_descriptors(views)) / len(shapes)
  return dict(
      source=f"{source}: {len(shapes)} meshes",
      renderer=renderer.name,
      load=load,
      lfd=lfd,
      hog=hog,
      descriptor_bytes=203_760 * 4,
  )


def embedding_side(args) -> dict:
  from jembed.embedding import distances  # pylint: disable=g-import-not-at-top
  from jembed.embedding import out_of_sample  # pylint: disable=g-import-not-at-top
  from jembed.embedding import sammon  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  x = rng.random((args.dist_n, 203_760), dtype=np.float32)
  pair = _timed(lambda: distances.pairwise_distances(x)) / (args.dist_n * (args.dist_n - 1) / 2)
  y = rng.normal(size=(args.sammon_n, 16)).astype(np.float32)
  d = np.linalg.norm(y[:, None] - y[None], axis=-1).astype(np.float32)
  iters = 20
  run = lambda: sammon.sammon(d, dim=128, max_iter=iters, tol=0.0).points
  per_entry = _timed(run) / (iters * args.sammon_n**2)
  points = rng.normal(size=(LANDMARKS, 128)).astype(np.float32)
  a = np.abs(rng.normal(loc=3.0, size=(args.oos_m, LANDMARKS))).astype(np.float32)
  oos = _timed(lambda: out_of_sample.embed_out_of_sample(points, a)) / args.oos_m
  return dict(distance_pair=pair, sammon_entry_iter=per_entry, oos=oos)


def image_side(args) -> dict:
  from jembed.data import render_cache  # pylint: disable=g-import-not-at-top
  from jembed.data import synthesis  # pylint: disable=g-import-not-at-top
  from jembed.render import backend  # pylint: disable=g-import-not-at-top
  from jembed.shapes import loading  # pylint: disable=g-import-not-at-top

  config = shapenet_chairs.get_config()
  refs, _ = _shapes(config, 2)
  photos = sorted(str(p) for p in (SHARED / "backgrounds" / "sun2012").rglob("*.jpg"))[:20]
  job = render_cache.RenderJob(
      settings=synthesis.SynthesisSettings.from_config(config.data),
      seed=0,
      images_per_shape=args.images,
      renderer="auto",
      up_axis=config.shapes.up_axis,
      front=config.shapes.front,
      views_dir="",
      distance=3.0,
      photos=tuple(photos),
      background_scale=float(config.data.background_scale),
      clutter_ratio=float(config.data.clutter_ratio),
      cache_dir="",
  )
  renderer, backgrounds = backend.get_renderer("auto"), render_cache.make_backgrounds(job)
  shape = loading.load_mesh(refs[0], config.shapes.up_axis, config.shapes.front)
  render_cache.shape_examples(renderer, shape, 0, job, backgrounds)  # warm-up
  t = time.perf_counter()
  examples = render_cache.shape_examples(renderer, shape, 0, job, backgrounds)
  per_image = (time.perf_counter() - t) / len(examples)
  return dict(
      image=per_image,
      image_bytes=float(np.mean([len(e["image"]) for e in examples])),
      backgrounds=f"{len(photos)} photos" if photos else "procedural",
  )


def network_side(args) -> dict:
  from jembed.training import model as model_lib  # pylint: disable=g-import-not-at-top
  from jembed.training import optimizer  # pylint: disable=g-import-not-at-top
  from jembed.training import state as state_lib  # pylint: disable=g-import-not-at-top
  from jembed.training import step_fns  # pylint: disable=g-import-not-at-top

  config = shapenet_chairs.get_config()
  spec = model_lib.ModelSpec.from_config(config.model, dim=128, image_size=227, num_categories=1, point_scale=1.0)
  net = model_lib.EmbeddingNet(spec)
  mesh = step_fns.create_mesh()
  batch_size = args.train_batch * mesh.size
  tx, schedule = optimizer.make_optimizer(
      config, jax.eval_shape(lambda: model_lib.init_params(spec, jax.random.key(0)))
  )
  state = state_lib.create_state(spec, tx, jax.random.key(0), mesh)
  rng = np.random.default_rng(0)
  batch = dict(
      image=rng.integers(0, 256, (batch_size, 227, 227, 3), dtype=np.uint8),
      point=rng.normal(size=(batch_size, 128)).astype(np.float32),
      category_index=np.zeros(batch_size, np.int32),
      azimuth=np.zeros(batch_size, np.float32),
      elevation=np.zeros(batch_size, np.float32),
      tilt=np.zeros(batch_size, np.float32),
  )
  update = step_fns.make_update_fn(net, tx, schedule, mesh, {k: float(v) for k, v in config.loss.items()})
  holder = [state]

  def step():
    holder[0], metrics = update(holder[0], batch, jax.random.key(1))
    return metrics

  per_train = _timed(step, repeat=args.steps) / batch_size
  forward = jax.jit(lambda p, x: net.apply(p, x, train=False)["point"])
  params = holder[0]["params"]
  per_embed = _timed(lambda: forward(params, batch["image"]), repeat=args.steps) / batch_size
  return dict(train=per_train, embed=per_embed, devices=mesh.size, device_kind=jax.devices()[0].device_kind)


def _fmt_time(s: float) -> str:
  for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
    if s >= size:
      return f"{s / size:.1f} {unit}"
  return f"{s:.0f} s"


def _fmt_bytes(b: float) -> str:
  for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
    if b >= size:
      return f"{b / size:.1f} {unit}"
  return f"{b / 1e3:.0f} kB"


def plan(costs: dict, hosts: list[int], scaling: float) -> list[dict]:
  """Time and storage of every stage for each data set on 1 and K hosts (see the module docstring)."""
  rows = []
  for name, n in DATASETS:
    images = n * IMAGES_PER_SHAPE
    exact = n <= EXACT_MAX_N
    per_shape = costs["load"] + costs["lfd"] + costs["hog"]
    for k in hosts:
      eff = 1.0 if k == 1 else scaling  # data-parallel training's measured efficiency
      stages = {
          "descriptors (Beam)": n * per_shape / k,
          ("distances, exact" if exact else "distances to landmarks"): (n * (n - 1) / 2 if exact else n * LANDMARKS)
          * costs["distance_pair"]
          / k,
          ("Sammon, exact" if exact else "Sammon, landmark"): (
              SAMMON_ITERS * n**2 * costs["sammon_entry_iter"]
              if exact
              else SAMMON_ITERS * LANDMARKS**2 * costs["sammon_entry_iter"] + (n - LANDMARKS) * costs["oos"]
          ),
          "images (Beam)": images * costs["image"] / k,
          "training, 40k x 1,024 images": TRAIN_IMAGES * costs["train"] / (k * eff),
      }
      storage = {
          "descriptors": n * costs["descriptor_bytes"],
          "distance matrix": n * n * 4 if exact else 0,
          "dataset (PNG)": images * costs["image_bytes"],
      }
      rows.append(
          dict(
              dataset=name,
              shapes=n,
              hosts=k,
              stages=stages,
              storage=storage,
              method="exact Sammon" if exact else "landmark Sammon (or a learned shape encoder)",
          )
      )
  return rows


UNITS = (
    ("load", "read + normalize a mesh", "shape"),
    ("lfd", "20 LFD views rendered and cropped", "shape"),
    ("hog", "HoG pyramid of the 20 views", "shape"),
    ("distance_pair", "distance of one descriptor pair", "pair"),
    ("sammon_entry_iter", "exact Sammon, one matrix entry, one iteration", "entry"),
    ("oos", "one shape placed against 2,000 landmarks", "shape"),
    ("image", "one synthetic image (render, background, PNG)", "image"),
    ("train", "one image through CaffeNet's update step", "image"),
    ("embed", "one image through the trained network", "image"),
)


def costs_markdown(costs: dict) -> str:
  """The measured per-unit costs as a markdown table."""
  lines = ["| stage | cost | per |", "|---|---|---|"]
  for key, what, per in UNITS:
    lines.append(f"| {what} | {costs[key] * 1e3:.4g} ms | {per} |")
  lines.append(
      f"| descriptor / image (PNG) | {costs['descriptor_bytes'] / 1e3:.0f} kB / "
      f"{costs['image_bytes'] / 1e3:.1f} kB | shape / image |"
  )
  return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
  stage_names = ["descriptors (Beam)", "distances", "Sammon", "images (Beam)", "training"]
  head = (
      "| data set | hosts | shape side method | " + " | ".join(stage_names) + " | descriptors | distances | dataset |"
  )
  lines = [head, "|" + "---|" * (head.count("|") - 1)]
  for r in rows:
    times = [next(v for k, v in r["stages"].items() if k.startswith(s)) for s in stage_names]
    sizes = [r["storage"][k] for k in ("descriptors", "distance matrix", "dataset (PNG)")]
    lines.append(
        f"| {r['dataset']} ({r['shapes']:,}) | {r['hosts']} | {r['method']} | "
        + " | ".join(_fmt_time(t) for t in times)
        + " | "
        + " | ".join(_fmt_bytes(b) if b else "–" for b in sizes)
        + " |"
    )
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--gpu", action="store_true", help="larger samples (an accelerator machine)")
  parser.add_argument("--shapes", type=int, default=6)
  parser.add_argument("--images", type=int, default=8)
  parser.add_argument("--dist_n", type=int, default=0, help="descriptors in the distance sample (default 256/2048)")
  parser.add_argument("--sammon_n", type=int, default=0, help="N of the Sammon sample (default 1024/8192)")
  parser.add_argument("--oos_m", type=int, default=0, help="shapes placed out of sample (default 128/2048)")
  parser.add_argument("--train_batch", type=int, default=0, help="per-device batch (default 4/128)")
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--hosts", default="1,8,64")
  parser.add_argument("--scaling", type=float, default=0.9, help="data-parallel efficiency for K hosts")
  parser.add_argument("--costs", default="", help="a JSON of costs from an earlier run: only the plan")
  args = parser.parse_args()
  args.dist_n = args.dist_n or (2048 if args.gpu else 256)
  args.sammon_n = args.sammon_n or (8192 if args.gpu else 1024)
  args.oos_m = args.oos_m or (2048 if args.gpu else 128)
  args.train_batch = args.train_batch or (128 if args.gpu else 4)
  if args.costs:
    costs = json.loads(pathlib.Path(args.costs).read_text().strip().splitlines()[-1])["costs"]
  else:
    costs = {}
    for part in (shape_side, embedding_side, image_side, network_side):
      costs.update(part(args))
      print(part.__name__, {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in costs.items()}, flush=True)
  rows = plan(costs, [int(k) for k in args.hosts.split(",")], args.scaling)
  print(costs_markdown(costs))
  print(markdown(rows))
  chairs = [r for r in rows if r["shapes"] == 6_777 and r["hosts"] == 1][0]
  exact = chairs["stages"]["distances, exact"] + chairs["stages"]["Sammon, exact"]
  landmark = (
      6_777 * LANDMARKS * costs["distance_pair"]
      + SAMMON_ITERS * LANDMARKS**2 * costs["sammon_entry_iter"]
      + (6_777 - LANDMARKS) * costs["oos"]
  )
  print(
      json.dumps(
          dict(
              benchmark="stage_costs",
              device=jax.devices()[0].device_kind,
              devices=jax.device_count(),
              costs=costs,
              plan=rows,
              ours=landmark,
              peer=exact,
              unit="s (chairs: landmark vs exact)",
              ratio=landmark / exact,
          )
      )
  )


if __name__ == "__main__":
  main()
