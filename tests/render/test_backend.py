"""Both render backends against analytic shapes and against each other on real ShapeNet meshes."""

import logging
import math

import numpy as np
import pytest
import trimesh

from jembed.render import backend
from jembed.render import base
from jembed.render import camera
from jembed.render import embree
from jembed.render import lights as lights_lib
from jembed.render import shading


@pytest.fixture(params=["egl", "embree"])
def renderer(request):
  if request.param == "egl":
    return request.getfixturevalue("egl_renderer")
  return embree.EmbreeRenderer()


def _normalized(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
  """Bounding box centred at 0, unit bounding-sphere radius (as the shape loaders do)."""
  v = np.asarray(mesh.vertices, np.float64)
  v = v - (v.min(0) + v.max(0)) / 2
  return (v / np.linalg.norm(v, axis=1).max()).astype(np.float32), np.asarray(mesh.faces, np.int32)


def test_sphere_silhouette_and_depth(renderer):
  sphere = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
  out = renderer.render(sphere.vertices, sphere.faces, camera.Views.make([0.0, 123.0], [0.0, 45.0], 0.0, 3.0), size=128)
  assert out.rgba.shape == (2, 128, 128, 4) and out.rgba.dtype == np.uint8
  assert out.depth.shape == (2, 128, 128) and out.depth.dtype == np.float32
  # A sphere of radius r centred on the optical axis at distance d projects to a disc of radius f·tan(asin(r/d)).
  disc = math.pi * (camera.focal_length(128) * math.tan(math.asin(1 / 3))) ** 2
  area = (out.alpha > 0).sum((1, 2))
  np.testing.assert_allclose(area, disc, rtol=0.01)  # the inscribed icosphere is ~0.4% smaller
  np.testing.assert_allclose(out.depth[:, 63:65, 63:65], 2.0, rtol=1e-3)
  assert set(np.unique(out.alpha)) == {0, 255}
  assert (out.depth[out.alpha == 0] == 0).all() and (out.rgba[out.alpha == 0] == 0).all()


def test_cube_face_exact_pixels_depth_and_shading(renderer):
  cube = trimesh.creation.box((1.0, 1.0, 1.0))
  lamp = lights_lib.Lights(0.2, [[6.0, 1.0, -2.0]], [3.0])
  out = renderer.render(
      cube.vertices, cube.faces, camera.Views.make(0.0, 0.0, 0.0, 3.0), size=(100, 128), lights=lamp, albedo=0.7
  )
  # Seen head-on from +X at distance 3 only the face x = 0.5 shows, at depth 2.5: a square of side f / 2.5 pixels
  # whose covered pixels are those with their centre inside it.
  f = camera.focal_length((100, 128))
  half = f * 0.5 / 2.5
  cols = np.flatnonzero(np.abs(np.arange(128) + 0.5 - 64) < half)
  rows = np.flatnonzero(np.abs(np.arange(100) + 0.5 - 50) < half)
  expected = np.zeros((100, 128), bool)
  expected[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
  np.testing.assert_array_equal(out.alpha[0] > 0, expected)
  np.testing.assert_allclose(out.depth[0][expected], 2.5, rtol=1e-5)
  # Shading at each pixel centre's surface point, by the numpy reference with the face normal +X.
  directions = camera.pixel_directions((100, 128)) @ camera.camera_frames(camera.Views.make(0.0))[0][0]
  points = np.array([3.0, 0, 0]) + 2.5 * directions[expected]
  gray = shading.shade(points, np.tile([1.0, 0, 0], (len(points), 1)), [3, 0, 0], lamp, 0.7)
  np.testing.assert_allclose(out.rgba[0, ..., 0][expected], np.rint(shading.display(gray) * 255), atol=1)
  assert np.ptp(gray) > 0.05  # the lamp is close enough to vary across the face


def test_positive_tilt_turns_the_image_clockwise(renderer):
  # An L-shaped pair of boxes: asymmetric under every rotation.
  mesh = trimesh.util.concatenate(
      [
          trimesh.creation.box((0.2, 1.0, 0.3)),
          trimesh.creation.box((0.2, 0.3, 0.8), trimesh.transformations.translation_matrix([0, -0.35, -0.5])),
      ]
  )
  out = renderer.render(mesh.vertices, mesh.faces, camera.Views.make(0.0, 0.0, [0.0, 90.0], 3.0), size=64)
  upright, tilted = out.alpha > 0
  assert not np.array_equal(upright, np.rot90(upright))
  np.testing.assert_array_equal(tilted, np.rot90(upright, k=-1))  # k = -1: clockwise


def test_antialias_gives_partial_coverage(renderer):
  sphere = trimesh.creation.icosphere(subdivisions=4)
  views = camera.Views.make(0.0, 0.0, 0.0, 3.0)
  sharp = renderer.render(sphere.vertices, sphere.faces, views, size=64)
  smooth = renderer.render(sphere.vertices, sphere.faces, views, size=64, antialias=3)
  partial = (smooth.alpha > 0) & (smooth.alpha < 255)
  assert partial.sum() > 50  # the rim
  np.testing.assert_allclose(smooth.alpha.sum() / 255, sharp.alpha.sum() / 255, rtol=0.02)
  inner = smooth.alpha == 255
  np.testing.assert_allclose(smooth.rgba[..., 0][inner], sharp.rgba[..., 0][inner], atol=2)  # straight alpha


def test_per_view_lights_albedo_and_negative_energy(renderer):
  sphere = trimesh.creation.icosphere(subdivisions=3)
  views = camera.Views.make([0.0, 0.0, 0.0], 0.0, 0.0, 3.0)
  front = [[5.0, 0.0, 0.0]]
  view_lights = [
      lights_lib.Lights(0.5, front, [2.0]),
      lights_lib.Lights(0.5, front, [-2.0]),
      lights_lib.Lights(0.5, np.zeros((0, 3)), []),
  ]
  out = renderer.render(sphere.vertices, sphere.faces, views, size=32, lights=view_lights, albedo=[0.5, 0.5, 1.0])
  centre = out.rgba[:, 16, 16, 0].astype(int)
  assert centre[0] > centre[2] > centre[1]  # a negative lamp darkens
  np.testing.assert_allclose(out.rgba[2, ..., 0][out.alpha[2] > 0], 188, atol=1)  # sRGB of ambient 0.5 · albedo 1.0
  assert centre[1] == 0  # clipped at 0: 0.5·(0.5 - 2·25/(25 + 2²)·1) < 0


def _agreement(a: base.RenderOutput, b: base.RenderOutput) -> dict[str, float]:
  ca, cb = a.alpha > 0, b.alpha > 0
  both = ca & cb
  rel = np.abs(a.depth[both] - b.depth[both]) / b.depth[both]
  gray = np.abs(a.rgba[..., 0][both].astype(int) - b.rgba[..., 0][both].astype(int))
  return dict(
      iou=((ca & cb).sum((1, 2)) / (ca | cb).sum((1, 2))).min(),
      depth_median=np.median(rel),
      depth_p999=np.percentile(rel, 99.9),
      gray_mean=gray.mean(),
      gray_over_2=(gray > 2).mean(),
  )


def _shapenet_meshes(root):
  samples = root / "shapenet_samples"
  paths = sorted(samples.glob("ShapeNetCore.v1/*/*/model.obj")) + sorted(
      samples.glob("ShapeNetCore.v2/*/*/models/model_normalized.obj")
  )
  assert len(paths) >= 2, f"no ShapeNet meshes under {samples}"
  return paths


def test_backends_agree_on_shapenet_meshes(shared_data, egl_renderer):
  """Silhouette IoU, depth and gray of EGL vs embree at 128² on every real mesh.

  Depth is judged by the 99.9th percentile of the relative error on pixels both cover (and the median): a triangle
  edge running exactly through a pixel centre may be hit by one backend and missed by the other (GL's top-left rule
  vs embree's edge test), showing the surface behind there with an arbitrary depth difference. Such pixels are a
  few in 10⁴; anything systematic (camera, projection, half-pixel offset, clipping) would move far more than 0.1%.
  """
  rng = np.random.default_rng(0)
  views = camera.Views.make(
      np.r_[np.arange(0, 360, 45), rng.uniform(0, 360, 4)],
      np.r_[np.full(8, 20.0), rng.uniform(-60, 80, 4)],
      np.r_[np.zeros(8), rng.normal(0, 10, 4)],
      3.0,
  )
  emb = embree.EmbreeRenderer()
  for path in _shapenet_meshes(shared_data):
    vertices, faces = _normalized(trimesh.load(path, force="mesh"))
    stats = _agreement(egl_renderer.render(vertices, faces, views), emb.render(vertices, faces, views))
    name = path.relative_to(shared_data)
    assert stats["iou"] >= 0.98, (name, stats)
    assert stats["depth_p999"] <= 0.01 and stats["depth_median"] <= 1e-4, (name, stats)
    assert stats["gray_mean"] <= 0.25 and stats["gray_over_2"] <= 0.005, (name, stats)


def test_backends_agree_with_antialiasing(shared_data, egl_renderer):
  vertices, faces = _normalized(trimesh.load(_shapenet_meshes(shared_data)[0], force="mesh"))
  views = camera.Views.make([30.0, 200.0], [20.0, -10.0], [0.0, 5.0], 3.0)
  a = egl_renderer.render(vertices, faces, views, size=96, antialias=2)
  b = embree.EmbreeRenderer().render(vertices, faces, views, size=96, antialias=2)
  assert np.abs(a.alpha.astype(int) - b.alpha.astype(int)).mean() < 0.5
  stats = _agreement(a, b)
  assert stats["iou"] >= 0.98 and stats["depth_median"] <= 1e-4 and stats["gray_mean"] <= 0.25, stats


def test_egl_batches_larger_than_one_atlas(egl_renderer):
  sphere = trimesh.creation.icosphere(subdivisions=2)
  from jembed.render import egl  # pylint: disable=g-import-not-at-top

  small = egl.EGLRenderer(atlas_side=64)  # 2 x 2 tiles of 32²: 7 views need two atlases
  views = camera.Views.make(np.arange(7) * 50.0, np.arange(7) * 10.0 - 30, 0.0, 3.0)
  try:
    np.testing.assert_array_equal(
        small.render(sphere.vertices, sphere.faces, views, size=32).rgba,
        egl_renderer.render(sphere.vertices, sphere.faces, views, size=32).rgba,
    )
  finally:
    small.release()


def test_empty_mesh_and_bad_indices(renderer):
  out = renderer.render(np.zeros((0, 3)), np.zeros((0, 3)), camera.Views.make([0.0, 1.0]), size=8)
  assert out.rgba.shape == (2, 8, 8, 4) and not out.rgba.any() and not out.depth.any()
  with pytest.raises(ValueError):
    renderer.render(np.zeros((3, 3)), [[0, 1, 3]], camera.Views.make(0.0), size=8)


def test_auto_falls_back_to_embree_and_says_so_once(monkeypatch, caplog):
  def no_context(*args, **kwargs):
    raise RuntimeError("no EGL here")

  # A machine without EGL: creating the context fails, as it does where libEGL or a driver is missing.
  monkeypatch.setattr(backend.egl, "EGLRenderer", no_context)
  monkeypatch.setattr(backend, "_fallback_logged", False)
  with caplog.at_level(logging.WARNING):
    names = [backend.get_renderer("auto").name for _ in range(3)]
  assert names == ["embree"] * 3
  notices = [r for r in caplog.records if "falling back to the embree" in r.getMessage()]
  assert len(notices) == 1 and "no EGL here" in notices[0].getMessage()
  with pytest.raises(RuntimeError):
    backend.get_renderer("egl")
  with pytest.raises(ValueError):
    backend.get_renderer("blender")


def test_auto_prefers_egl(egl_renderer):
  del egl_renderer  # only to skip without EGL
  renderer = backend.get_renderer("auto")
  assert renderer.name == "egl"
  renderer.release()


def test_display_transform_is_srgb():
  # Reference values of the sRGB encoding (IEC 61966-2-1): 0.5 linear is 0.7354, 0.18 is 0.4614.
  np.testing.assert_allclose(
      shading.display(np.array([0.0, 0.002, 0.18, 0.5, 1.0, 1.5])),
      [0.0, 0.02584, 0.46135, 0.73536, 1.0, 1.0],
      atol=1e-4,
  )
