r"""Tests and smoke runs: a few catalog shapes per category, small renders, a small embedding.

python -m launch.render_views --config=configs/tiny.py --workdir=/tmp/jembed_tiny
"""

import ml_collections

from configs import default
from configs import overrides


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The tiny config; `arg` overrides fields as in configs/overrides.py (`limit=2`, `train.total_steps=3`)."""
  config = default.get_config()
  config.shapes.limit = 3
  config.render.size = 64
  config.render.antialias = 1
  config.lfd.batch_shapes = 4
  config.mds.dim = 8
  config.mds.max_iter = 100
  config.data.images_per_shape = 2
  config.data.image_size = 48
  config.data.antialias = 1
  config.data.sample_sheet = 8
  config.input.batch_size = 8
  config.input.read_threads = 2
  config.input.prefetch = 16
  # A network and a run small enough for tests (seconds on a CPU).
  config.model.image_size = 0  # the data's 48 px
  config.model.widths = (8, 16)
  config.model.hidden = (32,)
  config.train.update(total_steps=6, log_every=2, eval_every=3, ckpt_every=2, max_to_keep=2)
  config.shape_encoder.update(
      points=128,
      dim=32,
      depth=1,
      heads=1,
      mlp=64,
      sa_widths=(16,),
      sa_dim=32,
      patches=16,
      radius=0.4,
      nsample=8,
      total_steps=4,
  )
  config.eval.images_per_shape = 2
  config.eval.gallery_queries = 4
  return overrides.apply(config, arg)
