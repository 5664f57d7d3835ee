"""The whole-config check every launcher makes before any work (jembed/apps/validate.py)."""

import ml_collections
import pytest

from configs import accelerator
from configs import default
from configs import ikea
from configs import pretrained
from configs import shapenet_chairs
from configs import tiny
from jembed.apps import validate


@pytest.mark.parametrize("module", [default, tiny, ikea, shapenet_chairs, pretrained, accelerator])
def test_the_shipped_configs_are_valid(module):
  assert validate.problems(module.get_config()) == []


@pytest.mark.parametrize(
    "override, field",
    [
        ("mds.dim=0", "config.mds.dim=0"),
        ("limit=-1", "config.shapes.limit=-1"),
        ("data.images_per_shape=0", "config.data.images_per_shape=0"),
        ("train.total_steps=0", "config.train.total_steps=0"),
        ("input.batch_size=0", "config.input.batch_size=0"),
        ("render.backend=vulkan", "config.render.backend='vulkan'"),
        ("data.split_by=category", "config.data.split_by='category'"),
        ("optax.name=lamb", "config.optax.name='lamb'"),
        ("data.split_fractions=0+0.5+0.5", "config.data.split_fractions=(0.0, 0.5, 0.5)"),
        ("data.split_fractions=0.9+0.1", "config.data.split_fractions=(0.9, 0.1)"),
        ("data.clutter_ratio=1.5", "config.data.clutter_ratio=1.5"),
        ("data.albedo_range=0.8+0.3", "config.data.albedo_range=(0.8, 0.3)"),
        ("loss.embedding=-1", "config.loss.embedding=-1.0"),
        ("model.widths=8+0", "config.model.widths=(8, 0)"),
        ("eval.photo_set=imagenet", "config.eval.photo_set='imagenet'"),
        ("train.compute_dtype=float16", "config.train.compute_dtype='float16'"),
        ("data.image_format=jpeg", "config.data.image_format='jpeg'"),
        ("input.device_prefetch=-1", "config.input.device_prefetch=-1"),
        ("model.backbone=resnet18", "config.model.backbone='resnet18'"),
        ("optax.base_lr=nan", "config.optax.base_lr=nan"),
        ("optax.weight_decay=inf", "config.optax.weight_decay=inf"),
        ("data.image_size=4096", "config.data.image_size=4096"),
        ("render.size=8192", "config.render.size=8192"),
        ("render.antialias=16", "config.render.antialias=16"),
        ("data.render_size=3000", "config.data.render_size=3000"),
    ],
)
def test_a_bad_value_is_one_error_naming_the_field(override, field):
  with pytest.raises(ValueError) as error:
    validate.validate(tiny.get_config(override))
  message = str(error.value)
  assert message.startswith(field + ": ") and "must" in message and "\n" not in message


def test_every_problem_is_listed_and_missing_fields_are_not_checked():
  config = tiny.get_config("mds.dim=0,train.total_steps=0")
  assert len(validate.problems(config)) == 2
  with pytest.raises(ValueError, match=r"and 1 more: config\.train\.total_steps=0"):
    validate.validate(config)
  partial = ml_collections.ConfigDict(dict(mds=dict(dim=3)))  # a config of one stage only
  assert validate.problems(partial) == []


def test_verification_backbone_weights_are_looked_for_before_any_work(tmp_path):
  """A deep comparison whose weight file is not there, or a backbone that cannot take one, is an error of the config
  (at launch, not after training); a file that is there passes."""
  missing = str(tmp_path / "lite0.pth")
  with pytest.raises(ValueError, match=r"config\.verify\.backbone_weights=.*lite0\.pth.*no such file"):
    validate.validate(tiny.get_config(f"verify.backbone=efficientnet_lite0,verify.backbone_weights={missing}"))
  with pytest.raises(ValueError, match=r"config\.verify\.backbone='resnet50': .*give the weight file's path"):
    validate.validate(tiny.get_config("verify.backbone=resnet50"))
  with pytest.raises(ValueError, match=r"config\.verify\.backbone='vit_small_patch16_224': must be one of"):
    validate.validate(tiny.get_config("verify.backbone=vit_small_patch16_224"))
  with pytest.raises(ValueError, match=r"config\.verify\.deep_size=96: a multiple of 64"):
    validate.validate(tiny.get_config("verify.backbone=efficientnet_lite0,verify.deep_size=96"))
  (tmp_path / "lite0.pth").write_bytes(b"")
  assert (
      validate.problems(tiny.get_config(f"verify.backbone=efficientnet_lite0,verify.backbone_weights={missing}")) == []
  )
