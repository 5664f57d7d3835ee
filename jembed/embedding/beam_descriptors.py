"""The shape side's per-shape work (load, normalize, 20 LFD views, HoG pyramid) as an Apache Beam pipeline.

  python -m launch.embed_shapes --config=... --workdir=W --beam_runner=DirectRunner

  Create((listing index, ref)) -> Reshuffle -> Describe (one shape a call: its float32[203760] row, or why it was
  skipped) -> W/lfd/beam/<index>.npy + header lines
then, here, the rows are gathered in listing order into the descriptor store that the single-host stage writes
(`W/lfd/descriptors.npy` + `progress.json`, see `descriptors.py`), so the distance and Sammon stages read it as they
always do. The rows equal the single-host ones (the same functions, one shape per jitted HoG call).

The workdir must be a POSIX path every worker mounts. Needs the `beam` extra.
"""

import json
import os
import shutil

from absl import logging
import ml_collections
import numpy as np
import tqdm

from jembed.embedding import descriptors
from jembed.embedding import hog_input
from jembed.render import backend
from jembed.shapes import loading
from jembed.shapes import sources
from jembed.utils import beam as beam_lib
from jembed.workdir import files
from jembed.workdir import paths

beam = beam_lib.beam


class _Describe(beam.DoFn if beam else object):
  """(listing index, ref) -> one header line; the row goes to `<folder>/<index>.npy` (one renderer per worker)."""

  def __init__(self, config: ml_collections.ConfigDict, folder: str):
    super().__init__()
    self._config, self._folder, self._renderer = config, folder, None

  def setup(self):
    self._renderer = backend.get_renderer(self._config.render.backend)

  def process(self, task):
    index, ref = task
    shapes, render = self._config.shapes, self._config.render
    try:
      shape = loading.load_mesh(ref, shapes.up_axis, shapes.front)
    except loading.MeshError as e:
      yield json.dumps(dict(index=index, id=ref.id, category=ref.category, skipped=str(e)))
      return
    views = hog_input.lfd_images(
        self._renderer, shape.vertices, shape.faces, shape.category, size=render.size, antialias=render.antialias
    )
    row = np.asarray(descriptors.batch_descriptors(views[None]))[0]
    np.save(os.path.join(self._folder, f"{index:08d}.npy"), row)
    yield json.dumps(
        dict(index=index, id=shape.id, category=shape.category, skipped=None, mesh=loading.geometry_fingerprint(shape))
    )


def compute_descriptors(
    config: ml_collections.ConfigDict, workdir: str, runner: str, pipeline_options: str = ""
) -> descriptors.Descriptors:
  """`descriptors.compute_descriptors`, with the per-shape work on a Beam runner (module docstring).

  A store already complete for this listing and these settings is reused as it is.
  """
  refs = sources.list_shapes(config.shapes)
  key = descriptors.fingerprint(config, refs)
  features, progress = descriptors.open_store(workdir, key, len(refs))
  if progress["n_processed"] == len(refs):
    logging.info("LFD descriptors already computed in %s", paths.lfd(workdir))
    del features
    return descriptors.load_descriptors(workdir)
  folder = paths.lfd(os.path.abspath(workdir), paths.BEAM_ROWS_DIR)
  shutil.rmtree(folder, ignore_errors=True)
  os.makedirs(folder)

  def build(pipeline):
    _ = (
        pipeline
        | "Shapes" >> beam.Create(list(enumerate(refs)))
        | "Spread" >> beam.Reshuffle()
        | "Describe" >> beam.ParDo(_Describe(config, folder))
        | "Headers" >> beam.io.WriteToText(os.path.join(folder, "headers"), file_name_suffix=".jsonl")
    )

  beam_lib.run_pipeline(build, runner, pipeline_options)
  headers = [None] * len(refs)
  for path in sorted(p for p in os.listdir(folder) if p.startswith("headers")):
    with open(os.path.join(folder, path)) as f:
      for line in f:
        header = json.loads(line)
        headers[header["index"]] = header
  progress.update(ids=[], categories=[], meshes=[], skipped=[], digests=[])
  for header in tqdm.tqdm(headers, desc="gathering descriptors", unit="shape"):  # listing order: sorted ids
    if header["skipped"]:
      progress["skipped"].append([header["id"], header["skipped"]])
    else:
      features[len(progress["ids"])] = np.load(os.path.join(folder, f"{header['index']:08d}.npy"))
      progress["ids"].append(header["id"])
      progress["categories"].append(header["category"])
      progress["meshes"].append(header["mesh"])
  features.flush()
  descriptors.record_rows(progress, 0, features[: len(progress["ids"])])
  del features
  progress["n_processed"] = len(refs)
  files.write_json(paths.lfd(workdir, paths.DESCRIPTOR_PROGRESS), progress)  # only after the rows are on disk
  shutil.rmtree(folder, ignore_errors=True)
  descriptors.write_manifest(workdir, progress)
  return descriptors.load_descriptors(workdir)
