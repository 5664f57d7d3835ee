"""The main job: every stage of `stages.STAGES` on one config, each reusing what an earlier run of it finished.

  contact sheet -> shape embedding (LFD-HoG, distances, Sammon) -> synthetic image dataset -> CNN training
  -> evaluation (the paper's protocols, joint embedding against HoG-NN and raw pixels) -> report

Every stage writes into the workdir, so a killed or repeated demo picks up where it stopped.
"""

import json
import os
import time

from absl import logging
import ml_collections

from jembed.apps import stages
from jembed.evaluation import report
from jembed.workdir import paths


def results_table(workdir: str) -> str:
  """The results of `workdir/eval/results.json` as the Markdown tables of results.md (retrieval, then viewpoint)."""
  with open(paths.eval_dir(workdir, paths.RESULTS)) as f:
    results = json.load(f)
  return "\n\n".join(t for t in (report.results_table(results), report.viewpoint_table(results)) if t)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, str]:
  """Runs every stage on `config` into `workdir`.

  Returns:
    {what: path} of the pictures and files a user looks at first, in stage order.
  """
  os.makedirs(workdir, exist_ok=True)
  outputs, seconds = {}, {}
  for name, stage in stages.STAGES.items():
    start = time.time()
    outputs.update(stage(config, workdir))
    seconds[name] = round(time.time() - start, 1)
    logging.info("stage %s finished in %.1f s", name, seconds[name])
  logging.info("demo finished; seconds per stage %s", seconds)
  return outputs
