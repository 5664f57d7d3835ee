r"""The data path's stretch: `jembed.utils.resample.stretch` against Pillow's LANCZOS `resize` (what it replaced).

  python tests/benchmarks/stretch.py                  # 300 crops per size, best of 3
  python tests/benchmarks/stretch.py --crops 1000 --repeats 5

The inputs are random uint8 RGB crops around each size (+-8 px, so the weight caches see the spread of sizes a
dataset build sees; the first call of each size is in the timing, as in a build), stretched to the output size:
the default config's crops (about 150 x 170 -> 128), the tiny config's (70 x 60 -> 48), the paper's (250 x 200
-> 227) and a query photo (1200 x 900 -> 128). Both run in this process on one core each. Per case it prints
milliseconds per image; the last stdout line is one JSON object, "ratio" = Pillow's time / ours on the default
config's case (above 1: ours is faster).
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from jembed.utils import resample  # pylint: disable=g-import-not-at-top,wrong-import-position

CASES = {"default": (150, 170, 128), "tiny": (70, 60, 48), "paper": (250, 200, 227), "photo": (1200, 900, 128)}


def _best_ms(fn, crops, repeats: int) -> float:
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for crop in crops:
      fn(crop)
    best = min(best, (time.perf_counter() - start) / len(crops))
  return best * 1e3


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--crops", type=int, default=300)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  result = {}
  for name, (h, w, size) in CASES.items():
    count = args.crops if name != "photo" else max(1, args.crops // 10)
    sizes = rng.integers(-8, 9, (count, 2)) + (h, w)
    crops = [rng.integers(0, 256, (a, b, 3), np.uint8) for a, b in sizes]
    resample.fixed_point_matrix.cache_clear()
    ours = _best_ms(lambda c, s=size: resample.stretch(c, s), crops, args.repeats)
    pillow = _best_ms(
        lambda c, s=size: np.asarray(Image.fromarray(c).resize((s, s), Image.LANCZOS)), crops, args.repeats
    )
    print(f"{name:8s} {h}x{w} -> {size}: ours {ours:.3f} ms, Pillow LANCZOS {pillow:.3f} ms")
    result[name] = {"ours_ms": round(ours, 4), "pillow_ms": round(pillow, 4)}
  print(json.dumps(dict(result, ratio=round(result["default"]["pillow_ms"] / result["default"]["ours_ms"], 3))))


if __name__ == "__main__":
  main()
