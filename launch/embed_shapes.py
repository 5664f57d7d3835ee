r"""The shape side: LFD views -> HoG pyramid -> distances -> Sammon MDS -> `workdir/shape_embedding.npz` and a map.

  python -m launch.embed_shapes --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.embed_shapes --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs

A killed run resumes where it stopped (the descriptors are cached per batch in `workdir/lfd/`).

New shapes into a finished embedding (out of sample; the base run is not changed):
  python -m launch.embed_shapes --config=configs/default.py --workdir=/tmp/new --into=/tmp/jembed \
      --config.shapes.source=folder --config.shapes.root=/data/my_new_meshes
When the base workdir has a trained shape encoder (`--config.shape_encoder.enabled=True` at training), `--into` places
the new shapes with it instead: surface clouds and one forward pass, no LFD renders and no distances
(`--placement=lfd` keeps the LFD-HoG out-of-sample fit).
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from jembed.embedding import shape_embedding
from launch import common

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder; the next stages read from it.", required=True)
_INTO = flags.DEFINE_string("into", "", "Workdir of a finished embedding to place these shapes into (out of sample).")
_PLACEMENT = flags.DEFINE_enum("placement", "auto", ["auto", "encoder", "lfd"],
                               "With --into: 'encoder' (the base run's shape encoder), 'lfd' (LFD-HoG distances and "
                               "an out-of-sample Sammon fit) or 'auto' (the encoder when the base run has one).")


def _use_encoder(base: str) -> bool:
  if _PLACEMENT.value == "lfd":
    return False
  from jembed.training import joint  # pylint: disable=g-import-not-at-top
  has = joint.latest_meta(base) is not None
  if _PLACEMENT.value == "encoder" and not has:
    raise FileNotFoundError(f"--placement=encoder: {base!r} has no trained shape encoder (train it with "
                            "--config.shape_encoder.enabled=True)")
  return has


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  common.log_devices()
  with common.user_errors():
    if _INTO.value and _use_encoder(_INTO.value):
      from jembed.embedding import encoder_placement  # pylint: disable=g-import-not-at-top  (loads flax, orbax)
      embedding = encoder_placement.add_shapes(_CONFIG.value, _WORKDIR.value, _INTO.value)
    elif _INTO.value:
      embedding = shape_embedding.add_shapes(_CONFIG.value, _WORKDIR.value, _INTO.value)
    else:
      embedding = shape_embedding.embed_shapes(_CONFIG.value, _WORKDIR.value)
  logging.info("wrote %s/shape_embedding.npz and shape_embedding.png", _WORKDIR.value)
  print(f"{len(embedding.ids)} shapes -> {embedding.points.shape[1]}-D, Sammon stress {embedding.stress:.3g}\n"
        f"  {_WORKDIR.value}/shape_embedding.npz\n  {_WORKDIR.value}/shape_embedding.png")


if __name__ == "__main__":
  app.run(main)
