"""The main job, as a new user runs it, on the tiny config: every stage, then a rerun that reuses them."""

import json
import os

from conftest import run_demo

WHAT = (
    "contact sheet",
    "shape embedding",
    "shape map",
    "dataset samples",
    "loss curve",
    "metrics",
    "results",
    "results table",
    "precision-recall curves",
    "top-K curves",
    "retrievals",
)


def test_demo_runs_every_stage_and_reuses_them(tiny_run):
  workdir, outputs, stdout = tiny_run
  assert set(WHAT) <= set(outputs), outputs
  for what in WHAT:
    assert os.path.getsize(outputs[what]) > 0, what
  assert "| synthetic_clutter | joint embedding |" in stdout  # the results table closes the run
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  assert lines and all(json.loads(line)["step"] > 0 for line in lines)
  results = json.loads((workdir / "eval" / "results.json").read_text())
  again, _ = run_demo(workdir)
  assert again == outputs
  assert (workdir / "metrics.jsonl").read_text().splitlines() == lines  # Training was finished: nothing re-ran.
  rerun = json.loads((workdir / "eval" / "results.json").read_text())
  assert {k: v for k, v in rerun.items() if k != "_meta"} == {k: v for k, v in results.items() if k != "_meta"}
