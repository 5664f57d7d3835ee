r"""Finds the 3D shapes nearest to your photos in a trained run's joint space.

  python -m launch.query --workdir=/tmp/jembed --image=photo.jpg
  python -m launch.query --workdir=/tmp/jembed --image=a.jpg --image=b.png --top_k=10

Prints, for each photo, the ranked shape ids with their categories and distances, and writes a gallery PNG
(default: workdir/queries/<photo name>.png). Photos should be cropped to the object, like the training images.
"""

import os

from absl import app
from absl import flags

from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run's folder (launch/demo.py or launch/train.py).",
                               required=True)
_IMAGES = flags.DEFINE_multi_string("image", None, "Photo file(s) to look up; repeat the flag for several.",
                                    required=True)
_TOP_K = flags.DEFINE_integer("top_k", 5, "Shapes to list per photo.", lower_bound=1)
_OUT_DIR = flags.DEFINE_string("out_dir", "", "Where the gallery PNGs go; empty = workdir/queries.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from jembed import query  # pylint: disable=g-import-not-at-top
  with common.user_errors():
    results, photos = query.query(_WORKDIR.value, _IMAGES.value, _TOP_K.value)
    out_dir = _OUT_DIR.value or os.path.join(_WORKDIR.value, "queries")
    for path, matches, photo, name in zip(_IMAGES.value, results, photos, query.gallery_names(_IMAGES.value)):
      print(f"{path}:")
      for m in matches:
        print(f"  {m.rank:>3}  {m.shape_id:<40} {m.category:<12} {m.distance:.4f}")
      print(f"  gallery: {query.write_gallery(_WORKDIR.value, photo, matches, os.path.join(out_dir, name))}")


if __name__ == "__main__":
  common.run(main, quiet=True)
