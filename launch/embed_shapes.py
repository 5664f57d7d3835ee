r"""The shape side: LFD views -> HoG pyramid -> distances -> Sammon MDS -> `workdir/shape_embedding.npz` and a map.

  python -m launch.embed_shapes --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.embed_shapes --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs

A killed run resumes where it stopped (the descriptors are cached per batch in `workdir/lfd/`); a finished one made
with the same settings and shapes is reused. One made with other settings is replaced, except when a network in the
workdir was trained on it: that is an error naming the differences, unless `--force`.

New shapes into a finished embedding (out of sample; the base run is not changed):
  python -m launch.embed_shapes --config=configs/default.py --workdir=/tmp/new --into=/tmp/jembed \
      --config.shapes.source=folder --config.shapes.root=/data/my_new_meshes
"""

from absl import app
from absl import flags

from jembed import stages
from jembed.embedding import shape_embedding
from launch import common

_CONFIG, _WORKDIR = common.config_and_workdir("Output folder; the next stages read from it.")
_INTO = flags.DEFINE_string("into", "", "Workdir of a finished embedding to place these shapes into (out of sample).")
_FORCE = common.force_flag("the shape embedding (made with other settings)")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  common.log_devices()
  with common.user_errors():
    outputs = stages.shape_embedding(_CONFIG.value, _WORKDIR.value, into=_INTO.value,
                                     force=_FORCE.value)
  embedding = shape_embedding.ShapeEmbedding.load(outputs["shape embedding"])
  print(f"{len(embedding.ids)} shapes -> {embedding.points.shape[1]}-D, Sammon stress {embedding.stress:.3g}")
  common.print_outputs(outputs)


if __name__ == "__main__":
  common.run(main)
