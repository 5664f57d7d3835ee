"""The stages of the data path, each `stage(config, workdir) -> {what: path}`: what the demo loops over.

  contact sheet -> shape embedding (LFD-HoG, distances, Sammon) -> dataset (synthetic images) -> training (the CNN)
  -> evaluation (the paper's protocols and the report)

Every stage reads what the earlier ones wrote into the workdir and reuses its own finished work, so running a stage
again costs little and a killed one resumes. The `*_outputs` functions name what each stage leaves for a person to
look at (the launchers print the same list).
"""

import os
from typing import Callable

import ml_collections

from jembed.api import encoder_placement
from jembed.data import build
from jembed.embedding import shape_embedding as lib
from jembed.evaluation import evaluate
from jembed.evaluation import report
from jembed.render import contact_sheet as sheet
from jembed.training import joint
from jembed.training import train
from jembed.workdir import paths

Stage = Callable[[ml_collections.ConfigDict, str], dict[str, str]]


def contact_sheet(
    config: ml_collections.ConfigDict, workdir: str, *, per_category: int = 4, thumb: int = 64, reuse: bool = True
) -> dict[str, str]:
  """`contact_sheet.png`: a few shapes per category x their 20 LFD views (kept when it exists and `reuse`)."""
  path = paths.contact_sheet(workdir)
  if not (reuse and os.path.exists(path)):
    path = sheet.write_contact_sheet(config, workdir, per_category, thumb)
  return {"contact sheet": path}


def shape_embedding_outputs(workdir: str) -> dict[str, str]:
  return {"shape embedding": paths.shape_embedding(workdir), "shape map": paths.shape_map(workdir)}


def shape_embedding(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    into: str = "",
    force: bool = False,
    beam_runner: str = "",
    beam_pipeline_options: str = "",
    encoder: bool = False,
) -> dict[str, str]:
  """The shapes' Sammon points (or, with `into`, their out-of-sample places in that workdir's embedding: by its
  shape encoder's forward pass with `encoder`, else by LFD-HoG distances and an out-of-sample Sammon fit); `force`
  replaces an embedding made with other settings although a network was trained on it; with `beam_runner` the
  per-shape work runs on Apache Beam."""
  if into and encoder:
    encoder_placement.add_shapes(config, workdir, into)
    return {"shape embedding": paths.shape_embedding(workdir)}
  if into:
    lib.add_shapes(config, workdir, into)
    return {"shape embedding": paths.shape_embedding(workdir)}
  lib.embed_shapes(config, workdir, force=force, beam_runner=beam_runner, beam_pipeline_options=beam_pipeline_options)
  return shape_embedding_outputs(workdir)


def dataset_outputs(result) -> dict[str, str]:
  """From a `data.build.BuildResult`."""
  return {"dataset": result.dataset_dir, "dataset samples": result.sample_sheet}


def dataset(config: ml_collections.ConfigDict, workdir: str) -> dict[str, str]:
  """The synthetic training images as a TFDS dataset."""
  return dataset_outputs(build.build_dataset(config, workdir))


def training_outputs(workdir: str) -> dict[str, str]:
  return {
      "loss curve": paths.loss_curve(workdir),
      "metrics": paths.metrics(workdir),
      "checkpoints": paths.checkpoints(workdir),
  }


def training(config: ml_collections.ConfigDict, workdir: str, *, force: bool = False) -> dict[str, str]:
  """The CNN, trained (or resumed) data-parallel over all devices; `force` sets aside checkpoints of other inputs."""
  train.train_and_evaluate(config, workdir, force=force)
  outputs = training_outputs(workdir)
  if config.shape_encoder.enabled:  # then the shape encoder, jointly with a copy of the image network
    joint.train_joint(config, workdir)
    outputs["shape encoder"] = joint.run_dir(workdir)
  return outputs


def evaluation(config: ml_collections.ConfigDict, workdir: str) -> dict[str, str]:
  """The paper's protocols for every method on the same test images, and the report."""
  return report.write_report(config, workdir, evaluate.evaluate(config, workdir))


STAGES: dict[str, Stage] = {
    "contact sheet": contact_sheet,
    "shape embedding": shape_embedding,
    "dataset": dataset,
    "training": training,
    "evaluation": evaluation,
}
