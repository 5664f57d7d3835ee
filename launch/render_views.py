r"""Renders the paper's 20 LFD views of a few shapes per category into `workdir/contact_sheet.png`.

  python -m launch.render_views --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.render_views --config=configs/default.py --workdir=/tmp/o3d \
      --config.shapes.source=folder --config.shapes.root=/data/objectnet3d_cad \
      --config.shapes.up_axis=z --config.shapes.front=-y
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from jembed.render import contact_sheet
from launch import common

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)
_PER_CATEGORY = flags.DEFINE_integer("per_category", 4, "Rows (shapes) per category; 0 = every shape.")
_THUMB = flags.DEFINE_integer("thumb", 64, "Pixels per view in the sheet.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  with common.user_errors():
    path = contact_sheet.write_contact_sheet(_CONFIG.value, _WORKDIR.value, _PER_CATEGORY.value,
                                              _THUMB.value)
  logging.info("contact sheet: %s", path)
  print(path)


if __name__ == "__main__":
  app.run(main)
