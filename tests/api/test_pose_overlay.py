"""The posed shape and its silhouette over a photo (jembed/api/pose_overlay.py): at the true pose the drawn silhouette
covers the object of a photo made from that very render, at another pose it does not."""

import numpy as np
from PIL import Image
import pytest
from scipy import ndimage
import trimesh

from jembed.api import pose_overlay
from jembed.render import backend

RED = (255, 0, 0)


@pytest.fixture(scope="module")
def mesh():
  """An L-shaped block (a long bar and an upright post), centred, radius about 1: no view looks like its mirror."""
  bar = trimesh.creation.box((1.6, 0.3, 0.4))
  post = trimesh.creation.box((0.3, 1.0, 0.4))
  post.apply_translation((0.65, 0.65, 0.0))
  both = trimesh.util.concatenate([bar, post])
  both.apply_translation(-both.bounds.mean(axis=0))
  both.apply_scale(1.0 / np.linalg.norm(both.vertices, axis=1).max())
  return both.vertices.astype(np.float32), both.faces.astype(np.int32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
  return float((a & b).sum() / max((a | b).sum(), 1))


def test_silhouette_at_the_true_pose_covers_the_object(mesh):
  vertices, faces = mesh
  renderer = backend.get_renderer("auto")
  pose = (35.0, 20.0, 8.0)
  crop = pose_overlay.render_object(vertices, faces, *pose, renderer=renderer)
  # The "photo": the object's tight crop stretched to 150 x 100 (the training crops' framing), dark on light gray.
  alpha = np.asarray(Image.fromarray(crop[..., 3]).resize((150, 100), Image.BILINEAR)) >= 128
  photo = np.where(alpha[..., None], 40, 200).astype(np.uint8).repeat(3, axis=2)
  overlay = pose_overlay.draw_pose_overlay(
      photo, vertices, faces, *pose, color=RED, opacity=1.0, outline=0, renderer=renderer
  )
  assert overlay.shape == photo.shape and overlay.dtype == np.uint8
  drawn = (overlay[..., 0] > 128) & (overlay[..., 1] < 128)
  assert _iou(drawn, alpha) > 0.97
  elsewhere = pose_overlay.draw_pose_overlay(
      photo, vertices, faces, pose[0] + 90.0, *pose[1:], color=RED, opacity=1.0, outline=0, renderer=renderer
  )
  assert _iou((elsewhere[..., 0] > 128) & (elsewhere[..., 1] < 128), alpha) < 0.8
  # The default drawing keeps the photo visible under the tint and outlines the silhouette in the opaque colour.
  tinted = pose_overlay.draw_pose_overlay(photo, vertices, faces, *pose, renderer=renderer)
  away = ~ndimage.binary_dilation(alpha | drawn, iterations=2)  # beyond the soft edge of the stretched mask
  assert away.sum() > 1000 and np.all(tinted[away] == photo[away])
  assert np.all(tinted[alpha & drawn] != photo[alpha & drawn])
  assert (tinted == pose_overlay.OVERLAY_COLOR).all(-1).sum() > 100


def test_posed_render_is_the_object_on_white(mesh):
  vertices, faces = mesh
  posed = pose_overlay.render_posed(vertices, faces, 90.0, 0.0, 0.0, size=128)
  assert posed.dtype == np.uint8 and posed.ndim == 3 and max(posed.shape[:2]) <= 128
  assert (posed[0] < 255).any() and (posed[:, 0] < 255).any()  # cropped to the object: it touches the edges
  assert (posed == 255).all(-1).any()  # and white around it


def test_bad_photo_says_what_it_must_be(mesh):
  with pytest.raises(ValueError, match=r"uint8\[H, W, 3\]"):
    pose_overlay.draw_pose_overlay(np.zeros((10, 10), np.uint8), *mesh, 0.0, 0.0, 0.0)


def test_signed_angle():
  np.testing.assert_allclose(pose_overlay.signed_angle([350.0, 10.0, 180.0, -190.0]), [-10.0, 10.0, -180.0, 170.0])
