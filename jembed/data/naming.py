"""Where the dataset of a config lives, computed from the config alone (the builder and the readers share this).

The dataset's TFDS config name is `<shape source>-<10 hex digits of a hash of every setting that changes the images>`,
so a dataset on disk always matches the config that asks for it, and changing such a setting builds a new dataset
beside the old one instead of silently reusing it. Settings that do not change an image (`config.data.workers`,
`config.data.sample_sheet`, the whole `config.input` group) are left out of the hash; the name of the crops' resize
kernel (`jembed.utils.resample.KERNEL`) is in it.

How the images are stored is not in the hash but in the name: `config.data.image_format` 'png' (the default: the
names of datasets built before the field existed are unchanged) or 'raw' (decoded uint8 arrays, no decode on the
host), which appends `-raw`. The same images in the two formats are two datasets that never mix, and the settings
recorded in metadata.json (the hash's input) are the same for both.
"""

import os

import ml_collections

from jembed.utils import resample
from jembed.workdir import paths

NAME = "jembed_images"
DATASET_VERSION = "1.0.0"
_NOT_CONTENT = ("workers", "sample_sheet", "image_format")
IMAGE_FORMATS = ("png", "raw")


def content_settings(config: ml_collections.ConfigDict) -> dict:
  """Every config value the images depend on: the shape source, `config.data`, the seed and the renderer."""
  data = {k: v for k, v in config.data.to_dict().items() if k not in _NOT_CONTENT}
  return dict(
      shapes=config.shapes.to_dict(),
      data=data,
      seed=int(config.seed),
      renderer=config.render.backend,
      version=DATASET_VERSION,
      stretch=resample.KERNEL,  # the crops' resize kernel: datasets of Pillow's stretch are not reused
  )


def image_format(config: ml_collections.ConfigDict) -> str:
  """How the dataset stores its images: 'png' (also for configs without the field) | 'raw'.

  Raises:
    ValueError: another value.
  """
  fmt = config.data.get("image_format", "png")
  if fmt not in IMAGE_FORMATS:
    raise ValueError(f"config.data.image_format={fmt!r}: must be one of {', '.join(map(repr, IMAGE_FORMATS))}")
  return fmt


def content_name(config: ml_collections.ConfigDict) -> str:
  """`<source>-<10 hex digits>`: the images' name, whatever their storage (the png dataset's, the render cache's)."""
  return f"{config.shapes.source}-{paths.cache_key(content_settings(config), digits=10)}"


def config_name(config: ml_collections.ConfigDict) -> str:
  """`<source>-<10 hex digits>[-raw]`, the TFDS BuilderConfig name of the dataset `config` describes."""
  fmt = image_format(config)
  return content_name(config) + ("" if fmt == "png" else f"-{fmt}")


def tfds_name(config: ml_collections.ConfigDict) -> str:
  """The name `tfds.data_source` / `tfds.builder` take: `jembed_images/<config name>:<version>`."""
  return f"{NAME}/{config_name(config)}:{DATASET_VERSION}"


def data_dir(workdir: str) -> str:
  """The TFDS data dir of a run: `workdir/tfds`."""
  return paths.tfds_dir(workdir)


def dataset_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  """`workdir/tfds/jembed_images/<config name>/<version>`: the dataset's folder once built."""
  return os.path.join(data_dir(workdir), NAME, config_name(config), DATASET_VERSION)
