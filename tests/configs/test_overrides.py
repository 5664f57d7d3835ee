"""The one `config.py:arg` parser: typed values, dotted fields, aliases, and a clear error for every mistake."""

import pytest

from configs import default
from configs import ikea
from configs import overrides
from configs import shapenet_chairs
from configs import tiny


def test_bare_keys_set_shapes_fields_with_their_types():
  config = default.get_config("root=/data/x,limit=8,categories=chair+table")
  assert config.shapes.root == "/data/x" and config.shapes.limit == 8
  assert config.shapes.categories == ("chair", "table")


def test_dotted_keys_reach_any_field_and_parse_its_type():
  config = default.get_config("train.total_steps=17,data.truncation=0.1,model.widths=4+8,train.augment_flip=false")
  assert config.train.total_steps == 17 and isinstance(config.train.total_steps, int)
  assert config.data.truncation == pytest.approx(0.1)
  assert config.model.widths == (4, 8)
  assert config.train.augment_flip is False


def test_every_config_applies_the_arg_last():
  assert tiny.get_config().shapes.limit == 3
  assert tiny.get_config("limit=1").shapes.limit == 1  # the arg wins over the config's own value
  assert shapenet_chairs.get_config("root=/d").shapes.root == "/d"
  config = ikea.get_config("root=/r,backgrounds=/b,limit=2")
  assert (config.shapes.root, config.eval.photo_root, config.data.backgrounds, config.shapes.limit) == (
      "/r",
      "/r",
      "/b",
      2,
  )


@pytest.mark.parametrize(
    "arg,message",
    [
        ("limt=3", "shapes has no field 'limt'"),
        ("limit=three", "expected int"),
        ("data.nope=1", "data has no field 'nope'"),
        ("nosuch.section=1", "no section 'nosuch'"),
        ("root", "expected key=value"),
        ("train.augment_flip=maybe", "expected bool"),
    ],
)
def test_mistakes_are_one_clear_error(arg, message):
  with pytest.raises(ValueError, match=message):
    default.get_config(arg)


def test_empty_arg_changes_nothing():
  assert overrides.apply(default.get_config(), "").to_dict() == default.get_config().to_dict()
