r"""Query latency: one photo's point -> its top 10 among 10,000 shapes, jembed's `retrieval.top_k` against numpy.

  python tests/benchmarks/query.py                        # D = 128, N = 10,000 shapes, k = 10, median of 200 calls
  python tests/benchmarks/query.py --n 100000 --calls 50 --skip-embed

The shapes are random float32 points (the search does not care where they came from). Ours is the call a user
makes, `retrieval.top_k(query, shapes, 10)` with both as numpy arrays: the shapes are copied to the device on every
call and the answer comes back as numpy. Also shown: `retrieval.knn` jitted with the shapes already on the device
(what a server that keeps them there pays). The peer is numpy brute force in float32: ‖d‖² − 2 d·q for all shapes
(BLAS), then `np.argpartition` and a sort of the 10 survivors; both sides compute ‖d‖² on every call. The peer is
timed with OpenBLAS's default threads and with one thread (threadpoolctl), and the faster counts: a matrix-vector
product is too small to split, and on a busy machine two BLAS threads can wait on each other for a scheduler tick
(8 ms instead of 0.1 ms on the 2-core development machine). The two answers are asserted to agree (indices equal,
distances within 1e-4). Times are wall-clock medians over `--calls` warm calls (compile and warm-up excluded).
Unless `--skip-embed`, it also times embedding one 128x128 photo with the default architecture (random weights: the
cost, not the answer) and the whole photo -> top 10 path.

Runs on the real devices (no forced host device count): a single CPU device is the user's case. The last stdout line
is one JSON object; "ratio" = peer / ours (above 1: ours is faster).
"""

import argparse
import json
import pathlib
import statistics
import sys
import time

import numpy as np
import threadpoolctl

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from jembed.api import retrieval  # pylint: disable=g-import-not-at-top,wrong-import-position


def _median_ms(fn, calls: int) -> float:
  fn()
  fn()  # compile, caches and BLAS threads warm
  times = []
  for _ in range(calls):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def numpy_top_k(query: np.ndarray, shapes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
  """The peer: float32 brute force for one query float32[1, D]; ties by lower index like ours."""
  sq = np.einsum("nd,nd->n", shapes, shapes) - 2.0 * (shapes @ query[0])  # + ‖q‖², the same for every shape
  part = np.argpartition(sq, k - 1)[:k]
  part = part[np.lexsort((part, sq[part]))]
  return np.sqrt(np.maximum(sq[part] + query[0] @ query[0], 0.0))[None], part[None]


def embed_cost(calls: int) -> dict:
  """Median ms to embed one uint8 128x128 photo with the default network (random weights), numpy in and out."""
  from jembed.api import embed  # pylint: disable=g-import-not-at-top  (flax only when asked for)
  from jembed.training import model  # pylint: disable=g-import-not-at-top

  spec = model.ModelSpec()
  params = embed.Params(variables=model.init_params(spec, jax.random.key(0)), spec=spec)
  embed_fn = jax.jit(embed.embed_images)
  photo = np.random.default_rng(1).integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
  return {
      "embed_ms": _median_ms(lambda: np.asarray(embed_fn(params, photo)), calls),
      "embed_fn": embed_fn,
      "params": params,
      "photo": photo,
      "dim": spec.dim,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--n", type=int, default=10_000, help="shapes in the database")
  parser.add_argument("--d", type=int, default=128, help="embedding dimension")
  parser.add_argument("--k", type=int, default=10)
  parser.add_argument("--calls", type=int, default=200, help="timed calls (the median is reported)")
  parser.add_argument("--skip-embed", action="store_true", help="do not time the photo embedding")
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  shapes = rng.normal(size=(args.n, args.d)).astype(np.float32)
  query = rng.normal(size=(1, args.d)).astype(np.float32)

  dist, idx = retrieval.top_k(query, shapes, args.k)
  peer_dist, peer_idx = numpy_top_k(query, shapes, args.k)
  np.testing.assert_array_equal(idx, peer_idx)
  np.testing.assert_allclose(dist, peer_dist, rtol=1e-4, atol=1e-4)

  ours = _median_ms(lambda: retrieval.top_k(query, shapes, args.k), args.calls)
  resident = jax.device_put(shapes)
  knn_ms = _median_ms(lambda: [np.asarray(x) for x in retrieval.knn(query, resident, args.k)], args.calls)
  peer_default = _median_ms(lambda: numpy_top_k(query, shapes, args.k), args.calls)
  with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    peer_single = _median_ms(lambda: numpy_top_k(query, shapes, args.k), args.calls)
  peer = min(peer_default, peer_single)
  print(
      f"top-{args.k} of 1 query among {args.n:,} points of D = {args.d} ({jax.default_backend()}, "
      f"{jax.device_count()} device(s)): jembed top_k {ours:.3f} ms (numpy in/out), knn with the points on the "
      f"device {knn_ms:.3f} ms; numpy brute force {peer:.3f} ms (BLAS default threads {peer_default:.3f} ms, one "
      f"thread {peer_single:.3f} ms); ratio {peer / ours:.2f}"
  )
  result = {
      "benchmark": f"query_top{args.k}_n{args.n}",
      "ours": round(ours, 3),
      "peer": round(peer, 3),
      "unit": "ms",
      "ratio": round(peer / ours, 2),
      "ours_knn_resident_ms": round(knn_ms, 3),
      "peer_blas_default_threads_ms": round(peer_default, 3),
      "peer_blas_one_thread_ms": round(peer_single, 3),
      "dim": args.d,
      "devices": jax.device_count(),
      "backend": jax.default_backend(),
  }
  if not args.skip_embed and args.d == 128:
    e = embed_cost(max(10, args.calls // 4))
    total = _median_ms(
        lambda: retrieval.top_k(np.asarray(e["embed_fn"](e["params"], e["photo"])), shapes, args.k),
        max(10, args.calls // 4),
    )
    print(
        f'embedding one 128x128 photo (default network, random weights): {e["embed_ms"]:.2f} ms; '
        f"photo -> top {args.k} shapes: {total:.2f} ms"
    )
    result.update(embed_ms=round(e["embed_ms"], 3), photo_to_top_k_ms=round(total, 3))
  print(json.dumps(result))


if __name__ == "__main__":
  main()
