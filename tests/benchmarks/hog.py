r"""HoG pyramid throughput: jembed's jitted `hog_pyramid` against `skimage.feature.hog` looped per image.

  python tests/benchmarks/hog.py                          # 1000 views for ours, 200 for skimage, best of 3
  python tests/benchmarks/hog.py --batch 4000 --peer-images 500 --repeats 5

The views are random 120x120 uint8 crops of `skimage.data.camera()` (real image statistics, no shared data needed).
Ours: `hog_pyramid` on the whole batch in one call (the paper's 120/60/30 pyramid with MATLAB uint8 imresize
between levels), compile and a warm-up call excluded, `block_until_ready`. Peer: per image, skimage's closest
equivalent (`hog` with 9 orientations, 8 px cells, 2x2-cell L2-Hys blocks) at 120, 60 and 30 px, the levels made
with `skimage.transform.resize(order=3, anti_aliasing=True)`. Both report wall-clock images/s (best of `--repeats`)
and images per CPU-second of this process (user + system: XLA may use several cores, skimage uses one; the per-CPU
figure is also less sensitive to other load on the machine). The last stdout line is one JSON object with the
wall-clock figures; "ratio" = ours / peer.
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np
import skimage.data
import skimage.feature
import skimage.transform

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from jembed.embedding import hog  # pylint: disable=g-import-not-at-top,wrong-import-position

_SKIMAGE_KW = dict(
    orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys", feature_vector=True
)


def camera_views(count: int, seed: int = 0) -> np.ndarray:
  """uint8[count, 120, 120] random crops of the cameraman image."""
  camera = skimage.data.camera()
  rng = np.random.default_rng(seed)
  tops = rng.integers(0, camera.shape[0] - 120, count)
  lefts = rng.integers(0, camera.shape[1] - 120, count)
  return np.stack([camera[t : t + 120, l : l + 120] for t, l in zip(tops, lefts)])


def skimage_pyramid(view: np.ndarray) -> np.ndarray:
  """The peer: 3-level HoG pyramid of one view with skimage only."""
  level = view.astype(np.float64)
  feats = []
  for i in range(3):
    if i:
      level = skimage.transform.resize(
          level, (level.shape[0] // 2, level.shape[1] // 2), order=3, anti_aliasing=True, preserve_range=True
      )
    feats.append(skimage.feature.hog(level, **_SKIMAGE_KW))
  return np.concatenate(feats)


def _time(fn, repeats: int) -> tuple[float, float]:
  """Best wall-clock seconds and the CPU seconds of that same call."""
  best = (float("inf"), float("inf"))
  for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    best = min(best, (wall, cpu))
  return best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=1000, help="views per hog_pyramid call")
  parser.add_argument("--peer-images", type=int, default=200, help="views timed with skimage (it is slow)")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()

  views = camera_views(args.batch)
  device_views = jax.device_put(views)
  hog.hog_pyramid(device_views).block_until_ready()  # compile + warm-up
  wall, cpu = _time(lambda: hog.hog_pyramid(device_views).block_until_ready(), args.repeats)
  ours, ours_cpu = args.batch / wall, args.batch / max(cpu, 1e-9)
  print(
      f"jembed hog_pyramid ({jax.default_backend()}, batch {args.batch}): {ours:,.0f} images/s wall, "
      f"{ours_cpu:,.0f} images per CPU-s"
  )

  peer_views = views[: args.peer_images]
  skimage_pyramid(peer_views[0])  # warm-up (imports, caches)
  wall, cpu = _time(lambda: [skimage_pyramid(v) for v in peer_views], args.repeats)
  peer, peer_cpu = len(peer_views) / wall, len(peer_views) / max(cpu, 1e-9)
  print(
      f"skimage hog pyramid (looped, {len(peer_views)} views): {peer:,.0f} images/s wall, "
      f"{peer_cpu:,.0f} images per CPU-s"
  )
  print(f"ratio: {ours / peer:.1f}x wall, {ours_cpu / peer_cpu:.1f}x per CPU-s")
  print(
      json.dumps(
          {
              "benchmark": "hog_pyramid",
              "ours": round(ours, 1),
              "peer": round(peer, 1),
              "unit": "images/s",
              "ratio": round(ours / peer, 2),
          }
      )
  )


if __name__ == "__main__":
  main()
