r"""The web page under load: 20 concurrent photo uploads, answered in batches, against the same page answering each
upload on its own.

  python -m launch.demo --config=configs/tiny.py --workdir=/tmp/jembed_tiny     # a trained workdir (a minute or two)
  python tests/benchmarks/serve_load.py --workdir=/tmp/jembed_tiny
  python tests/benchmarks/serve_load.py --workdir=/tmp/jembed_tiny --uploads 40 --max-batch 16

Each configuration is `python -m launch.serve` in its own process on 127.0.0.1 (a free port; nothing else is
contacted), as a user starts it: ours with `--max_batch=16` (uploads that queue up while a batch runs are answered
together: one forward pass, one search, one placement on the map), the peer with `--max_batch=1` (every upload on its
own worker thread at once, the page's behaviour before batching). Once a server answers, one upload warms it up,
then `--uploads` clients (threads of `gradio_client`, the page's `/search` API) each upload a different photo (one of
the workdir's cluttered test images, shifted and flipped, 200 x 150 JPEG) at the same moment and wait for the whole
answer (ranking, thumbnails, 3D model, pose overlay, map, neighbours). Latency is per upload, from the call to its
answer; a client that has no answer after `--timeout` seconds counts as that long. Every answer is checked to be a
ranking of `top_k` shapes. The server processes are stopped at the end.

The last stdout line is one JSON object: "ours" and "peer" are the median latencies (s), "ratio" = peer / ours; the
goal is a median of at most 3 s and a 95th percentile of at most 8 s for 20 uploads on 2 cores ("meets_goal").
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_server(workdir: str, max_batch: int, timeout: float) -> tuple[subprocess.Popen, str]:
  """`python -m launch.serve` on a free loopback port; returns (process, url) once the page answers."""
  port = _free_port()
  proc = subprocess.Popen(
      [sys.executable, "-m", "launch.serve", f"--workdir={workdir}", f"--port={port}", f"--max_batch={max_batch}"],
      cwd=REPO,
      env={**os.environ, "PYTHONPATH": str(REPO)},
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
  )
  url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      raise RuntimeError(f"the server stopped (exit {proc.returncode}): {proc.stderr.read()[-3000:]}")
    try:
      with urllib.request.urlopen(url, timeout=5) as response:
        if response.status == 200:
          return proc, url
    except OSError:
      time.sleep(0.5)
  proc.kill()
  raise RuntimeError(f"the server did not answer within {timeout} s")


def photos(workdir: str, count: int, folder: pathlib.Path) -> list[pathlib.Path]:
  """`count` different JPEG photos from the workdir's cluttered test images (shifted and flipped), 200 x 150."""
  with np.load(os.path.join(workdir, "eval", "sets", "synthetic.npz")) as data:
    images = data["synthetic_clutter"] if "synthetic_clutter" in data else data["synthetic_clean"]
  out = []
  for i in range(count):
    image = np.roll(images[i % len(images)], 7 * i, axis=1)
    path = folder / f"upload_{i}.jpg"
    Image.fromarray(image[:, ::-1] if i % 2 else image).resize((200, 150), Image.BICUBIC).save(path, quality=92)
    out.append(path)
  return out


def _file_urls(answer) -> list[str]:
  """Every file URL in an answer (gallery images, the 3D model, the overlay, the map), as a browser would fetch."""
  if isinstance(answer, dict):
    own = [answer["url"]] if isinstance(answer.get("url"), str) and "/file=" in answer["url"] else []
    return own + [u for v in answer.values() if isinstance(v, (dict, list, tuple)) for u in _file_urls(v)]
  if isinstance(answer, (list, tuple)):
    return [u for v in answer for u in _file_urls(v)]
  return []


def burst(url: str, uploads: list[pathlib.Path], top_k: int, timeout: float) -> tuple[np.ndarray, int]:
  """Seconds from each upload's call to its whole answer, all uploads sent at once (float64[len(uploads)]), and the
  files fetched per answer. An answer is whole when its files have been fetched too, each client on one kept-alive
  connection as a browser does (`gradio_client`'s own download opens a connection per file, which on a loaded machine
  costs more than the server's work)."""
  from gradio_client import Client  # pylint: disable=g-import-not-at-top  (the serve extra)
  from gradio_client import handle_file  # pylint: disable=g-import-not-at-top
  import httpx  # pylint: disable=g-import-not-at-top  (gradio_client's dependency)

  client = Client(url, verbose=False, download_files=False)
  fetched = []

  def one(path):
    start = time.perf_counter()
    out = client.predict(handle_file(str(path)), top_k, api_name="/search")
    if len(out[1]["data"]) != top_k or not str(out[0]).startswith("Nearest shape"):
      raise RuntimeError(f"a wrong answer for {path}: {str(out)[:300]}")
    with httpx.Client() as browser:
      files = _file_urls(out)
      for file_url in files:
        browser.get(file_url).raise_for_status()
    fetched.append(len(files))
    return time.perf_counter() - start

  one(uploads[0])  # warm-up: the server's first request
  pool = concurrent.futures.ThreadPoolExecutor(len(uploads))
  futures = [pool.submit(one, p) for p in uploads]
  done, _ = concurrent.futures.wait(futures, timeout=timeout)
  latency = np.array([f.result() if f in done else timeout for f in futures])
  pool.shutdown(wait=False, cancel_futures=True)
  return latency, int(np.median(fetched))


def run(workdir: str, max_batch: int, uploads: list[pathlib.Path], args) -> dict:
  proc, url = start_server(workdir, max_batch, args.start_timeout)
  try:
    latency, files = burst(url, uploads, args.top_k, args.timeout)
  finally:
    proc.terminate()
    try:
      proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
      proc.kill()
  stats = {
      "p50": float(np.median(latency)),
      "p95": float(np.percentile(latency, 95)),
      "max": float(latency.max()),
      "answered": int(np.sum(latency < args.timeout)),
      "files": files,
  }
  print(
      f"max_batch={max_batch}: {len(uploads)} concurrent uploads, latency median {stats['p50']:.2f} s, "
      f"p95 {stats['p95']:.2f} s, max {stats['max']:.2f} s, {stats['answered']} answered ({files} files each)"
  )
  return stats


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="a trained run (see above)")
  parser.add_argument("--uploads", type=int, default=20, help="concurrent uploads")
  parser.add_argument("--max-batch", type=int, default=16, help="ours: uploads answered together at most")
  parser.add_argument("--top-k", type=int, default=5)
  parser.add_argument("--timeout", type=float, default=180.0, help="seconds an upload may wait for its answer")
  parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds a server may take to start")
  parser.add_argument("--skip-peer", action="store_true", help="only ours")
  args = parser.parse_args()

  with tempfile.TemporaryDirectory() as tmp:
    uploads = photos(args.workdir, args.uploads, pathlib.Path(tmp))
    ours = run(args.workdir, args.max_batch, uploads, args)
    peer = None if args.skip_peer else run(args.workdir, 1, uploads, args)
  result = {
      "benchmark": f"serve_load_{args.uploads}_uploads",
      "ours": round(ours["p50"], 3),
      "peer": round(peer["p50"], 3) if peer else None,
      "unit": "s (median latency)",
      "ratio": round(peer["p50"] / ours["p50"], 2) if peer else None,
      "ours_p95_s": round(ours["p95"], 3),
      "ours_max_s": round(ours["max"], 3),
      "ours_answered": ours["answered"],
      "max_batch": args.max_batch,
      "cpus": os.cpu_count(),
      "load_average_1min": round(os.getloadavg()[0], 2),
      "meets_goal": bool(ours["p50"] <= 3.0 and ours["p95"] <= 8.0 and ours["answered"] == args.uploads),
  }
  if peer:
    result.update(peer_p95_s=round(peer["p95"], 3), peer_max_s=round(peer["max"], 3), peer_answered=peer["answered"])
  print(json.dumps(result))


if __name__ == "__main__":
  main()
