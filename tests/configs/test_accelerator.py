"""configs/accelerator.py: its sizes, and its `tiny` variant trained end to end on CPU (bf16 ViT, raw images)."""

import jax
import numpy as np
import pytest

from configs import accelerator
import jembed
from jembed.apps import validate
from jembed.data import naming
from jembed.training import checkpoints
from jembed.training import train

from conftest import tiny_train_config
from conftest import workdir_on

# Tiny models: XLA's optimizations cost more compile time than they save (conftest.fast_compiles).
pytestmark = pytest.mark.usefixtures("fast_compiles")


def test_the_accelerator_sizes():
  config = accelerator.get_config().copy_and_resolve_references()
  assert validate.problems(config) == []
  assert config.model.backbone == "vit_small_patch16_224" and not config.model.backbone_weights
  assert config.train.compute_dtype == "bfloat16" and config.data.image_format == "raw"
  assert 128 <= config.data.image_size <= 224 and config.data.image_size % 16 == 0
  assert config.input.batch_size >= 1024 and config.input.decode_processes > 0 and config.input.device_prefetch == 2
  assert config.optax.name == "adamw" and config.schedule.type == "warmup_cosine" and config.schedule.warmup_steps > 0
  assert config.optax.lr == pytest.approx(config.optax.base_lr * config.input.batch_size / 256)
  # Overrides after `tiny`, and the aliases.
  small = accelerator.get_config("tiny,batch_size=16,model.remat=dots")
  assert (small.input.batch_size, small.model.remat, small.model.trunk_width) == (16, "dots", 64)
  assert small.optax.lr == pytest.approx(small.optax.base_lr * 16 / 256)  # the lr follows the batch
  with pytest.raises(ValueError, match="model has no field 'nope'"):
    accelerator.get_config("tiny,model.nope=1")
  assert validate.problems(accelerator.get_config("model.remat=some,model.trunk_depth=-1")) == [
      "config.model.remat='some': must be one of 'none', 'full', 'dots'",
      "config.model.trunk_depth=-1: must be an integer >= 0",
  ]


def _tiny_on_the_test_data(**train):
  """configs/accelerator.py:tiny on the shapes and data of `raw_train_dataset` (conftest)."""
  config = accelerator.get_config("tiny")
  like = tiny_train_config()
  config.shapes.update(like.shapes.to_dict())
  config.data.update(like.data.to_dict(), image_format="raw")
  config.model.update(category_head=True, remat="full")
  config.train.update(train)
  assert validate.problems(config) == []
  return config


def test_tiny_accelerator_run_trains_end_to_end_in_bf16(raw_train_dataset, tmp_path):
  """A couple of steps of the accelerator config end to end (`train_and_evaluate`: the raw dataset through grain,
  the double-buffered device prefetch, the bf16 ViT with remat, AdamW with clipping, a checkpoint, validation) on the
  4 CPU devices of conftest, then the checkpoint embedding photos through `jembed.load`."""
  workdir = workdir_on(raw_train_dataset, tmp_path, "acc")
  config = _tiny_on_the_test_data(total_steps=2, eval_every=2, ckpt_every=2, log_every=1)
  assert naming.config_name(config).endswith("-raw")
  metrics = train.train_and_evaluate(config, workdir)
  assert metrics["step"] == 2 and np.isfinite(metrics["train_loss"]) and np.isfinite(metrics["val_loss"])
  assert 0.0 <= metrics["val_top1"] <= 1.0
  ckpts = checkpoints.Checkpoints(workdir, read_only=True)
  try:
    meta = ckpts.restore_meta(2)
  finally:
    ckpts.close()
  assert meta["model"]["compute_dtype"] == "bfloat16" and meta["model"]["trunk_depth"] == 2
  assert meta["model"]["backbone"] == "vit_small_patch16_224" and jax.device_count() == 4
  # The bf16-trained checkpoint through the public API: its spec says bfloat16, the points come back float32.
  model = jembed.load(workdir)
  assert model.params.spec.compute_dtype == "bfloat16"
  images = np.random.default_rng(0).integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
  points = jax.jit(jembed.embed_images)(model.params, images)
  assert points.dtype == np.float32 and points.shape == (2, 5) and np.isfinite(points).all()
