r"""Landmark Sammon at N = 50,000: wall time, peak memory and estimated stress of `sammon_landmark`.

  python tests/benchmarks/sammon_large.py                       # 50,000 points, 512-D, 20 clusters, 2000 landmarks
  python tests/benchmarks/sammon_large.py --n 20000 --landmarks 1000

The exact solver needs the N × N matrix (10 GB at N = 50k in float32, plus the solver's own copy); the landmark
variant works from the descriptors: exact Sammon on L random landmarks (an L × L matrix), then every other point
placed out of sample from its L distances (N × L). Data: the same clustered generator as `sammon.py` (centres N(0, 1),
spread 0.5, seed 1). Reported: wall time of the whole call (jit compile included: it runs once), peak resident memory
of the process (`ru_maxrss`, which includes the 100 MB of descriptors and the JAX runtime), and the Sammon stress
estimated over all pairs among a random subset of points (`subset_stress`), next to the stress an exact `sammon` run
reaches on that same subset alone (a reference for the achievable level, not an equal-footing peer: that solve only
has to fit the subset). There is no external peer at this size (MASS and sklearn need the full matrix), so "peer" is
the exact solve's stress on the subset and "ratio" = estimated stress / that reference. The last stdout line is one
JSON object.
"""

import argparse
import json
import os
import pathlib
import resource
import sys
import time

import numpy as np

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count()}")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
from sammon import clustered  # pylint: disable=g-import-not-at-top,wrong-import-position

from jembed.embedding import distances  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.embedding import out_of_sample  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.embedding import sammon  # pylint: disable=g-import-not-at-top,wrong-import-position


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--n", type=int, default=50000)
  parser.add_argument("--features", type=int, default=512)
  parser.add_argument("--clusters", type=int, default=20)
  parser.add_argument("--dim", type=int, default=128)
  parser.add_argument("--landmarks", type=int, default=2000)
  parser.add_argument("--subset", type=int, default=2000, help="points whose pairs estimate the stress")
  args = parser.parse_args()

  x = clustered(args.n, args.features, args.clusters, seed=1)
  start = time.perf_counter()
  result = out_of_sample.sammon_landmark(x, args.landmarks, args.dim)
  wall = time.perf_counter() - start
  peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB
  print(
      f"jembed sammon_landmark ({jax.default_backend()}, {jax.device_count()} device(s)): N={args.n:,}, "
      f"{args.landmarks} landmarks, {wall:.1f} s, peak RSS {peak_gb:.2f} GB; landmark stress "
      f"{result.landmark_result.stress:.4g} after {result.landmark_result.n_iter} iterations"
  )

  estimate = out_of_sample.subset_stress(x, result.points, n_subset=args.subset)
  subset = np.sort(np.random.default_rng([0, 7]).choice(args.n, size=args.subset, replace=False))  # subset_stress's
  reference = sammon.sammon(distances.pairwise_distances(x[subset]), args.dim).stress
  full_gb = 4 * args.n**2 / 2**30
  print(
      f"stress over the pairs among {args.subset} random points: {estimate:.4g} (an exact Sammon of those points "
      f"alone: {reference:.4g}); the exact solver would hold a {full_gb:.1f} GB distance matrix"
  )
  print(
      json.dumps(
          {
              "benchmark": f"sammon_landmark_n{args.n}",
              "ours": float(f"{estimate:.4g}"),
              "peer": float(f"{reference:.4g}"),
              "unit": "Sammon stress (subset estimate)",
              "ratio": round(estimate / reference, 2),
              "wall_s": round(wall, 1),
              "peak_rss_gb": round(peak_gb, 2),
              "landmarks": args.landmarks,
              "landmark_stress": float(f"{result.landmark_result.stress:.4g}"),
              "full_matrix_gb": round(full_gb, 1),
          }
      )
  )


if __name__ == "__main__":
  main()
