r"""Renders the synthetic training images of a config into a TFDS dataset in `workdir/tfds`, and a sample sheet.

  python -m launch.build_dataset --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.build_dataset --config=configs/default.py --workdir=/tmp/jembed \
      --config.data.backgrounds=/data/SUN2012pascalformat/JPEGImages

Writes `workdir/tfds/jembed_images/<config name>/1.0.0/` (ArrayRecord), `workdir/dataset_samples.png` (random examples
with their labels) and `workdir/dataset.json`. A killed run never leaves a dataset that reads as complete; run it
again and it resumes from the shapes already rendered.

Many machines, one dataset: Apache Beam (`pip install -e ".[beam]"`) renders the shapes on its workers and TFDS's
Beam writer writes the same dataset (the workdir must be a POSIX path every worker mounts: ArrayRecord cannot write
to gs:// directly). The runner is --beam_runner, its options --beam_pipeline_options (Beam's flags, quoted):
  # this machine, 8 processes
  python -m launch.build_dataset --config=... --workdir=W --beam_runner=DirectRunner \
      --beam_pipeline_options="--direct_num_workers=8 --direct_running_mode=multi_processing"
  # Google Cloud Dataflow (workers need jembed: --setup_file or a custom container with the same version)
  python -m launch.build_dataset --config=... --workdir=/mnt/filestore/run --beam_runner=DataflowRunner \
      --beam_pipeline_options="--project=P --region=us-central1 --temp_location=gs://B/tmp \
      --setup_file=./setup.py --num_workers=64 --experiments=use_runner_v2"
  # Apache Flink (a running cluster; the job server is started by Beam)
  python -m launch.build_dataset --config=... --workdir=/nfs/run --beam_runner=FlinkRunner \
      --beam_pipeline_options="--flink_master=flink-jobmanager:8081 --environment_type=PROCESS \
      --environment_config={\"command\":\"/opt/jembed/boot\"} --parallelism=64"
  # Apache Spark
  python -m launch.build_dataset --config=... --workdir=/nfs/run --beam_runner=SparkRunner \
      --beam_pipeline_options="--spark_master_url=spark://spark-master:7077 --environment_type=LOOPBACK"
"""

from absl import app
from absl import flags
from absl import logging

from jembed.apps import stages
from jembed.data import build
from launch import common

_CONFIG, _WORKDIR = common.config_and_workdir("Output folder; the training stage reads from it.")
_WORKERS = flags.DEFINE_integer(
    "workers", 0, "Rendering processes; 0 = config.data.workers or one per CPU core.", lower_bound=0
)
_BEAM_RUNNER = flags.DEFINE_string(
    "beam_runner",
    "",
    "Build with Apache Beam on this runner (DirectRunner, "
    "DataflowRunner, FlinkRunner, SparkRunner); '' = this machine's processes.",
)
_BEAM_OPTIONS = flags.DEFINE_string("beam_pipeline_options", "", "The Beam runner's options, in Beam's flag syntax.")
_LOCK = common.define_workdir_lock(writes=("dataset",))
_KEEP_CACHE = flags.DEFINE_bool("keep_cache", False, "Keep the per-shape render cache after writing the dataset.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  with common.user_errors():
    _LOCK(_WORKDIR.value)
    result = build.build_dataset(
        _CONFIG.value,
        _WORKDIR.value,
        workers=_WORKERS.value,
        keep_cache=_KEEP_CACHE.value,
        beam_runner=_BEAM_RUNNER.value,
        beam_pipeline_options=_BEAM_OPTIONS.value,
    )
  logging.info("dataset: %s", result.dataset_dir)
  made = (
      "already built, reused"
      if result.reused
      else f"{result.images_rendered} images rendered in {result.seconds:.1f} s "
      f"({result.images_per_second:.1f} images/s)"
  )
  print(f"splits {result.num_examples}; {made}")
  common.print_outputs(stages.dataset_outputs(result))


if __name__ == "__main__":
  common.run(main)
