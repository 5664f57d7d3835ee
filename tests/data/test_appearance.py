"""Parts of a mesh and random materials, distractors, JPEG re-encoding and background jitter."""

import io

import numpy as np
from PIL import Image
import pytest
import trimesh

from jembed.data import appearance
from jembed.data import backgrounds
from jembed.data import distractors
from jembed.data import synthesis
from jembed.data import viewpoints
from jembed.render import backend
from jembed.render import materials


def test_parts_are_connected_components_largest_first():
  big = trimesh.creation.icosphere(subdivisions=2)
  small = trimesh.creation.box((0.2, 0.2, 0.2))
  small.vertices += [3.0, 0.0, 0.0]
  third = trimesh.creation.box((0.1, 0.1, 0.1))
  third.vertices -= [3.0, 0.0, 0.0]
  mesh = trimesh.util.concatenate([small, big, third])
  parts = appearance.mesh_parts(mesh.vertices, mesh.faces)
  assert len(parts) == len(mesh.faces)
  np.testing.assert_array_equal(parts[:12], 1)  # the box: second largest
  np.testing.assert_array_equal(parts[12 : 12 + len(big.faces)], 0)  # the sphere: largest
  np.testing.assert_array_equal(parts[12 + len(big.faces) :], 2)
  # trimesh's own component split agrees on the grouping
  assert len(mesh.split(only_watertight=False)) == len(np.unique(parts))


def test_one_component_is_cut_into_spatial_parts():
  box = trimesh.creation.box((0.5, 2.0, 0.5)).subdivide().subdivide()
  parts = appearance.mesh_parts(box.vertices, box.faces)
  assert len(np.unique(parts)) == appearance.SPATIAL_PARTS
  centroids = box.triangles_center
  tops = [centroids[parts == p, 1].mean() for p in np.unique(parts)]
  assert np.ptp(tops) > 1.0  # the clusters split the tall box along its height


def test_palettes_cover_dark_and_light_and_share_sometimes():
  rng = np.random.default_rng(0)
  palettes = [appearance.sample_palette(rng, share=0.4) for _ in range(300)]
  lightness = np.concatenate([p.color.max(1) for p in palettes])
  assert lightness.min() < 0.01 and lightness.max() > 0.8  # near-black and near-white (linear)
  shared = np.mean([np.all(p.color == p.color[0]) for p in palettes])
  assert 0.3 < shared < 0.5
  patterns = np.concatenate([p.pattern for p in palettes])
  assert set(np.unique(patterns)) == set(range(6))  # every procedural texture, no 'own' without a mesh's own colours
  assert all(p.size == appearance.PALETTE_ROWS for p in palettes)


def test_random_appearance_renders_colour_and_switches_off_cleanly():
  shape_mesh = trimesh.creation.box((1.0, 0.6, 0.4))
  vertices = (shape_mesh.vertices / np.linalg.norm(shape_mesh.vertices, axis=1).max()).astype(np.float32)
  faces = np.asarray(shape_mesh.faces, np.int32)
  dist = viewpoints.paper_distribution("chair")
  renderer = backend.get_renderer("auto")
  settings = synthesis.SynthesisSettings(image_size=32, render_size=48, antialias=1, appearance="random", share=0.0)
  rngs = [np.random.default_rng(i) for i in range(6)]
  params = [synthesis.sample_params(r, dist, settings) for r in rngs]
  images = synthesis.synthesize(renderer, vertices, faces, params, rngs, backgrounds.Backgrounds(None, 0.0), settings)
  spread = [np.abs(im.astype(int) - im.mean(-1, keepdims=True)).mean() for im, _ in images]
  assert max(spread) > 5  # coloured objects (a tinted gray render with tint 0 would be gray)
  tint = synthesis.SynthesisSettings(image_size=32, render_size=48, antialias=1)
  a = synthesis.sample_params(np.random.default_rng(3), dist, tint)
  b = synthesis.sample_params(np.random.default_rng(3), dist, tint, pool_size=4)  # distractors 0: no draw
  assert a.palette is None and b.distractors == () and a.azimuth == b.azimuth and a.albedo == b.albedo


def test_distractors_are_pasted_where_they_were_placed():
  rgba = np.zeros((40, 40, 4), np.uint8)
  rgba[10:30, 15:25] = (200, 10, 10, 255)
  image = np.zeros((50, 100, 3), np.uint8)
  d = distractors.Distractor(0, 0.0, 0.0, materials.Palette.plain([1, 1, 1]), 0.5, (0.5, 0.25), False)
  out = distractors.paste(image, rgba, d)
  ys, xs = np.nonzero(out[..., 0] > 100)
  assert abs(ys.mean() - 25) < 1.5 and abs(xs.mean() - 25) < 1.5  # centred at (0.5 h, 0.25 w)
  assert abs((ys.max() - ys.min() + 1) - 25) <= 2  # 0.5 x the image's height
  assert abs((xs.max() - xs.min() + 1) - 12.5) <= 2  # the patch keeps its aspect ratio
  outside = distractors.Distractor(0, 0.0, 0.0, materials.Palette.plain([1, 1, 1]), 0.5, (0.5, 3.0), False)
  np.testing.assert_array_equal(distractors.paste(image, rgba, outside), image)


def test_distractor_draws_only_when_on():
  rng = np.random.default_rng(0)
  state = rng.bit_generator.state
  assert distractors.sample(rng, 0.0, 5) == () and rng.bit_generator.state == state
  draws = [distractors.sample(np.random.default_rng(i), 0.5, 3) for i in range(200)]
  share = np.mean([len(d) > 0 for d in draws])
  assert 0.4 < share < 0.6
  assert all(0 <= x.pool_index < 3 and 1 <= len(d) <= distractors.MAX_COUNT for d in draws if d for x in d)
  assert any(x.front for d in draws for x in d) and any(not x.front for d in draws for x in d)


@pytest.mark.parametrize("quality", [20, 90])
def test_jpeg_reencoding_matches_pillow(quality):
  image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
  ours = synthesis.reencode_jpeg(image, quality)
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
  np.testing.assert_array_equal(ours, np.asarray(Image.open(buffer).convert("RGB")))
  assert not np.array_equal(ours, image)


def test_background_jitter_varies_crops_and_is_off_by_default(tmp_path):
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(tmp_path / "a.png")
  photos = backgrounds.PhotoBackgrounds(backgrounds.list_photos(str(tmp_path)), 32, scale=0)
  plain = [photos.crop(np.random.default_rng(i), 16, 16)[0] for i in range(20)]
  jittered = [photos.crop(np.random.default_rng(i), 16, 16, jitter=1.0)[0] for i in range(20)]
  assert all(p.shape == j.shape == (16, 16, 3) for p, j in zip(plain, jittered))
  # the plain crops are pieces of the photo itself; the jittered ones are shrunk / mirrored / recoloured
  photo = np.asarray(Image.open(tmp_path / "a.png"))

  def in_photo(c):
    return any(np.array_equal(photo[y : y + 16, x : x + 16], c) for y in range(81) for x in range(113))

  assert all(in_photo(c) for c in plain[:3])
  assert not any(in_photo(c) for c in jittered[:3])


def test_own_and_mixed_palettes():
  dist = viewpoints.paper_distribution("chair")
  own_index = materials.PATTERNS.index("own")
  for mode, low, high in (("own", 1.0, 1.0), ("mixed", 0.35, 0.65), ("random", 0.0, 0.0)):
    settings = synthesis.SynthesisSettings(appearance=mode)
    palettes = [synthesis.sample_params(np.random.default_rng(i), dist, settings).palette for i in range(100)]
    share = np.mean([np.all(p.pattern == own_index) for p in palettes])
    assert low <= share <= high, (mode, share)
  # a mesh without its own colours falls back to the palette's random colours
  p = appearance.own(appearance.sample_palette(np.random.default_rng(0), share=1.0))
  base, _ = materials.albedo(
      np.zeros((4, 3), np.float32), np.zeros(4, np.int64), None, materials.Appearance(np.zeros(1, np.int32), (p,)), p
  )
  np.testing.assert_allclose(base, np.repeat(p.color[:1], 4, 0))
