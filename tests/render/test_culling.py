"""Back-face culling: when a mesh qualifies (trimesh as the oracle) and that the EGL backend's culled renders change
nothing (against its own unculled renders and the embree ray caster)."""

import numpy as np
import pytest
import trimesh

from jembed.render import camera
from jembed.render import culling
from jembed.render import embree
from jembed.shapes import loading
from jembed.shapes.catalog import build_mesh


def _solids():
  return {
      "icosphere": trimesh.creation.icosphere(subdivisions=3),
      "box": trimesh.creation.box((1.0, 2.0, 0.5)),
      "cylinder": trimesh.creation.cylinder(radius=0.5, height=1.5, sections=24),
      "torus": trimesh.creation.torus(1.0, 0.3),
      "capsule": trimesh.creation.capsule(height=1.0, radius=0.4),
  }


def _trimesh_says(mesh: trimesh.Trimesh) -> bool:
  return bool(mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0)


@pytest.mark.parametrize("name", sorted(_solids()))
def test_closed_outward_agrees_with_trimesh(name):
  mesh = _solids()[name]
  variants = {
      "as made": mesh,
      "inside out": trimesh.Trimesh(mesh.vertices, mesh.faces[:, ::-1], process=False),
      "one face removed": trimesh.Trimesh(mesh.vertices, mesh.faces[1:], process=False),
  }
  flipped = mesh.faces.copy()
  flipped[0] = flipped[0, ::-1]  # one face wound against its neighbours
  variants["one face flipped"] = trimesh.Trimesh(mesh.vertices, flipped, process=False)
  for variant, m in variants.items():
    assert culling.closed_outward(m.vertices, m.faces) == _trimesh_says(m), (name, variant)
  assert culling.closed_outward(mesh.vertices, mesh.faces)


def test_each_component_must_face_outward():
  big = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
  small = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
  small.apply_translation((3.0, 0.0, 0.0))
  inverted = trimesh.Trimesh(small.vertices, small.faces[:, ::-1], process=False)
  both = trimesh.util.concatenate([big, inverted])
  assert both.volume > 0  # the sum of the two volumes says nothing: the small one is inside out
  assert not culling.closed_outward(both.vertices, both.faces)
  outward = trimesh.util.concatenate([big, small])
  assert culling.closed_outward(outward.vertices, outward.faces)
  # An edge shared by more than two faces (a duplicated face) is not a closed 2-manifold.
  dup = np.concatenate([big.faces, big.faces[:1]])
  assert not culling.closed_outward(big.vertices, dup)
  assert not culling.closed_outward(np.zeros((0, 3)), np.zeros((0, 3), int))


def test_the_cached_verdict_follows_the_bytes_not_the_array():
  sphere = trimesh.creation.icosphere(subdivisions=2)
  vertices, faces = np.asarray(sphere.vertices, np.float32), np.asarray(sphere.faces, np.int32)
  assert culling.closed_outward_cached(vertices, faces)
  faces[:] = faces[:, ::-1].copy()  # the same array, now inside out
  assert not culling.closed_outward_cached(vertices, faces)
  faces[:] = faces[:, ::-1].copy()
  assert culling.closed_outward_cached(vertices, faces)
  assert not culling.closed_outward_cached(vertices, faces[1:])  # open


def test_eyes_outside_the_bounding_box():
  box = trimesh.creation.box((2.0, 2.0, 2.0))
  assert culling.eyes_outside(box.vertices, np.array([[3.0, 0.0, 0.0], [0.0, -1.5, 0.2]]))
  assert not culling.eyes_outside(box.vertices, np.array([[3.0, 0.0, 0.0], [0.5, 0.5, 0.5]]))


def _views():
  rng = np.random.default_rng(1)
  return camera.Views.make(rng.uniform(0, 360, 12), rng.uniform(-40, 70, 12), rng.normal(0, 10, 12), 3.0)


@pytest.mark.parametrize("category", ["chair", "lamp", "car"])
def test_culled_renders_equal_unculled_ones_on_catalog_shapes(egl_renderer, monkeypatch, category):
  """The catalog's overlapping closed parts: culling skips about half the triangles and changes no silhouette.

  Pixels may differ only where a back face of one part lies exactly on a front face of another it touches (a depth
  tie, which the unculled draw order settles for the back face, with the opposite normal): 0-5 of the 110,592
  samples of these 12 views, measured.
  """
  mesh = build_mesh(category, 2)
  vertices, faces = loading.normalize(mesh.vertices, mesh.faces)
  assert culling.closed_outward(vertices, faces)  # the catalog's meshes qualify, so the test runs the culled path
  culled = egl_renderer.render(vertices, faces, _views(), size=96, antialias=2)
  monkeypatch.setattr(culling, "closed_outward_cached", lambda *_: False)
  drawn = egl_renderer.render(vertices, faces, _views(), size=96, antialias=2)
  np.testing.assert_array_equal(culled.alpha, drawn.alpha)
  differ = np.any(culled.rgba != drawn.rgba, axis=-1)
  assert differ.mean() <= 1e-4, differ.sum()
  np.testing.assert_allclose(culled.depth, drawn.depth, rtol=1e-3)
  assert np.median(np.abs(culled.depth - drawn.depth)) == 0


def test_inside_out_and_inside_views_are_not_culled(egl_renderer):
  """An inside-out sphere and a camera inside a closed box must show what the ray caster shows: culling there would
  drop the visible faces."""
  sphere = trimesh.creation.icosphere(subdivisions=4)
  views = _views()
  inside_out = egl_renderer.render(sphere.vertices, sphere.faces[:, ::-1], views, size=64)
  outward = egl_renderer.render(sphere.vertices, sphere.faces, views, size=64)
  np.testing.assert_array_equal(inside_out.alpha, outward.alpha)
  # The near side, not the far one (~30 % deeper); reversed corners only round the interpolation differently.
  np.testing.assert_allclose(inside_out.depth, outward.depth, rtol=1e-4)
  room = trimesh.creation.box((4.0, 4.0, 4.0))
  inside = camera.Views.make([0.0, 90.0, 200.0], [0.0, 10.0, -20.0], 0.0, 1.0)  # eyes 1 from the centre: inside
  a = egl_renderer.render(room.vertices, room.faces, inside, size=48)
  b = embree.EmbreeRenderer().render(room.vertices, room.faces, inside, size=48)
  assert (a.alpha > 0).all() and (b.alpha > 0).all()  # the walls fill every pixel
  np.testing.assert_allclose(a.depth, b.depth, rtol=1e-3)
