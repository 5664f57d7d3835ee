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

from jembed import paths
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
    sheet = paths.contact_sheet(workdir)
    outputs["contact sheet"] = sheet if os.path.exists(sheet) else contact_sheet.write_contact_sheet(config, workdir)
  with stage("shape embedding"):
    embedding = shape_embedding.embed_shapes(config, workdir)
    outputs["shape embedding"] = paths.shape_embedding(workdir)
    outputs["shape map"] = paths.shape_map(workdir)
  with stage("dataset"):
    dataset = build.build_dataset(config, workdir)
    outputs["dataset"], outputs["dataset samples"] = dataset.dataset_dir, dataset.sample_sheet
  with stage("training"):
    from jembed.training import train  # pylint: disable=g-import-not-at-top  (flax/orbax load only for this stage)
    metrics = train.train_and_evaluate(config, workdir)
    outputs["loss curve"] = paths.loss_curve(workdir)
    outputs["metrics"] = paths.metrics(workdir)
  with stage("evaluation"):
    from jembed.evaluation import report  # pylint: disable=g-import-not-at-top
    from jembed.evaluation import evaluate  # pylint: disable=g-import-not-at-top
    result = evaluate.evaluate(config, workdir)
    outputs.update(report.write_report(config, workdir, result))
    outputs["table"] = report.results_table(result.scores())

  logging.info("demo finished: %d shapes, stress %.3g, %s images, last metrics %s; seconds %s", len(embedding.ids),
               embedding.stress, dataset.num_examples, metrics, {k: round(v, 1) for k, v in seconds.items()})
  return outputs
