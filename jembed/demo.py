"""The main job: the whole chain on one config, each stage reusing what an earlier run of it finished.

  contact sheet -> shape embedding (LFD-HoG, distances, Sammon) -> synthetic image dataset -> CNN training
  -> evaluation (the paper's protocols, joint embedding against HoG-NN and raw pixels) -> report

Every stage writes into the workdir, so a killed or repeated demo picks up where it stopped.
"""

import contextlib
import os
import time

from absl import logging
import ml_collections

from jembed.data import build
from jembed.embedding import shape_embedding
from jembed.render import contact_sheet


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, str]:
  """Runs every stage that exists on `config` into `workdir`.

  Returns:
    {what: path} of the pictures and files a user looks at first, and 'table': the results as Markdown.
  """
  os.makedirs(workdir, exist_ok=True)
  outputs, seconds = {}, {}

  @contextlib.contextmanager
  def stage(name):
    t = time.time()
    yield
    seconds[name] = time.time() - t

  with stage("contact sheet"):
    sheet = os.path.join(workdir, "contact_sheet.png")
    outputs["contact sheet"] = sheet if os.path.exists(sheet) else contact_sheet.write_contact_sheet(config, workdir)
  with stage("shape embedding"):
    embedding = shape_embedding.embed_shapes(config, workdir)
    outputs["shape embedding"] = os.path.join(workdir, "shape_embedding.npz")
    outputs["shape map"] = os.path.join(workdir, "shape_embedding.png")
  with stage("dataset"):
    dataset = build.build_dataset(config, workdir)
    outputs["dataset"], outputs["dataset samples"] = dataset.dataset_dir, dataset.sample_sheet
  with stage("training"):
    from jembed.training import train  # pylint: disable=g-import-not-at-top  (flax/orbax load only for this stage)
    metrics = train.train_and_evaluate(config, workdir)
    if config.shape_encoder.enabled:
      from jembed.training import joint  # pylint: disable=g-import-not-at-top
      joint.train_joint(config, workdir)
    outputs["loss curve"] = os.path.join(workdir, "loss_curve.png")
    outputs["metrics"] = os.path.join(workdir, "metrics.jsonl")
  with stage("evaluation"):
    from jembed.evaluation import report  # pylint: disable=g-import-not-at-top
    from jembed.evaluation import evaluate  # pylint: disable=g-import-not-at-top
    results = evaluate.evaluate(config, workdir)
    outputs.update(report.write_report(config, workdir, results, evaluate.PR_AUC_DEFINITION))
    outputs["table"] = report.results_table(results)

  logging.info("demo finished: %d shapes, stress %.3g, %s images, last metrics %s; seconds %s", len(embedding.ids),
               embedding.stress, dataset.num_examples, metrics, {k: round(v, 1) for k, v in seconds.items()})
  return outputs
