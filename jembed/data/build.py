"""Building the dataset of a config (`build_dataset`, what launch/build_dataset.py calls): safe to kill and rerun.

Writes into the workdir:
  tfds/jembed_images/<config name>/<version>/   the dataset (ArrayRecord shards, dataset_info.json, metadata.json)
  dataset_cache/<content name>/shape_*.pkl       rendered shapes, until the dataset is written (resume; shared by
                                                 the png and raw datasets of the same images)
  dataset_samples.png                            random examples with their labels
  dataset.json                                   where the dataset is, split sizes, build speed, skipped inputs

**Sealed.** A finished dataset gets `digests.json` (the SHA-256 of every shard and JSON file); a rerun checks it,
and training checks it before the first step, so a flipped bit in a shard is found and named (a rerun builds the
dataset again from its seeds) instead of failing inside the reader at some step.

**Atomic.** TFDS writes the dataset into `incomplete.XXXXXX_<version>/` and renames it to `<version>/` only when
every split and `dataset_info.json` are written, so a killed build never leaves a folder that reads as complete.
A rerun deletes such leftovers (under a lock file, so two builds of one config on one host never race), reuses every
shape already in the render cache and writes the dataset again from it.

**Many hosts.** `beam_runner=...` builds the same dataset with Apache Beam instead (`beam_build.py`: Dataflow, Flink,
Spark or the local DirectRunner); the images are the same as a single-host build's (seeds are per image). A Beam
build keeps no render cache: the runner retries failed work items itself.
"""

import contextlib
import dataclasses
import fcntl
import glob
import json
import os
import shutil
import time

from absl import logging
import ml_collections

from jembed.data import beam_build
from jembed.data import naming
from jembed.data import pipeline
from jembed.data import sample_sheet
from jembed.data import splits
from jembed.data import synthesis
from jembed.data import tfds_builder
from jembed.render import backend
from jembed.utils import beam as beam_lib
from jembed.utils import config_checks as checks
from jembed.workdir import checksums
from jembed.workdir import files
from jembed.workdir import paths


@dataclasses.dataclass
class BuildResult:
  """What a build did.

  Attributes:
    dataset_dir: the dataset folder.
    num_examples: examples per split.
    images_rendered: images rendered by this run (0 when everything was cached or already built).
    seconds: wall time of this run.
    sample_sheet: path of dataset_samples.png.
    reused: the dataset was already built; nothing was rendered or written.
  """

  dataset_dir: str
  num_examples: dict[str, int]
  images_rendered: int
  seconds: float
  sample_sheet: str = ""
  reused: bool = False

  @property
  def images_per_second(self) -> float:
    return self.images_rendered / max(self.seconds, 1e-9)


def default_workers() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def _lock(path: str):
  """An exclusive lock file: a second build of the same config waits for the first."""
  with open(path, "a") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      logging.warning("another build of this dataset holds %s; waiting for it", path)
      fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def remove_incomplete(config_dir: str) -> list[str]:
  """Deletes TFDS's `incomplete.*` folders left in `config_dir` by killed builds; returns what it deleted."""
  removed = sorted(glob.glob(os.path.join(config_dir, "incomplete.*")))
  for path in removed:
    logging.warning("removing %s, left by an interrupted build", path)
    shutil.rmtree(path, ignore_errors=True)
  return removed


def build_dataset(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    workers: int = 0,
    keep_cache: bool = False,
    beam_runner: str = "",
    beam_pipeline_options: str = "",
) -> BuildResult:
  """Renders and writes the dataset of `config` into `workdir` (see the module docstring), or reuses it if built.

  Args:
    config: a jembed config (`shapes`, `data`, `render.backend`, `seed`).
    workdir: the run's folder.
    workers: rendering processes; 0 = `config.data.workers`, or one per CPU core when that is 0 too.
    keep_cache: keep the per-shape render cache after the dataset is written (it is as large as the dataset).
    beam_runner: '' renders here with `workers` processes; a Beam runner name ('DirectRunner', 'DataflowRunner',
      'FlinkRunner', 'SparkRunner', ...) builds with Apache Beam (`beam_build`; needs the `beam` extra).
    beam_pipeline_options: the runner's options in Beam's command-line syntax.

  Returns:
    A `BuildResult`.
  """
  start = time.time()
  data_dir = paths.tfds_dir(workdir)
  os.makedirs(data_dir, exist_ok=True)
  workers = workers or int(config.data.workers) or default_workers()
  if beam_runner:
    beam_lib.require_beam()
    builder = beam_build.JembedImagesBeam(config=config, data_dir=data_dir)
  else:
    builder = tfds_builder.JembedImages(config=config, data_dir=data_dir, workers=workers)
  with _lock(os.path.join(data_dir, f".{builder.builder_config.name}.lock")):
    images, reused = 0, builder.is_prepared()
    if reused:
      problem = pipeline.damaged_shard(os.fspath(builder.data_path))
      if problem:  # the images are reproducible (seeded per image): build it again rather than fail on it later
        logging.warning("%s: building the dataset again", problem)
        shutil.rmtree(os.fspath(builder.data_path))
        builder = tfds_builder.JembedImages(config=config, data_dir=data_dir, workers=workers)
        reused = False
    if reused:
      logging.info("dataset already built: %s", builder.data_path)
    elif beam_runner:
      remove_incomplete(os.fspath(builder.data_path.parent))
      beam_build.prepare(builder, beam_runner, beam_pipeline_options)
      images = sum(int(info.num_examples) for info in builder.info.splits.values())
    else:
      remove_incomplete(os.fspath(builder.data_path.parent))
      stats = builder.render()  # the progress bar; _split_generators then finds every shape cached
      images = stats["images"]
      builder.download_and_prepare()
    if not (reused and os.path.exists(os.path.join(os.fspath(builder.data_path), checksums.DIGESTS))):
      pipeline.seal(os.fspath(builder.data_path))  # a dataset from before the digests: sealed once its footers pass
  dataset_dir = os.fspath(builder.data_path)
  splits = {name: int(info.num_examples) for name, info in builder.info.splits.items()}
  result = BuildResult(dataset_dir, splits, images, time.time() - start, reused=reused)
  for line in builder.background_report.lines() if builder.background_report.n_found else []:
    logging.info("%s", line)
  result.sample_sheet = sample_sheet.write_sample_sheet(
      dataset_dir, paths.dataset_samples(workdir), int(config.data.sample_sheet), int(config.seed)
  )
  if not (reused and _summary_dataset(workdir) == dataset_dir):  # a reuse keeps the build's own record
    _write_summary(workdir, builder, result)
  if not keep_cache and os.path.isdir(builder.cache_dir):
    shutil.rmtree(builder.cache_dir, ignore_errors=True)
  logging.info(
      "dataset %s: %s; %d images rendered in %.1f s (%.1f images/s)",
      dataset_dir,
      splits,
      result.images_rendered,
      result.seconds,
      result.images_per_second,
  )
  return result


def _summary_dataset(workdir: str) -> str | None:
  """The dataset `workdir/dataset.json` describes, if any."""
  try:
    with open(paths.dataset_summary(workdir)) as f:
      return json.load(f).get("dataset_dir")
  except (OSError, ValueError):
    return None


def _write_summary(workdir: str, builder: tfds_builder.JembedImages, result: BuildResult) -> None:
  metadata = dict(builder.info.metadata or {})
  if not metadata:  # reused dataset: the builder did not generate, read what the build wrote
    path = os.path.join(result.dataset_dir, paths.DATASET_METADATA)
    if os.path.exists(path):
      with open(path) as f:
        metadata = json.load(f)
  summary = dict(
      dataset_dir=result.dataset_dir,
      data_dir=paths.tfds_dir(workdir),
      name=f"{tfds_builder.NAME}/{builder.builder_config.name}:{tfds_builder.DATASET_VERSION}",
      splits=result.num_examples,
      images_rendered=result.images_rendered,
      seconds=round(result.seconds, 2),
      images_per_second=round(result.images_per_second, 2),
      renderers=metadata.get("renderers"),
      skipped_shapes=metadata.get("skipped_shapes", []),
      skipped_backgrounds=metadata.get("skipped_backgrounds", []),
  )
  files.write_json(paths.dataset_summary(workdir), summary, indent=1)


# The checks `launch` runs on this stage's config fields before any work (`jembed.utils.config_checks`).
CONFIG_RULES = {
    "data.images_per_shape": checks.integer(1),
    "data.image_size": checks.integer(8, 1024),  # a network input: the paper's is 227
    "data.render_size": checks.integer(0, backend.MAX_SIZE),
    "data.antialias": checks.integer(1, backend.MAX_ANTIALIAS),
    "data.distance": checks.number(0.0, lo_open=True),
    "data.max_lamps": checks.integer(0),
    "data.ambient": checks.low_high(0.0),
    "data.albedo": checks.choice(synthesis.ALBEDO_MODES),
    "data.albedo_range": checks.low_high(0.0, 1.0),
    "data.tint": checks.number(0.0),
    "data.truncation": checks.number(0.0, 1.0, hi_open=True),
    "data.clutter_ratio": checks.number(0.0, 1.0),
    "data.background_scale": checks.number(0.0),
    "data.procedural_share": checks.number(0.0, 1.0),
    "data.context": checks.number(0.0),
    "data.occluders": checks.number(0.0, 1.0),
    "data.appearance": checks.choice(synthesis.APPEARANCES),
    "data.share": checks.number(0.0, 1.0),
    "data.distractors": checks.number(0.0, 1.0),
    "data.distractor_shapes": checks.integer(1, 64),
    "data.background_jitter": checks.number(0.0, 1.0),
    "data.jpeg": checks.number(0.0, 1.0),
    "data.jpeg_quality": checks.low_high(1, 100),
    "data.split_by": checks.choice(splits.BY),
    "data.split_fractions": checks.fractions,
    "data.workers": checks.integer(0),
    "data.sample_sheet": checks.integer(0),
    "data.image_format": checks.choice(naming.IMAGE_FORMATS),
}
