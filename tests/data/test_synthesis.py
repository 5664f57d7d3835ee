"""One synthetic image: compositing, the jittered crop, lights, labels against an independent render, backgrounds."""

import shutil

import ml_collections
import numpy as np
from PIL import Image
import pytest

from jembed.data import backgrounds
from jembed.data import crops
from jembed.data import synthesis
from jembed.data import viewpoints
from jembed.embedding import hog_input
from jembed.render import backend
from jembed.render import lights as lights_lib
from jembed.shapes import sources


def test_composite_is_alpha_blending():
  rng = np.random.default_rng(0)
  fg = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
  bg = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
  alpha = rng.integers(0, 256, (7, 9), dtype=np.uint8)
  alpha[0, 0], alpha[0, 1] = 255, 0
  out = synthesis.composite(fg, alpha, bg)
  a = alpha[..., None] / 255.0
  np.testing.assert_array_equal(out, np.floor(a * fg + (1 - a) * bg + 0.5).astype(np.uint8))
  np.testing.assert_array_equal(out[0, 0], fg[0, 0])  # opaque: the object
  np.testing.assert_array_equal(out[0, 1], bg[0, 1])  # transparent: the background
  half = synthesis.composite(
      np.full((1, 1, 3), 200, np.uint8), np.full((1, 1), 51, np.uint8), np.full((1, 1, 3), 100, np.uint8)
  )
  assert half[0, 0, 0] == 120  # 0.2 * 200 + 0.8 * 100


def test_tight_box():
  alpha = np.zeros((10, 12), np.uint8)
  alpha[2:5, 3:9] = 255
  assert crops.tight_box(alpha) == (2, 4, 3, 8)
  assert crops.tight_box(np.zeros((4, 5), np.uint8)) == (0, 3, 0, 4)


def test_jitter_zero_keeps_the_tight_box():
  assert crops.jitter_box((10, 80, 20, 60), np.random.default_rng(0), 0.0, (100, 100)) == (10, 80, 20, 60)


def test_jitter_bounds_and_bias():
  """Boxes stay inside the image and non-empty; cuts respect the paper's resets; the bottom is cut."""
  rng = np.random.default_rng(1)
  cuts = []
  for _ in range(3000):
    height, width = rng.integers(20, 200, 2)
    top, left = rng.integers(0, height // 3), rng.integers(0, width // 3)
    bottom, right = rng.integers(top, height), rng.integers(left, width)
    h, w = bottom - top + 1, right - left + 1
    new = crops.jitter_box((top, bottom, left, right), rng, 0.05, (height, width))
    t, b, l, r = new
    assert 0 <= t <= b < height and 0 <= l <= r < width
    assert l - left <= 0.4 * w + 0.5 and right - r <= 0.4 * w + 0.5 and t - top <= 0.3 * h + 0.5
    assert b <= bottom + 0.005 * h + 0.5  # the bottom edge never moves out by more than 0.1 x ratio
    cuts.append(((l - left) / w, (bottom - b) / h, h))
  cuts = np.array(cuts)
  big = cuts[:, 2] > 100  # rounding hides sub-pixel cuts of small boxes
  assert abs(np.mean(cuts[big, 0])) < 0.01  # left jitter is centred on 0
  assert np.std(cuts[big, 0]) == pytest.approx(0.05, rel=0.2)
  assert np.mean(cuts[big, 1] > 0) > 0.8  # the bottom is cut most of the time
  assert np.mean(cuts[big, 1]) == pytest.approx(0.05 * (np.sqrt(2 / np.pi) - 0.1), abs=0.006)


def test_sample_lights_follow_the_paper():
  rng = np.random.default_rng(0)
  lights = [synthesis.sample_lights(rng) for _ in range(2000)]
  counts = np.array([len(l.energies) for l in lights])
  assert set(counts.tolist()) == {0, 1, 2, 3, 4}
  radii = np.concatenate([np.linalg.norm(l.positions, axis=1) for l in lights])
  assert radii.min() >= 8 - 1e-4 and radii.max() <= 20 + 1e-4
  energies = np.concatenate([l.energies for l in lights])
  assert np.mean(energies) == pytest.approx(2, abs=0.1) and np.std(energies) == pytest.approx(2, abs=0.1)
  assert (energies < 0).any()  # N(2, 2) can be negative, as in the paper
  ambient = np.array([l.ambient for l in lights])
  assert ambient.min() >= 0 and ambient.max() <= 1


def test_albedo_modes():
  rng = np.random.default_rng(0)
  gray = synthesis.SynthesisSettings(albedo="gray")
  assert synthesis.sample_surface(rng, gray)[0] == pytest.approx(0.48)
  np.testing.assert_array_equal(synthesis.sample_surface(rng, gray)[1], 1.0)
  albedo, tint = synthesis.sample_surface(rng, synthesis.SynthesisSettings(albedo="jitter", tint=0.3))
  assert tint.max() == pytest.approx(1.0) and tint.min() >= 0.7 / 1.3 - 1e-6 and 0.3 <= albedo <= 0.8 * 1.3
  with pytest.raises(ValueError, match="albedo"):
    synthesis.SynthesisSettings(albedo="texture")


def test_example_rng_depends_only_on_its_key():
  a = synthesis.example_rng(0, "chair/001", 3).random(4)
  np.testing.assert_array_equal(a, synthesis.example_rng(0, "chair/001", 3).random(4))
  assert not np.array_equal(a, synthesis.example_rng(0, "chair/001", 4).random(4))
  assert not np.array_equal(a, synthesis.example_rng(1, "chair/001", 3).random(4))
  assert not np.array_equal(a, synthesis.example_rng(0, "chair/002", 3).random(4))


class _Black:
  """A background source that is always black (so the object alone is compared)."""

  def draw(self, rng, h, w):
    del rng
    return np.zeros((h, w, 3), np.uint8), False, "black"


def _oracle(renderer, shape, azimuth, size, image_size):
  """Independent chain: another renderer, tight crop by np.nonzero, premultiplied on black, stretched per channel by
  the shape side's exact float64 MATLAB imresize (the data path's kernel, computed another way)."""
  out = renderer.render(
      shape.vertices,
      shape.faces,
      synthesis.camera.Views.make(azimuth, 20.0, 5.0, 3.0),
      size=size,
      lights=lights_lib.paper_lfd_lights(),
      albedo=0.48,
  )
  rgba = out.rgba[0].astype(np.float32)
  rows, cols = np.nonzero(rgba[..., 3])
  crop = rgba[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
  on_black = np.round(crop[..., :3] * crop[..., 3:] / 255).astype(np.uint8)
  return np.stack([hog_input.hog_input(on_black[..., c], image_size) for c in range(3)], -1).astype(np.float32)


def test_label_matches_the_renderers_own_view():
  """An image synthesized at azimuth 30 equals the embree renderer's own view at 30 deg, not at other azimuths."""
  cfg = ml_collections.ConfigDict(dict(source="catalog", categories=("chair",), limit=1))
  shape = sources.load_shapes(cfg)[0][0]
  settings = synthesis.SynthesisSettings(image_size=40, render_size=64, antialias=1, albedo="gray", truncation=0.0)
  params = synthesis.ImageParams(30.0, 20.0, 5.0, 3.0, lights_lib.paper_lfd_lights(), 0.48)
  ((image, info),) = synthesis.synthesize(
      backend.get_renderer("auto"),
      shape.vertices,
      shape.faces,
      [params],
      [np.random.default_rng(0)],
      _Black(),
      settings,
  )
  assert image.shape == (40, 40, 3) and image.dtype == np.uint8 and info["background"] == "black"
  oracle = backend.get_renderer("embree")
  errors = {
      az: np.abs(image.astype(np.float32) - _oracle(oracle, shape, az, 64, 40)).mean()
      for az in (30.0, 0.0, 60.0, 120.0, 210.0)
  }
  assert errors[30.0] < 2.0, errors
  assert min(errors[a] for a in (0.0, 60.0, 120.0, 210.0)) > 3 * errors[30.0] + 4.0, errors


def test_synthesized_images_are_deterministic_and_varied():
  cfg = ml_collections.ConfigDict(dict(source="catalog", categories=("car",), limit=1))
  shape = sources.load_shapes(cfg)[0][0]
  settings = synthesis.SynthesisSettings(image_size=32, render_size=48, antialias=1)
  dist = viewpoints.paper_distribution("car")
  renderer = backend.get_renderer("auto")

  def make():
    rngs = [synthesis.example_rng(0, shape.id, i) for i in range(4)]
    params = [synthesis.sample_params(r, dist, settings) for r in rngs]
    return synthesis.synthesize(
        renderer, shape.vertices, shape.faces, params, rngs, backgrounds.Backgrounds(None, 0.9), settings
    )

  first, second = make(), make()
  for (a, _), (b, _) in zip(first, second):
    np.testing.assert_array_equal(a, b)
  assert len({synthesis.encode_png(a) for a, _ in first}) == 4


def _write_photos(folder):
  """Two good photos and every kind of bad file."""
  folder.mkdir()
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(folder / "good.jpg")
  (folder / "sub").mkdir()
  Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / "sub" / "good2.png")
  Image.fromarray(rng.integers(0, 256, (60, 80), dtype=np.uint8)).save(folder / "gray.png")
  (folder / "noise.jpg").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
  data = (folder / "good.jpg").read_bytes()
  (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
  (folder / "empty.png").write_bytes(b"")
  (folder / "notes.txt").write_text("not a photo")


def test_bad_background_files_are_skipped_with_a_report(tmp_path):
  _write_photos(tmp_path / "bg")
  report = backgrounds.BackgroundReport()
  usable = backgrounds.list_photos(str(tmp_path / "bg"), report)
  assert [p.rsplit("/", 1)[-1] for p in usable] == ["good.jpg", "good2.png"]
  reasons = {path.rsplit("/", 1)[-1]: reason for path, reason in report.skipped}
  assert set(reasons) == {"gray.png", "noise.jpg", "truncated.jpg", "empty.png"}
  assert "grayscale" in reasons["gray.png"] and "unreadable" in reasons["noise.jpg"]
  assert "unreadable" in reasons["truncated.jpg"]
  assert report.lines()[-1] == report.summary() and "2 of 6" in report.summary()
  with pytest.raises(FileNotFoundError, match="config.data.backgrounds"):
    backgrounds.list_photos(str(tmp_path / "absent"))
  shutil.rmtree(tmp_path / "bg" / "sub")
  (tmp_path / "bg" / "good.jpg").unlink()
  with pytest.raises(ValueError, match="no usable background"):
    backgrounds.list_photos(str(tmp_path / "bg"))


def test_photo_crops_and_flat_gray(tmp_path):
  _write_photos(tmp_path / "bg")
  photos = backgrounds.PhotoBackgrounds(backgrounds.list_photos(str(tmp_path / "bg")), render_size=40, scale=1.5)
  rng = np.random.default_rng(0)
  crop, name = photos.crop(rng, 30, 50)
  assert crop.shape == (30, 50, 3) and name in ("good.jpg", "good2.png")
  big, _ = photos.crop(rng, 200, 90)  # larger than any photo at its working scale: the photo is enlarged
  assert big.shape == (200, 90, 3)
  source = backgrounds.Backgrounds(photos, clutter_ratio=0.9)
  draws = [source.draw(rng, 8, 8) for _ in range(1000)]
  gray = [d for d in draws if not d[1]]
  assert 0.07 < len(gray) / len(draws) < 0.13
  assert all(d[0].min() == d[0].max() and d[2] == f"gray:{d[0][0, 0, 0]}" for d in gray)


def test_procedural_backgrounds():
  images = [backgrounds.procedural_background(np.random.default_rng(i), 40, 30) for i in range(12)]
  for image, name in images:
    assert image.shape == (40, 30, 3) and image.dtype == np.uint8 and name.startswith("procedural:")
    assert image.std() > 2  # not flat
  again, _ = backgrounds.procedural_background(np.random.default_rng(3), 40, 30)
  np.testing.assert_array_equal(again, images[3][0])
  assert len({name.split("+")[0] for _, name in images}) == 3  # gradients, noise and tiles all occur


def test_context_widens_the_crop_around_the_object():
  rng = np.random.default_rng(3)
  tight = (40, 80, 50, 70)  # 41 rows x 21 columns
  for _ in range(50):
    top, bottom, left, right = crops.widen_box(tight, rng, 0.25, (128, 128))
    assert 0 <= top <= 40 and 80 <= bottom <= 127 and 0 <= left <= 50 and 70 <= right <= 127
    assert 40 - top <= 0.25 * 41 + 0.5 and right - 70 <= 0.25 * 21 + 0.5
  assert crops.widen_box(tight, rng, 0.25, (60, 60))[1] <= 59  # clamped to the render


def _disk_rgba(size: int = 48) -> np.ndarray:
  yy, xx = np.mgrid[:size, :size]
  alpha = np.where((yy - 23.5) ** 2 + (xx - 23.5) ** 2 <= 12**2, 255, 0).astype(np.uint8)
  return np.dstack([np.full((size, size, 3), 120, np.uint8), alpha])


def test_context_and_occluders_change_nothing_when_off():
  """Zero context and occluders draw nothing from the generator: an existing dataset's images stay the same."""
  params = synthesis.sample_params(
      np.random.default_rng(0), viewpoints.paper_distribution("chair"), synthesis.SynthesisSettings()
  )
  base = synthesis.SynthesisSettings(image_size=32, render_size=48, truncation=0.05)
  off = synthesis.SynthesisSettings(image_size=32, render_size=48, truncation=0.05, context=0.0, occluders=0.0)
  bg = backgrounds.Backgrounds(None, 1.0)
  a, _ = synthesis.finish_image(_disk_rgba(), params, np.random.default_rng(5), bg, base)
  b, _ = synthesis.finish_image(_disk_rgba(), params, np.random.default_rng(5), bg, off)
  np.testing.assert_array_equal(a, b)
  context = synthesis.SynthesisSettings(image_size=32, render_size=48, truncation=0.0, context=0.3)
  _, info = synthesis.finish_image(_disk_rgba(), params, np.random.default_rng(5), bg, context)
  top, bottom, left, right = info["box"]
  assert bottom - top + 1 > 25 or right - left + 1 > 25  # wider than the disk's 25-pixel tight box
  occluded = synthesis.SynthesisSettings(image_size=32, render_size=48, truncation=0.05, occluders=1.0)
  gray = backgrounds.Backgrounds(None, 0.0)  # flat gray: anything else on the image is an occluder
  c, _ = synthesis.finish_image(_disk_rgba(), params, np.random.default_rng(5), gray, occluded)
  d, _ = synthesis.finish_image(_disk_rgba(), params, np.random.default_rng(5), gray, base)
  assert np.mean(np.any(c != d, axis=-1)) > 0.02


def test_procedural_share_mixes_photos_and_scenes(tmp_path):
  Image.fromarray(np.full((64, 64, 3), 30, np.uint8)).save(tmp_path / "a.png")
  photos = backgrounds.PhotoBackgrounds(backgrounds.list_photos(str(tmp_path)), 32)
  mixed = backgrounds.Backgrounds(photos, clutter_ratio=1.0, procedural_share=0.5)
  names = [mixed.draw(np.random.default_rng(i), 16, 16)[2] for i in range(200)]
  share = np.mean([n.startswith("procedural:") for n in names])
  assert 0.38 < share < 0.62
  only_photos = backgrounds.Backgrounds(photos, clutter_ratio=1.0)
  assert not any(only_photos.draw(np.random.default_rng(i), 16, 16)[2].startswith("procedural:") for i in range(50))
