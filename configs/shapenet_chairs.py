r"""The paper's setting: ShapeNetCore chairs (synset 03001627), 20 LFD views at elevation 20 deg, 128-D Sammon space.

  python -m launch.render_views --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs
  python -m launch.embed_shapes --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs
  python -m launch.build_dataset --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs \
      --config.data.backgrounds=/data/SUN2012pascalformat/JPEGImages

The paper embedded the 6,777 chairs of ShapeNetCore.v1 (sorted by model id) and rendered 125 training images per chair.
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.shapes.source = "shapenet"
  config.shapes.root = "~/data/ShapeNetCore.v1"
  config.shapes.categories = ("03001627",)
  config.render.size = 224       # Enough pixels for the 120 x 120 tight crop of a chair.
  config.render.antialias = 2
  config.lfd.batch_shapes = 32
  config.mds.dim = 128
  config.mds.max_iter = 128      # MATLAB mdscale's MaxIter in the paper.
  # The synthetic image side (paper section 2): 125 renders per chair, stretched to 227 x 227 for CaffeNet.
  config.data.images_per_shape = 125
  config.data.image_size = 227
  config.data.backgrounds = "~/data/SUN2012pascalformat/JPEGImages"  # the paper's background photos
  config.data.split_fractions = (0.9, 0.1, 0.0)  # the paper's 90/10 image split; its test photos are real ones
  config.input.batch_size = 1024                 # the paper's batch
  default._apply_overrides(config, arg)  # pylint: disable=protected-access
  return config
