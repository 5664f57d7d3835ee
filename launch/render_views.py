r"""Renders the paper's 20 LFD views of a few shapes per category into `workdir/contact_sheet.png`.

  python -m launch.render_views --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.render_views --config=configs/default.py --workdir=/tmp/o3d \
      --config.shapes.source=folder --config.shapes.root=/data/objectnet3d_cad \
      --config.shapes.up_axis=z --config.shapes.front=-y
"""

from absl import app
from absl import flags

from jembed.apps import stages
from launch import common

_CONFIG, _WORKDIR = common.config_and_workdir("Output folder.")
_PER_CATEGORY = flags.DEFINE_integer("per_category", 4, "Rows (shapes) per category; 0 = every shape.", lower_bound=0)
_LOCK = common.define_workdir_lock(writes=("contact_sheet",))
_THUMB = flags.DEFINE_integer("thumb", 64, "Pixels per view in the sheet.", lower_bound=8)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  with common.user_errors():
    _LOCK(_WORKDIR.value)
    outputs = stages.contact_sheet(
        _CONFIG.value, _WORKDIR.value, per_category=_PER_CATEGORY.value, thumb=_THUMB.value, reuse=False
    )
  common.print_outputs(outputs)


if __name__ == "__main__":
  common.run(main)
