"""The main job, as a new user runs it, on the tiny config: every stage, then a rerun that reuses them."""

import json
import os
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _demo(workdir):
  cmd = [sys.executable, "-m", "launch.demo", "--config=configs/tiny.py", f"--workdir={workdir}"]
  result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
  assert result.returncode == 0, result.stderr[-3000:]
  # The closing table: "<what>  <path>" lines (TFDS prints its own lines before it).
  return dict(m.groups() for m in re.finditer(r"^(\S.*?)\s{2,}(/\S+)$", result.stdout, re.MULTILINE))


def test_demo_runs_every_stage_and_reuses_them(tmp_path):
  outputs = _demo(tmp_path)
  assert len(outputs) == 7, outputs
  for what in ("contact sheet", "shape embedding", "shape map", "dataset samples", "loss curve", "metrics"):
    assert os.path.getsize(outputs[what]) > 0, what
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert lines and all(json.loads(line)["step"] > 0 for line in lines)
  again = _demo(tmp_path)
  assert again == outputs
  assert (tmp_path / "metrics.jsonl").read_text().splitlines() == lines  # Training was finished: nothing re-ran.
