r"""All-pairs distance throughput: jembed's blockwise `pairwise_distances` against numpy's float32 GEMM.

  python tests/benchmarks/distances.py                    # N = 4000 descriptors of D = 20,000, best of 2
  python tests/benchmarks/distances.py --n 2000 --d 10000 --repeats 3

The work is counted as 2·N²·D flops, the matrix product X Xᵀ that the GEMM identity ‖a‖² + ‖b‖² − 2a·b needs. The peer
is numpy's float32 GEMM (its BLAS, all cores) computing A Bᵀ for two distinct N × D matrices: the machine's practical
limit for that product (X @ X.T would let numpy call SYRK and do half the work). Ours includes everything a caller
gets: centring, the tiled products on all devices, the float64 re-computation of near-duplicate pairs, symmetrizing,
and the N × N float32 result on the host. It computes only the tiles on and above the diagonal, so it does about
(1/2 + 1/(2·tiles per side)) of the nominal flops; both the nominal rate (`ours`) and the rate of the flops actually
done are printed. Times are wall-clock, best of `--repeats`, after a warm-up call (jit compile excluded). On a CPU
host one XLA device per core is used, as the library would shard rows over GPUs. The last stdout line is one JSON
object; "ratio" = ours / peer in nominal GFLOP/s.
"""

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count()}")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from jembed.embedding import distances  # pylint: disable=g-import-not-at-top,wrong-import-position


def _best(fn, repeats: int) -> tuple[float, float]:
  """Best wall-clock seconds and the CPU seconds of that call."""
  best = (float("inf"), float("inf"))
  for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
  return best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--n", type=int, default=4000)
  parser.add_argument("--d", type=int, default=20000)
  parser.add_argument("--block-size", type=int, default=None, help="rows per tile (default: the library default)")
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  x = rng.random((args.n, args.d), dtype=np.float32)
  other = rng.random((args.n, args.d), dtype=np.float32)
  flops = 2.0 * args.n * args.n * args.d

  distances.pairwise_distances(x, block_size=args.block_size)  # compile + warm-up
  wall, cpu = _best(lambda: distances.pairwise_distances(x, block_size=args.block_size), args.repeats)
  n_dev = jax.device_count()
  block = distances._block_rows(args.block_size, args.n, args.d, n_dev)  # pylint: disable=protected-access
  tiles = -(-args.n // block)
  done = 2.0 * block * block * args.d * tiles * (tiles + 1) / 2  # padded tiles on and above the diagonal
  ours = flops / wall / 1e9
  print(
      f"jembed pairwise_distances ({jax.default_backend()}, {n_dev} device(s), {tiles}x{tiles} tiles of {block}): "
      f"{wall:.2f} s ({cpu:.2f} CPU-s), {ours:.1f} GFLOP/s nominal, {done / wall / 1e9:.1f} GFLOP/s done"
  )

  x @ other.T  # warm-up (BLAS threads)
  peer_wall, peer_cpu = _best(lambda: x @ other.T, args.repeats)
  peer = flops / peer_wall / 1e9
  print(f"numpy float32 GEMM A @ B.T: {peer_wall:.2f} s ({peer_cpu:.2f} CPU-s), {peer:.1f} GFLOP/s")
  print(f"ratio: {ours / peer:.2f} nominal, {done / wall / 1e9 / peer:.2f} on the flops done")
  print(
      json.dumps(
          {
              "benchmark": f"pairwise_distances_n{args.n}_d{args.d}",
              "ours": round(ours, 1),
              "peer": round(peer, 1),
              "unit": "GFLOP/s",
              "ratio": round(ours / peer, 2),
              "ours_s": round(wall, 3),
              "peer_s": round(peer_wall, 3),
              "ours_done_gflops": round(done / wall / 1e9, 1),
              "devices": n_dev,
          }
      )
  )


if __name__ == "__main__":
  main()
