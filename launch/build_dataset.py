r"""Renders the synthetic training images of a config into a TFDS dataset in `workdir/tfds`, and a sample sheet.

  python -m launch.build_dataset --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.build_dataset --config=configs/default.py --workdir=/tmp/jembed \
      --config.data.backgrounds=/data/SUN2012pascalformat/JPEGImages

Writes `workdir/tfds/jembed_images/<config name>/1.0.0/` (ArrayRecord), `workdir/dataset_samples.png` (random examples
with their labels) and `workdir/dataset.json`. A killed run never leaves a dataset that reads as complete; run it
again and it resumes from the shapes already rendered.

Many hosts, one dataset (the workdir on a filesystem they all mount): each host i of n renders its range of shapes,
  python -m launch.build_dataset --config=... --workdir=/nfs/run --shard=i/n
then any one host merges them and writes the dataset (rendering whatever a host did not finish):
  python -m launch.build_dataset --config=... --workdir=/nfs/run
"""

from absl import app
from absl import flags
from absl import logging

from jembed import stages
from jembed.data import build
from launch import common

_CONFIG, _WORKDIR = common.config_and_workdir("Output folder; the training stage reads from it.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Rendering processes; 0 = config.data.workers or one per CPU core.",
                                lower_bound=0)
_SHARD = flags.DEFINE_string("shard", "", "'i/n': only render shard i of n into the cache (multi-host builds).")
_KEEP_CACHE = flags.DEFINE_bool("keep_cache", False, "Keep the per-shape render cache after writing the dataset.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  with common.user_errors():
    shard = build.parse_shard(_SHARD.value)
    result = build.build_dataset(_CONFIG.value, _WORKDIR.value, workers=_WORKERS.value, shard=shard,
                                 keep_cache=_KEEP_CACHE.value)
  if shard is not None:
    print(f"shard {_SHARD.value}: {result.images_rendered} images rendered in {result.seconds:.1f} s; "
          f"run without --shard to write the dataset")
    return
  logging.info("dataset: %s", result.dataset_dir)
  made = ("already built, reused" if result.reused else
          f"{result.images_rendered} images rendered in {result.seconds:.1f} s "
          f"({result.images_per_second:.1f} images/s)")
  print(f"splits {result.num_examples}; {made}")
  common.print_outputs(stages.dataset_outputs(result))


if __name__ == "__main__":
  common.run(main)
