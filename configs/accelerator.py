r"""Accelerator-sized training: ViT-S/16 from scratch in bfloat16, 160 px, global batch 2048, AdamW, warmup + cosine.

Every ShapeNetCore.v2 category (55 synsets, ~51,000 shapes) x 40 images, stored decoded ('raw') so the hosts only copy
them. On one host (every GPU of it), stage by stage:
  C=--config=configs/accelerator.py:root=/data/ShapeNetCore.v2
  python -m launch.embed_shapes $C --workdir=/runs/acc
  python -m launch.build_dataset $C --workdir=/runs/acc \
      --config.data.backgrounds=/data/SUN2012pascalformat/JPEGImages
  python -m launch.train $C --workdir=/runs/acc
On a pod (TPU slice, or GPU hosts under Slurm): the same `launch.train` line in every process, with `--multihost`
(docs/accelerators.md; docs/scale.md for the dataset build with Apache Beam). A CPU smoke run of the same network,
2 blocks of width 64 at 32 px:
  python -m launch.demo --config=configs/accelerator.py:tiny --workdir=/tmp/jembed_acc_tiny

Why ViT-S/16 and not ResNet-50: jembed's ResNet keeps BatchNorm frozen (running statistics as parameters, for the
pretrained weights), so from scratch it would train un-normalized; the ViT normalizes with LayerNorm (no batch
statistics to synchronize) and is matmul-bound, the shape tensor cores and TPUs run fastest. `backbone=resnet50` still
works (tests/benchmarks/train.py measures either).
"""

import ml_collections

from configs import default
from configs import overrides
from configs import tiny


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The accelerator config; `arg`: `tiny` (the CPU smoke size) and/or overrides as in configs/overrides.py
  (`root=/data/ShapeNetCore.v2`, `backbone=resnet50`, `batch_size=4096`, `train.compute_dtype=float32`)."""
  items = [item.strip() for item in (arg or "").split(",") if item.strip()]
  small = "tiny" in items
  config = tiny.get_config() if small else _data(default.get_config())
  config.model.update(
      backbone="vit_small_patch16_224",  # ViT-S/16: 12 blocks of width 384, 6 heads, ~21.7 M parameters
      backbone_weights="",  # from scratch
      frozen_backbone=False,
      image_size=0,  # the data's (a multiple of the 16-px patch)
      hidden=(1024,),
      dropout=0.1,
      head_norm=True,
  )
  config.model.remat = "none"  # 'full' | 'dots': recompute each block's activations in the backward pass (memory)
  config.model.trunk_width = 0  # >0: another ViT width (heads = width / 64); the tiny run's is 64
  config.model.trunk_depth = 0  # >0: another number of blocks
  config.train.compute_dtype = "bfloat16"  # float32 parameters, optimizer state and losses (jembed.backbones.compute)
  config.train.augment_shift = 0.08
  config.input.update(
      batch_size=2048,  # global, over every device of every host
      read_threads=8,
      prefetch=4096,  # examples per process
      decode_processes=8,  # grain worker processes per host (PNG decode, or the raw copy, and the point join)
      device_prefetch=2,  # double-buffered on the devices
  )
  # AdamW as DeiT trains ViT-S from scratch: lr 5e-4 per 512 images, weight decay 0.05 (on kernels), clipping.
  config.optax.update(name="adamw", base_lr=2.5e-4, b1=0.9, b2=0.999, weight_decay=0.05, grad_clip_norm=1.0)
  config.optax.lr = config.optax.get_ref("base_lr") * config.input.get_ref("batch_size") / 256
  config.schedule.update(type="warmup_cosine", end_factor=0.01)
  config.schedule.warmup_steps = config.train.get_ref("total_steps") // 20
  # ~30 epochs of 51,000 shapes x 40 images (90 % train) at batch 2048.
  config.train.update(total_steps=27_000, log_every=100, eval_every=2000, ckpt_every=2000, max_to_keep=3)
  config.train.eval_batch_size = 2048
  if small:
    _tiny(config)
  return overrides.apply(
      config,
      ",".join(item for item in items if item != "tiny"),
      aliases={"backbone": "model.backbone", "batch_size": "input.batch_size", "image_size": "data.image_size"},
  )


def _data(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """All of ShapeNetCore.v2, 40 images a shape at 160 px, stored raw."""
  config.shapes.update(source="shapenet", root="~/data/ShapeNetCore.v2", categories=())
  config.render.size = 224  # enough pixels for the 120 x 120 LFD crops of ShapeNet meshes (configs/shapenet_chairs.py)
  config.lfd.batch_shapes = 32
  # 160 px = 10 x 10 patches of 16: half the FLOPs of 224 px a step; the renders carry little finer detail.
  config.data.update(images_per_shape=40, image_size=160, image_format="raw")
  return config


def _tiny(config: ml_collections.ConfigDict) -> None:
  """The CPU smoke size: configs/tiny.py's shapes and data, the same network shrunk, a few steps."""
  config.data.image_format = "raw"
  config.model.update(image_size=32, hidden=(32,), trunk_width=64, trunk_depth=2)  # 2 x 2 patches + [CLS]
  config.input.update(batch_size=8, read_threads=2, prefetch=16, decode_processes=0)
  config.optax.grad_clip_norm = 1.0
  config.train.update(total_steps=6, log_every=2, eval_every=3, ckpt_every=3, max_to_keep=2, eval_batch_size=0)
