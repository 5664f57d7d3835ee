"""The shape manifest: written by the shape side, it is what later stages read to find a workdir's meshes."""

import json

import numpy as np
import pytest

from jembed.shapes import loading
from jembed.shapes import manifest
from jembed.shapes import sources
from jembed.workdir import records


def test_manifest_lists_the_embedded_shapes_with_their_geometry(tiny_run):
  workdir, _, _ = tiny_run
  record = manifest.Manifest.load(str(workdir))
  embedding = records.ShapeEmbedding.load(str(workdir / "shape_embedding.npz"))
  assert record.ids == list(embedding.ids) and record.categories == list(embedding.categories)
  assert len(record.sources) == len(record.fingerprints) == len(record.ids)
  # Independent check: load the meshes again from the recorded sources and fingerprint them.
  refs, up_axis, front = manifest.listed_shapes(str(workdir))
  shapes = list(sources.iter_shapes(refs, up_axis, front))
  assert [s.id for s in shapes] == record.ids
  assert [loading.geometry_fingerprint(s) for s in shapes] == record.fingerprints
  assert len(set(record.fingerprints)) == len(record.ids)  # the tiny catalog has no duplicates
  assert json.loads((workdir / "shapes.json").read_text())["version"] == manifest.VERSION


def test_refs_filter_by_id_in_row_order(tiny_run):
  workdir, _, _ = tiny_run
  record = manifest.Manifest.load(str(workdir))
  wanted = [record.ids[5], record.ids[1], "no/such-shape"]
  assert [r.id for r in record.refs(wanted)] == [record.ids[1], record.ids[5]]
  np.testing.assert_array_equal([r.category for r in record.refs()], record.categories)


def test_a_workdir_without_shapes_names_the_launcher(tmp_path):
  with pytest.raises(FileNotFoundError, match="launch.embed_shapes"):
    manifest.Manifest.load(str(tmp_path))
