r"""The shape side: LFD views -> HoG pyramid -> distances -> Sammon MDS -> `workdir/shape_embedding.npz` and a map.

  python -m launch.embed_shapes --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.embed_shapes --config=configs/shapenet_chairs.py:root=/data/ShapeNetCore.v1 --workdir=/runs/chairs

A killed run resumes where it stopped (the descriptors are cached per batch in `workdir/lfd/`); a finished one made
with the same settings and shapes is reused. One made with other settings is replaced, except when a network in the
workdir was trained on it: that is an error naming the differences, unless `--force`.

Many machines: `--beam_runner=DataflowRunner --beam_pipeline_options="..."` (or FlinkRunner, SparkRunner,
DirectRunner; commands in launch/build_dataset.py) runs the per-shape work (load, normalize, LFD views, HoG) on Apache
Beam into the same descriptor store (`pip install -e ".[beam]"`); distances and Sammon follow here.

Several JAX processes (hosts or GPUs; the flags of launch/train.py: --multihost, or --coordinator_address=HOST:PORT
--num_processes=N --process_id=I): each computes a share of the distance tiles on its devices; process 0 the rest.

New shapes into a finished embedding (out of sample; the base run is not changed):
  python -m launch.embed_shapes --config=configs/default.py --workdir=/tmp/new --into=/tmp/jembed \
      --config.shapes.source=folder --config.shapes.root=/data/my_new_meshes
When the base workdir has a trained shape encoder (`--config.shape_encoder.enabled=True` at training), `--into` places
the new shapes with it instead: surface clouds and one forward pass, no LFD renders and no distances
(`--placement=lfd` keeps the LFD-HoG out-of-sample fit).
"""

from absl import app
from absl import flags

from jembed.apps import stages
from jembed.training import joint
from jembed.utils import distributed
from jembed.workdir import records
from launch import common

_CONFIG, _WORKDIR = common.config_and_workdir("Output folder; the next stages read from it.")
_START = common.define_process_flags()
_LOCK = common.define_workdir_lock(writes=("shape_side",))
_BEAM_RUNNER = flags.DEFINE_string(
    "beam_runner",
    "",
    "Run the per-shape work (load, LFD views, HoG) on Apache Beam: "
    "DirectRunner, DataflowRunner, FlinkRunner, SparkRunner (see build_dataset.py).",
)
_BEAM_OPTIONS = flags.DEFINE_string("beam_pipeline_options", "", "The Beam runner's options, in Beam's flag syntax.")
_INTO = flags.DEFINE_string("into", "", "Workdir of a finished embedding to place these shapes into (out of sample).")
_FORCE = common.force_flag("the shape embedding (made with other settings)")
_PLACEMENT = flags.DEFINE_enum(
    "placement",
    "auto",
    ["auto", "encoder", "lfd"],
    "With --into: 'encoder' (the base run's shape encoder), 'lfd' (LFD-HoG distances and "
    "an out-of-sample Sammon fit) or 'auto' (the encoder when the base run has one).",
)


def _use_encoder(base: str) -> bool:
  if _PLACEMENT.value == "lfd":
    return False
  has = joint.latest_meta(base) is not None
  if _PLACEMENT.value == "encoder" and not has:
    raise FileNotFoundError(
        f"--placement=encoder: {base!r} has no trained shape encoder (train it with "
        "--config.shape_encoder.enabled=True)"
    )
  return has


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  _START()
  with common.user_errors():
    _LOCK(_WORKDIR.value, reads_of={_INTO.value: ("shape_side",)} if _INTO.value else None)
    if distributed.is_main() or not _INTO.value:  # a few new shapes (--into): process 0 alone
      outputs = stages.shape_embedding(
          _CONFIG.value,
          _WORKDIR.value,
          into=_INTO.value,
          force=_FORCE.value,
          beam_runner=_BEAM_RUNNER.value,
          beam_pipeline_options=_BEAM_OPTIONS.value,
          encoder=bool(_INTO.value) and _use_encoder(_INTO.value),
      )
  distributed.barrier("shape embedding written")
  if not distributed.is_main():
    return
  embedding = records.ShapeEmbedding.load(outputs["shape embedding"])
  print(f"{len(embedding.ids)} shapes -> {embedding.points.shape[1]}-D, Sammon stress {embedding.stress:.3g}")
  common.print_outputs(outputs)


if __name__ == "__main__":
  common.run(main)
