"""Camera math against hand-worked cases and against the paper's own quaternion code (re-derived here as the oracle)."""

import math

import numpy as np
import pytest

from jembed.render import camera
from jembed.render import lights


def _paper_axes(az, el, tilt, dist):
  """Right, up, backward axes of the paper's Blender camera, mapped to our frame.

  Follows src/utilities_math.py of ShapeNet/JointEmbedding: camPosToQuaternion (the second definition),
  camRotQuaternion and q = quaternionProduct(camRot, camPos). Blender cameras look down local -Z with local +Y up.
  """

  def qmul(p, q):  # Hamilton product p * q, (w, x, y, z)
    a, b, c, d = p
    e, f, g, h = q
    return (
        a * e - b * f - c * g - d * h,
        a * f + b * e + c * h - d * g,
        a * g - b * h + c * e + d * f,
        a * h + b * g - c * f + d * e,
    )

  az, el = math.radians(az), math.radians(el)
  cam = np.array([dist * math.cos(az) * math.cos(el), dist * math.sin(az) * math.cos(el), dist * math.sin(el)])
  cx, cy, cz = cam / np.linalg.norm(cam)
  t = math.hypot(cx, cy)
  tx, ty = cx / t, cy / t
  yaw = math.acos(ty)
  if tx > 0:
    yaw = 2 * math.pi - yaw
  roll = math.acos(min(max(tx * cx + ty * cy, -1), 1))
  if cz < 0:
    roll = -roll
  c1, c3, s1, s3 = math.cos(yaw / 2), math.cos(roll / 2), math.sin(yaw / 2), math.sin(roll / 2)
  q_ypr = (c1 * c3, c1 * s3, s1 * s3, s1 * c3)  # quaternionFromYawPitchRoll with pitch = 0
  q_pos = qmul(q_ypr, (0.0, 0.0, math.sqrt(2) / 2, math.sqrt(2) / 2))  # its inline product is q2 * q1
  half = math.radians(tilt) / 2
  q_rot = (math.cos(half), cx * math.sin(half), cy * math.sin(half), cz * math.sin(half))
  w, x, y, z = qmul(q_rot, q_pos)
  rot = np.array(
      [
          [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
          [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
          [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
      ]
  )
  blender_to_ours = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]])  # (X, Y, Z) -> (x, y, z) = (X, Z, -Y)
  return (blender_to_ours @ rot).T  # rows: right, up, backward


def test_fov_is_the_papers_lens():
  assert camera.FOV_DEG == pytest.approx(49.134, abs=1e-3)
  assert camera.focal_length(128) == pytest.approx(64 / math.tan(math.radians(camera.FOV_DEG) / 2))
  assert camera.focal_length((540, 960)) == pytest.approx(35 / 32 * 960)  # f_px = lens / sensor * width


def test_az0_el0_is_on_plus_x_looking_at_origin():
  rotation, eye = camera.camera_frames(camera.Views.make(0.0, 0.0, 0.0, 3.0))
  np.testing.assert_allclose(eye[0], [3, 0, 0], atol=1e-12)
  np.testing.assert_allclose(rotation[0], [[0, 0, -1], [0, 1, 0], [1, 0, 0]], atol=1e-12)  # right, up, backward
  view = camera.look_at(camera.Views.make(0.0, 0.0, 0.0, 3.0))[0]
  np.testing.assert_allclose(view @ [0, 0, 0, 1], [0, 0, -3, 1], atol=1e-6)  # origin straight ahead


def test_az90_is_on_minus_z_and_el90_straight_above():
  _, eye = camera.camera_frames(camera.Views.make([90.0, 0.0], [0.0, 90.0], 0.0, 2.0))
  np.testing.assert_allclose(eye, [[0, 0, -2], [0, 2, 0]], atol=1e-12)
  rotation, _ = camera.camera_frames(camera.Views.make(0.0, 90.0))
  np.testing.assert_allclose(rotation[0, 2], [0, 1, 0], atol=1e-12)  # looks straight down
  np.testing.assert_allclose(rotation[0, 1], [-1, 0, 0], atol=1e-12)  # up = limit of d(position)/d(elevation)


def test_frames_match_the_papers_quaternions():
  rng = np.random.default_rng(0)
  az, el, tilt = rng.uniform(0, 360, 50), rng.uniform(-89, 89, 50), rng.normal(0, 30, 50)
  views = camera.Views.make(az, el, tilt, 3.0)  # float32 angles: feed the oracle the same values
  rotation, _ = camera.camera_frames(views)
  for i in range(50):
    expected = _paper_axes(float(views.azimuth[i]), float(views.elevation[i]), float(views.tilt[i]), 3.0)
    np.testing.assert_allclose(rotation[i], expected, atol=1e-9)


def test_frames_are_rotations_and_vectorize():
  views = camera.Views.make(np.arange(0, 360, 30), 20.0, 7.0, np.linspace(1, 4, 12))
  rotation, _ = camera.camera_frames(views)
  np.testing.assert_allclose(rotation @ rotation.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (12, 3, 3)), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(rotation), 1.0)
  view = camera.look_at(views)
  assert view.shape == (12, 4, 4) and view.dtype == np.float32
  for i in range(12):
    np.testing.assert_allclose(view[i], camera.look_at(views[i])[0])


def test_origin_projects_to_image_centre():
  views = camera.Views.make([0.0, 33.0, 200.0], [0.0, -40.0, 70.0], [0.0, 15.0, -80.0], [3.0, 2.0, 5.0])
  pixels, depth = camera.project(np.zeros((1, 3)), views, size=(96, 128))
  np.testing.assert_allclose(pixels[:, 0], [[64, 48]] * 3, atol=1e-4)
  np.testing.assert_allclose(depth[:, 0], [3, 2, 5], rtol=1e-6)


def test_offset_point_lands_where_the_fov_says():
  half = 3.0 * math.tan(math.radians(camera.FOV_DEG) / 2)  # half the image width at depth 3
  views = camera.Views.make(0.0, 0.0, 0.0, 4.0)  # points at x = 1 sit at depth 3
  points = [[1, half, 0], [1, 0, -half / 2], [1, -half / 4, half]]
  pixels, depth = camera.project(np.array(points), views, size=128)
  # +y is image up (row 0 at the top); -z is image right at az = 0.
  np.testing.assert_allclose(pixels[0], [[64, 0], [96, 64], [0, 80]], atol=1e-4)
  np.testing.assert_allclose(depth[0], [3, 3, 3], rtol=1e-6)


def test_positive_tilt_turns_image_content_clockwise():
  point = np.array([[0.0, 0.0, -0.5]])  # right of the centre at az = 0, tilt 0
  tilts = np.array([0.0, 30.0, 90.0, -90.0])
  pixels, _ = camera.project(point, camera.Views.make(0.0, 0.0, tilts, 3.0), size=128)
  offset = pixels[:, 0] - 64  # (column, row), row down
  radius = offset[0, 0]
  assert radius > 0 and abs(offset[0, 1]) < 1e-4
  theta = np.radians(tilts)
  # Clockwise on screen = from +column towards +row (down).
  np.testing.assert_allclose(offset, radius * np.stack([np.cos(theta), np.sin(theta)], -1), atol=1e-3)


def test_projection_matrix_agrees_with_project():
  views = camera.Views.make([10.0, 250.0], [25.0, -60.0], [5.0, 40.0], [3.0, 2.5])
  points = np.random.default_rng(1).uniform(-1, 1, (20, 3))
  size = (90, 120)
  pixels, depth = camera.project(points, views, size=size)
  clip = np.einsum("ij,njk,pk->npi", camera.perspective(size), camera.look_at(views), np.c_[points, np.ones(20)])
  ndc = clip[..., :3] / clip[..., 3:]
  np.testing.assert_allclose((ndc[..., 0] + 1) / 2 * 120, pixels[..., 0], atol=1e-3)
  np.testing.assert_allclose((1 - ndc[..., 1]) / 2 * 90, pixels[..., 1], atol=1e-3)  # GL rows run bottom-up
  np.testing.assert_allclose(clip[..., 3], depth, rtol=1e-5)


def test_pixel_directions_hit_their_pixel_centres():
  size = (6, 8)
  views = camera.Views.make(40.0, 10.0, 20.0, 3.0)
  rotation, eye = camera.camera_frames(views)
  directions = camera.pixel_directions(size) @ rotation[0]  # to world
  pixels, depth = camera.project((eye[0] + 2.0 * directions).reshape(-1, 3), views, size=size)
  rows, cols = np.mgrid[0:6, 0:8] + 0.5
  np.testing.assert_allclose(pixels[0], np.stack([cols.ravel(), rows.ravel()], -1), atol=1e-4)
  np.testing.assert_allclose(depth, 2.0, rtol=1e-6)


def test_paper_lfd_lights():
  lfd = lights.paper_lfd_lights()
  assert lfd.ambient == pytest.approx(0.35)
  assert lfd.positions.shape == (12, 3) and lfd.positions.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(lfd.positions, axis=1), 14.14, rtol=1e-6)
  np.testing.assert_allclose(lfd.energies, 2.0)
  heights = np.round(lfd.positions[:, 1] / (14.14 * math.sin(math.radians(60))), 6)
  assert sorted(set(heights.tolist())) == [-1.0, 0.0, 1.0]  # el -60 / 0 / 60 on the +Y axis
  assert any(np.allclose(p, [0, 0, -14.14], atol=1e-4) for p in lfd.positions)  # az 90 on -Z, like the camera
