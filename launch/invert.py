r"""Feature inversion: the images a trained run's network associates with a photo, a shape, or a test image.

  python -m launch.invert --workdir=/tmp/jembed --image=photo.jpg                  # every layer, point included
  python -m launch.invert --workdir=/tmp/jembed --image=photo.jpg --layers=conv2,point
  python -m launch.invert --workdir=/tmp/jembed --shape=chair_003                  # a shape's Sammon point
  python -m launch.invert --workdir=/tmp/jembed --twins=4                          # cluttered vs clean test images

Writes workdir/inversions/{images,shapes,twins}.png (a row per target: the input, then its inversion from each layer
with the feature loss reached; twins: the cluttered image's row, then its clean twin's) and inversions.json, and
prints the feature losses (and, for twins, how alike the two inversions are). `--twins` reads the evaluation's
synthetic test sets, so give the run's `--config` (it reuses `workdir/eval/sets/` when the settings match).
"""

import os

from absl import flags

from jembed.api import inversion
from jembed.apps import inversion_gallery as gallery
from jembed.utils import images
from jembed.workdir import files
from jembed.workdir import paths
from launch import common

_CONFIG, _WORKDIR = common.config_and_workdir("A trained run's folder (its config for --twins: --config).")
_IMAGES = flags.DEFINE_multi_string("image", [], "Photo(s) to invert; repeat the flag for several.")
_SHAPES = flags.DEFINE_multi_string("shape", [], "Shape id(s) whose embedding point to invert.")
_TWINS = flags.DEFINE_integer("twins", 0, "Cluttered test images to invert beside their clean twins.")
_LAYERS = flags.DEFINE_list("layers", [], "Layers to invert from (default: all, e.g. conv1,...,fc6,point).")
_ITERATIONS = flags.DEFINE_integer("iterations", 400, "Gradient steps (Mahendran & Vedaldi: 400).")
_TV_WEIGHT = flags.DEFINE_float("tv_weight", None, "TV regulariser weight (default: by the layer's depth).")
_JITTER = flags.DEFINE_integer("jitter", 2, "Random shift in pixels at each step (0: none).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random start (same seed, same images).")
_LOCK = common.define_workdir_lock(writes=("inversions",), reads=("shape_side",))
_OUT_DIR = flags.DEFINE_string("out_dir", "", "Where the PNGs and inversions.json go; empty = workdir/inversions.")


def _print_rows(title: str, rows) -> None:
  print(f"{title}: feature loss reached (at the random start)")
  for row in rows:
    print(
        f"  {row.label:<40} " + "  ".join(f"{k} {v:.4f} ({row.start_loss[k]:.2f})" for k, v in row.feature_loss.items())
    )


def run() -> dict[str, str]:
  """Parses nothing, checks everything, writes the galleries: {what: path}."""
  workdir = _WORKDIR.value
  if not (_IMAGES.value or _SHAPES.value or _TWINS.value > 0):
    raise ValueError("nothing to invert: give --image=PATH, --shape=ID or --twins=N")
  _LOCK(workdir, also_writes=("evaluation",) if _TWINS.value > 0 else ())  # --twins may cache eval/sets/
  for path in _IMAGES.value:  # a typo fails before the model loads
    images.open_image(path)
  model = gallery.load(workdir)
  spec = model.params.spec
  layers = inversion.check_layers(spec, _LAYERS.value) if _LAYERS.value else inversion.layer_names(spec)
  gallery.shape_rows(model, _SHAPES.value)
  settings = inversion.Settings(iterations=_ITERATIONS.value, tv_weight=_TV_WEIGHT.value, jitter=_JITTER.value)
  out_dir = _OUT_DIR.value or paths.inversions(workdir)
  outputs, summary = {}, {"settings": {k: v for k, v in vars(settings).items()}, "seed": _SEED.value}
  if _IMAGES.value:
    rows = gallery.invert_images(model, _IMAGES.value, layers, settings, _SEED.value)
    _print_rows("images", rows)
    outputs["images"] = gallery.write_gallery([[r] for r in rows], layers, os.path.join(out_dir, paths.INVERTED_IMAGES))
    summary["images"] = [r.summary() for r in rows]
  if _SHAPES.value:
    rows = gallery.invert_shapes(workdir, model, _SHAPES.value, settings, _SEED.value)
    _print_rows("shapes (their Sammon points through the embedding layer)", rows)
    outputs["shapes"] = gallery.write_gallery(
        [[r] for r in rows], (inversion.POINT,), os.path.join(out_dir, paths.INVERTED_SHAPES)
    )
    summary["shapes"] = [r.summary() for r in rows]
  if _TWINS.value > 0:
    cluttered, clean, labels = gallery.pick_twins(_CONFIG.value, workdir, model, _TWINS.value)
    rows_a, rows_b, distances = gallery.invert_twins(
        model.params, cluttered, clean, labels, layers, settings, _SEED.value
    )
    _print_rows("cluttered test images", rows_a)
    _print_rows("their clean twins", rows_b)
    print(
        "twins: RMS pixel distance (0..1) of the inputs, of their inversions, of unrelated images' inversions;"
        " feature distance of the inputs"
    )
    for layer, d in distances.items():
      print(
          f"  {layer:<8} inputs {d['inputs']:.3f}  inversions {d['inversions']:.3f}  unrelated {d['unrelated']:.3f}"
          f"  (ratio {d['ratio']:.2f})  features {d['feature_distance']:.3f}"
      )
    outputs["twins"] = gallery.write_gallery(
        [[a, b] for a, b in zip(rows_a, rows_b)], layers, os.path.join(out_dir, paths.INVERTED_TWINS)
    )
    summary["twins"] = dict(
        cluttered=[r.summary() for r in rows_a], clean=[r.summary() for r in rows_b], distances=distances
    )
  outputs["summary"] = os.path.join(out_dir, paths.INVERSIONS_SUMMARY)
  files.write_json(outputs["summary"], summary, indent=1)
  return outputs


def main(argv):
  del argv  # common.run refuses positional arguments
  common.log_devices()
  common.print_outputs(run())


if __name__ == "__main__":
  common.run(main)
