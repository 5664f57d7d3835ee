"""The colour path: both backends against each other and against the gray path, and the solid textures."""

import numpy as np
import pytest
import trimesh

from jembed.render import camera
from jembed.render import embree
from jembed.render import lights as lights_lib
from jembed.render import materials
from jembed.shapes import catalog


@pytest.fixture(scope="module", name="chair")
def _chair():
  mesh = catalog.build_mesh("chair", 3)
  v = np.asarray(mesh.vertices, np.float64)
  v = v - (v.min(0) + v.max(0)) / 2
  return (v / np.linalg.norm(v, axis=1).max()).astype(np.float32), np.asarray(mesh.faces, np.int32)


def _palette():
  return materials.Palette(
      color=np.array([[0.8, 0.2, 0.1], [0.1, 0.5, 0.9], [0.9, 0.9, 0.9], [0.05, 0.05, 0.05]], np.float32),
      color2=np.array([[0.2, 0.1, 0.0], [0.9, 0.9, 0.2], [0.1, 0.1, 0.1], [0.6, 0.3, 0.1]], np.float32),
      pattern=np.array([materials.PATTERNS.index(p) for p in ("wood", "stripes", "checker", "noise")], np.int32),
      frequency=np.array([5, 6, 4, 3], np.float32),
      axis=np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]], np.float32),
      offset=np.zeros((4, 3), np.float32),
      specular=np.array([0.5, 0.2, 0.0, 0.8], np.float32),
      shininess=np.array([30, 10, 1, 80], np.float32),
  )


LIGHTS = lights_lib.Lights.spherical(0.3, [40, 200], [30, -10], [10, 12], [2.0, 1.5])
VIEWS = camera.Views.make([30.0, 120.0, 250.0], [20.0, 10.0, 40.0], 0.0, 3.0)


def test_backends_agree_on_textured_colour(egl_renderer, chair):
  vertices, faces = chair
  appearance = materials.Appearance(np.arange(len(faces)) % 4, (_palette(),))
  a = egl_renderer.render(vertices, faces, VIEWS, size=96, lights=LIGHTS, antialias=2, appearance=appearance)
  b = embree.EmbreeRenderer().render(vertices, faces, VIEWS, size=96, lights=LIGHTS, antialias=2, appearance=appearance)
  inside = (a.alpha == 255) & (b.alpha == 255)
  assert (a.alpha > 0).sum() > 1000
  iou = ((a.alpha > 0) & (b.alpha > 0)).sum() / ((a.alpha > 0) | (b.alpha > 0)).sum()
  assert iou >= 0.995
  diff = np.abs(a.rgba[..., :3].astype(int) - b.rgba[..., :3].astype(int))[inside]
  assert np.mean(diff) < 0.5 and np.percentile(diff, 99) <= 2
  np.testing.assert_allclose(a.depth[inside], b.depth[inside], atol=1e-4)
  channels = a.rgba[..., :3][inside].astype(int)
  assert np.mean(np.abs(channels[:, 0] - channels[:, 2])) > 10  # colour, not gray


@pytest.mark.parametrize("which", ["egl", "embree"])
def test_plain_material_equals_the_gray_path(which, egl_renderer, chair):
  renderer = egl_renderer if which == "egl" else embree.EmbreeRenderer()
  vertices, faces = chair
  plain = materials.Appearance(np.zeros(len(faces), np.int32), (materials.Palette.plain([0.48] * 3),))
  color = renderer.render(vertices, faces, VIEWS, size=64, lights=LIGHTS, antialias=2, appearance=plain)
  gray = renderer.render(vertices, faces, VIEWS, size=64, lights=LIGHTS, antialias=2, albedo=0.48)
  assert np.abs(color.rgba.astype(int) - gray.rgba.astype(int)).max() <= 1
  np.testing.assert_allclose(color.depth, gray.depth, atol=1e-5)


def test_specular_lobe_peaks_at_the_mirror_direction():
  # A plane facing +X, lamp and eye on the normal: n.h = 1 only at the point under both (Blinn-Phong's maximum).
  plane = trimesh.Trimesh([[0, -1, -1], [0, 1, -1], [0, 1, 1], [0, -1, 1]], [[0, 1, 2], [0, 2, 3]])
  lamp = lights_lib.Lights(0.0, [[3.0, 0.0, 0.0]], [1.0])
  palette = materials.Palette.plain([0.0, 0.0, 0.0], specular=1.0, shininess=50.0)
  out = embree.EmbreeRenderer().render(
      plane.vertices,
      plane.faces,
      camera.Views.make([0.0], [0.0], 0.0, 3.0),
      size=65,
      lights=lamp,
      appearance=materials.Appearance(np.zeros(2, np.int32), (palette,)),
  )
  gray = out.rgba[0, ..., 0].astype(int)
  assert np.unravel_index(np.argmax(gray), gray.shape) == (32, 32)
  assert gray[32, 32] > 5 * max(1, gray[32, 5])


def test_textures_are_deterministic_bounded_and_varied():
  rng = np.random.default_rng(0)
  p = rng.uniform(-1, 1, (2000, 3)).astype(np.float32)
  noise = materials.value_noise(p * 4)
  assert noise.min() >= 0 and noise.max() < 1 and noise.std() > 0.1
  np.testing.assert_array_equal(noise, materials.value_noise(p * 4))
  # value noise is continuous: nearby points give nearby values
  assert np.abs(materials.value_noise(p * 4 + 1e-3) - noise).max() < 0.05
  freq, axis = np.full(len(p), 3.0, np.float32), np.tile([[1.0, 0.0, 0.0]], (len(p), 1)).astype(np.float32)
  for name in ("noise", "stripes", "checker", "wood", "fabric"):
    t = materials.pattern_mix(materials.PATTERNS.index(name), p, freq, axis)
    assert t.shape == (len(p),) and t.min() >= 0 and t.max() <= 1 and t.std() > 0.01, name
  stripes = materials.pattern_mix(materials.PATTERNS.index("stripes"), p, freq, axis)
  expected = (np.mod(p[:, 0] * 3.0, 1.0) < 0.5).astype(np.float32)
  np.testing.assert_array_equal(stripes, expected)


def test_barycentric_weights_reconstruct_the_point():
  rng = np.random.default_rng(1)
  tri = rng.normal(size=(50, 3, 3))
  w = rng.dirichlet([1, 1, 1], 50)
  points = np.einsum("pk,pkc->pc", w, tri)
  np.testing.assert_allclose(materials.barycentric(points, tri), w, atol=1e-4)


def test_coincident_copies_of_a_face_show_the_first_copy():
  v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
  f = np.array([[0, 1, 2], [4, 3, 5], [0, 1, 6], [5, 4, 3]])
  np.testing.assert_array_equal(materials.canonical_faces(v, f), [0, 0, 2, 0])


def test_own_appearance_of_textured_shapenet_models(egl_renderer, shared_data):
  from jembed.data import appearance  # pylint: disable=g-import-not-at-top
  from jembed.shapes import loading  # pylint: disable=g-import-not-at-top
  from jembed.shapes import record  # pylint: disable=g-import-not-at-top

  root = shared_data / "shapenet_samples"
  paths = sorted(root.glob("ShapeNetCore.v1/*/*/model.obj")) + sorted(root.glob("ShapeNetCore.v2/*/*/models/*.obj"))
  assert len(paths) == 9
  views = camera.Views.make([30.0, 200.0], [20.0, 35.0], 0.0, 3.0)
  palette = appearance.own(appearance.sample_palette(np.random.default_rng(0)))
  spreads = []
  for path in paths:
    shape = loading.load_mesh(record.ShapeRef("s", "chair", str(path)), appearance=True)
    plain = loading.load_mesh(record.ShapeRef("s", "chair", str(path)))
    np.testing.assert_array_equal(shape.faces, plain.faces)  # reading materials changes no geometry
    parts = appearance.shape_parts(shape.vertices, shape.faces, shape.face_groups)
    own = materials.Appearance(parts, (palette,), appearance.to_linear(shape.corner_colors))
    a = egl_renderer.render(shape.vertices, shape.faces, views, size=64, antialias=2, appearance=own)
    b = embree.EmbreeRenderer().render(shape.vertices, shape.faces, views, size=64, antialias=2, appearance=own)
    inside = (a.alpha == 255) & (b.alpha == 255)
    diff = np.abs(a.rgba[..., :3].astype(int) - b.rgba[..., :3].astype(int))[inside]
    assert np.mean(diff.max(-1) > 8) < 0.005, path
    spreads.append(a.rgba[..., :3][inside].astype(float))
  # the airplane (10 materials) is far from one colour; the v1 chair's textured frame is wood: red above blue
  assert spreads[0].std(0).mean() > 15
  assert spreads[1][:, 0].mean() - spreads[1][:, 2].mean() > 5
  chair = loading.load_mesh(record.ShapeRef("s", "chair", str(paths[1])), appearance=True)
  assert len(np.unique(chair.face_groups)) == 3 and chair.corner_colors.reshape(-1, 3).std(0).mean() > 20
