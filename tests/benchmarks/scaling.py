r"""Scaling on one machine: training over 2 JAX processes vs 1, and the Beam build vs the single-host build.

  nice -n 5 python tests/benchmarks/scaling.py
  python tests/benchmarks/scaling.py --steps=60 --batch=64 --shapes=4 --images=16

1. Training: `launch.train` on one small dataset (configs/tiny.py's shapes and 48 px images, configs/default.py's
   network at 48 px, global batch --batch) as 1 process x 2 devices and as 2 processes x 1 device (localhost
   coordinator, gloo collectives). images/s is the train lines' `images_per_s` of metrics.jsonl (wall clock after
   the first, compiling, step; input pipeline included), averaged over the lines after the first. Scaling efficiency =
   2x1 / 1x2: the same devices and the same global batch, so below 1 is what crossing processes costs.
2. Dataset build: `launch.build_dataset` of the same config single-host (--workers=W) and with
   --beam_runner=DirectRunner (W worker processes); images/s from each run's dataset.json (render + write).

The last stdout line is one JSON object: {"benchmark": "scaling", "ours": 2x1 images/s, "peer": 1x2 images/s,
"ratio": ours / peer (the scaling efficiency), "beam_images_per_s", "single_host_images_per_s", "beam_ratio", ...}.
"""

import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]


def _run(cmds: list[list[str]], env: dict, timeout: int = 1800) -> None:
  procs = [
      subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds
  ]
  try:
    for p in procs:
      _, err = p.communicate(timeout=timeout)
      if p.returncode:
        raise SystemExit(f"{' '.join(p.args)} failed:\n{err[-3000:]}")
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _images_per_s(workdir: pathlib.Path) -> float:
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  rates = [l["images_per_s"] for l in lines if "images_per_s" in l][1:]
  return sum(rates) / len(rates)


def train_rate(base: pathlib.Path, flags: list[str], processes: int, devices: int) -> float:
  workdir = base / f"train_{processes}x{devices}"
  workdir.mkdir()
  for name in ("tfds", "shape_embedding.npz"):
    os.symlink(base / "data" / name, workdir / name)
  env = {
      **os.environ,
      "PYTHONPATH": str(REPO),
      "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),
      "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
  }
  port = _free_port()
  multi = lambda i: (
      [f"--coordinator_address=localhost:{port}", f"--num_processes={processes}", f"--process_id={i}"]
      if processes > 1
      else []
  )
  _run(
      [[sys.executable, "-m", "launch.train", *flags, f"--workdir={workdir}", *multi(i)] for i in range(processes)], env
  )
  return _images_per_s(workdir)


def build_rate(base: pathlib.Path, flags: list[str], name: str, extra: list[str]) -> float:
  workdir = base / name
  _run(
      [[sys.executable, "-m", "launch.build_dataset", *flags, f"--workdir={workdir}", *extra]],
      {**os.environ, "PYTHONPATH": str(REPO)},
  )
  summary = json.loads((workdir / "dataset.json").read_text())
  return sum(summary["splits"].values()) / summary["seconds"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=40)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--shapes", type=int, default=2, help="shapes per category (6 categories)")
  parser.add_argument("--images", type=int, default=8, help="images per shape")
  parser.add_argument("--workers", type=int, default=2, help="rendering processes of both builds")
  args = parser.parse_args()
  data = [f"--config.shapes.limit={args.shapes}", f"--config.data.images_per_shape={args.images}"]
  base = pathlib.Path(tempfile.mkdtemp(prefix="jembed_scaling_"))
  try:
    single = build_rate(base, ["--config=configs/tiny.py", *data], "data", [f"--workers={args.workers}"])
    beam = build_rate(
        base,
        ["--config=configs/tiny.py", *data],
        "beam",
        [
            "--beam_runner=DirectRunner",
            f"--beam_pipeline_options=--direct_num_workers={args.workers} --direct_running_mode=multi_processing",
        ],
    )
    print(f"build: single host {single:.2f} images/s, Beam DirectRunner {beam:.2f} images/s", flush=True)
    _run(
        [
            [
                sys.executable,
                "-m",
                "launch.embed_shapes",
                "--config=configs/tiny.py",
                *data,
                f"--workdir={base / 'data'}",
            ]
        ],
        {**os.environ, "PYTHONPATH": str(REPO)},
    )
    # tiny.py's dataset, default.py's network (tiny.py shrinks it).
    flags = [
        "--config=configs/tiny.py",
        *data,
        "--config.model.widths=(32,64,96,128)",
        "--config.model.hidden=(512,)",
        "--config.model.image_size=48",
        f"--config.input.batch_size={args.batch}",
        f"--config.train.total_steps={args.steps}",
        f"--config.train.log_every={max(args.steps // 4, 1)}",
        f"--config.train.eval_every={args.steps}",
        f"--config.train.ckpt_every={args.steps}",
    ]
    one = train_rate(base, flags, 1, 2)
    two = train_rate(base, flags, 2, 1)
    print(f"training: 1 process x 2 devices {one:.1f} images/s, 2 processes x 1 device {two:.1f} images/s", flush=True)
  finally:
    shutil.rmtree(base, ignore_errors=True)
  print(
      json.dumps(
          dict(
              benchmark="scaling",
              ours=two,
              peer=one,
              unit="images/s",
              what="training, 2 processes x 1 device vs 1 process x 2 devices",
              ratio=two / one,
              beam_images_per_s=beam,
              single_host_images_per_s=single,
              beam_ratio=beam / single,
              batch=args.batch,
              steps=args.steps,
              workers=args.workers,
          )
      )
  )


if __name__ == "__main__":
  main()
