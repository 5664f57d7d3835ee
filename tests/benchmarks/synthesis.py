r"""Synthesis throughput per CPU core: training images/s of main's recipe against the photo-like one.

  python tests/benchmarks/synthesis.py                                   # catalog shapes, procedural backgrounds
  python tests/benchmarks/synthesis.py --ikea=../shared/data/ikea_photos_voxels --backgrounds=../shared/data/backgrounds

One process (one core): each shape is loaded, its images rendered (one call), cropped, composited and PNG-encoded, as
a dataset worker does (`render_cache.render_shape`). 'before' is configs/ikea.py with the new switches off (gray
render + tint, no distractors, no background jitter, no JPEG); 'after' has them all on (`configs.ikea.all_photo_like`:
random materials per part, distractors, background jitter, JPEG). The two alternate per round so load changes hit
both alike.

The last stdout line is one JSON object: {"benchmark": "synthesis", "ours": images/s after, "peer": images/s before,
"unit": "images/s per core", "ratio": ours / peer, ...}.
"""

import argparse
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from configs import ikea  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.data import render_cache  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.data import tfds_builder  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.render import backend  # pylint: disable=g-import-not-at-top,wrong-import-position


def _job(args, new: bool, tmp: str):
  config = ikea.all_photo_like(ikea.get_config())
  if args.ikea:
    config.shapes.root = args.ikea
  else:
    config.shapes.update(source="catalog", root="", up_axis="y", front="auto")
  config.data.backgrounds = args.backgrounds
  config.data.images_per_shape = args.images
  if not new:
    config.data.update(appearance="tint", distractors=0.0, background_jitter=0.0, jpeg=0.0)
  builder = tfds_builder.JembedImages(config=config, data_dir=tmp)
  return builder.render_job(), builder.refs


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--ikea", default="", help="ikea_photos_voxels folder (default: the built-in catalog)")
  parser.add_argument("--backgrounds", default="", help="background photos (default: procedural)")
  parser.add_argument("--shapes", type=int, default=6, help="shapes per round")
  parser.add_argument("--images", type=int, default=20, help="images per shape")
  parser.add_argument("--rounds", type=int, default=2)
  args = parser.parse_args()
  import tempfile  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory() as tmp:
    jobs = {new: _job(args, new, tmp) for new in (False, True)}
    renderer = backend.get_renderer("auto")
    refs = jobs[False][1]
    picks = [refs[i] for i in np.linspace(0, len(refs) - 1, args.shapes).round().astype(int)]
    rates = {False: [], True: []}
    for _ in range(args.rounds):
      for new in (False, True):
        job = jobs[new][0]
        backgrounds = render_cache.make_backgrounds(job)
        start, images = time.perf_counter(), 0
        for index, ref in enumerate(picks):
          images += len(render_cache.render_shape(renderer, backgrounds, job, index, ref)[1])
        rates[new].append(images / (time.perf_counter() - start))
  rate = {new: float(np.median(r)) for new, r in rates.items()}
  for new in (False, True):
    print(f"{'after ' if new else 'before'}: {rate[new]:.1f} images/s per core (rounds: {rates[new]})")
  print(
      json.dumps(
          {
              "benchmark": "synthesis",
              "ours": round(rate[True], 2),
              "peer": round(rate[False], 2),
              "unit": "images/s per core",
              "ratio": round(rate[True] / rate[False], 4),
              "renderer": renderer.name,
              "shapes": "ikea" if args.ikea else "catalog",
              "backgrounds": "photos" if args.backgrounds else "procedural",
          }
      )
  )


if __name__ == "__main__":
  main()
