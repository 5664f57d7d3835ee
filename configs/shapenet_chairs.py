r"""The paper's setting: ShapeNetCore chairs (synset 03001627), 20 LFD views at elevation 20 deg, 128-D Sammon space.

  python -m launch.render_views --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs
  python -m launch.embed_shapes --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs
  python -m launch.build_dataset --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs \
      --config.data.backgrounds=/data/SUN2012pascalformat/JPEGImages
  python -m launch.train --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs

The paper embedded the 6,777 chairs of ShapeNetCore.v1 (sorted by model id) and rendered 125 training images per chair.
"""

import ml_collections

from configs import default
from configs import overrides


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.shapes.source = "shapenet"
  config.shapes.root = "~/data/ShapeNetCore.v1"
  config.shapes.categories = ("03001627",)
  config.render.size = 224  # Enough pixels for the 120 x 120 tight crop of a chair.
  config.render.antialias = 2
  config.lfd.batch_shapes = 32
  config.mds.dim = 128
  config.mds.max_iter = 128  # MATLAB mdscale's MaxIter in the paper.
  # The synthetic image side (paper section 2): 125 renders per chair, stretched to 227 x 227 for CaffeNet.
  config.data.images_per_shape = 125
  config.data.image_size = 227
  config.data.backgrounds = "~/data/SUN2012pascalformat/JPEGImages"  # the paper's background photos
  config.data.split_fractions = (0.9, 0.1, 0.0)  # the paper's 90/10 image split; its test photos are real ones
  config.input.batch_size = 1024  # the paper's batch
  # The paper's network and solver (paper-pipeline section 3). It froze R-CNN's conv1-pool5 and trained fc6-fc7-fc128;
  # with converted R-CNN weights: --config.model.backbone_weights=/data/rcnn.npz --config.model.frozen_backbone=True
  config.model.update(
      backbone="caffenet",
      image_size=0,
      hidden=(4096, 4096),
      dropout=0.5,
      normalization="caffe",
      head_norm=False,
      scale_output=False,
  )
  config.loss.update(category=1.0, viewpoint=1.0)  # Render for CNN's weights, should the heads be switched on
  config.train.loss = "regression"  # the paper's objective: L2 to the shape's Sammon point (default.py's is rank-aware)
  config.optax.update(name="sgd", momentum=0.9, weight_decay=5e-4, bias_lr_mult=2.0)
  config.optax.lr_mults = ml_collections.ConfigDict({"image_embedding": 10.0})  # the new layer: lr_mult 10 / 20
  config.optax.base_lr = 2e-4 * 256 / 1024  # so that lr = the paper's 2e-4 at its batch of 1024
  config.schedule.update(type="step", decay_every=10_000, decay_factor=0.1)
  # 40k iterations (~48 epochs); the paper tested 20 batches of 512 every 1000 and used the 20k snapshot.
  config.train.update(total_steps=40_000, log_every=100, eval_every=1000, ckpt_every=2000, max_to_keep=25)
  config.train.update(eval_batch_size=512, augment_flip=False, augment_shift=0.0)  # the paper: no mirroring
  return overrides.apply(config, arg)
