"""The one image reader: every mode and tag real files carry is read as a viewer shows it, or is a clear error."""

import struct
import zlib

import numpy as np
from PIL import Image
import pytest
from skimage import util

from jembed.utils import images


def _gradient(h=24, w=40):
  return np.linspace(0, 1, h * w).reshape(h, w)


def test_16bit_png_is_scaled_not_clipped(tmp_path):
  """The bug: a 16-bit PNG came out almost all white, because a plain mode conversion clips values above 255."""
  values = np.round(_gradient() * 65535).astype(np.uint16)
  path = tmp_path / "deep.png"
  Image.fromarray(values).save(path)
  rgb = images.read_rgb(path)
  assert rgb.shape == values.shape + (3,) and rgb.dtype == np.uint8
  expected = util.img_as_ubyte(values)  # skimage's 16 -> 8 bit conversion as the oracle
  np.testing.assert_allclose(rgb[..., 0].astype(int), expected.astype(int), atol=1)
  assert (rgb[..., 0] == rgb[..., 2]).all() and 100 < rgb.mean() < 155  # a gray ramp, not white


def test_exif_orientation_is_applied(tmp_path):
  pixels = (np.arange(6 * 10 * 3) % 251).astype(np.uint8).reshape(6, 10, 3)
  image = Image.fromarray(pixels)
  exif = image.getexif()
  exif[0x0112] = 6  # stored sideways: a viewer turns it 90° clockwise
  path = tmp_path / "phone.png"
  image.save(path, exif=exif)
  rgb = images.read_rgb(path)
  np.testing.assert_array_equal(rgb, np.rot90(pixels, k=-1))
  with Image.open(path) as im:
    assert images.swaps_axes(im)


def test_transparency_is_composited_over_white(tmp_path):
  rgba = np.zeros((8, 8, 4), np.uint8)
  rgba[..., 0] = 200
  rgba[..., 3] = np.linspace(0, 255, 8).astype(np.uint8)[None]
  path = tmp_path / "cutout.png"
  Image.fromarray(rgba, "RGBA").save(path)
  rgb = images.read_rgb(path).astype(float)
  a = rgba[..., 3] / 255.0
  np.testing.assert_allclose(rgb[..., 0], 200 * a + 255 * (1 - a), atol=1)
  np.testing.assert_allclose(rgb[..., 1], 255 * (1 - a), atol=1)
  assert rgb[:, 0].min() == 255  # fully transparent = the white page, not black


@pytest.mark.parametrize("mode", ["P", "L", "1", "CMYK", "LA", "I", "F"])
def test_other_modes_read_as_the_8bit_rgb_image(tmp_path, mode):
  base = Image.fromarray((_gradient(16, 16)[..., None] * [255, 128, 64]).astype(np.uint8))
  if mode == "I":
    image = Image.fromarray((np.asarray(base.convert("L")).astype(np.int32) * 257))  # 16-bit values in an 'I' image
  elif mode == "F":
    image = Image.fromarray(np.asarray(base.convert("L")).astype(np.float32) / 255)
  else:
    image = base.convert(mode)
  path = tmp_path / ("x.tif" if mode in ("I", "F", "CMYK") else "x.png")
  image.save(path)
  rgb = images.read_rgb(path)
  reference = np.asarray(base.convert("L" if mode in ("L", "1", "LA", "I", "F") else "RGB").convert("RGB"))
  assert rgb.shape == (16, 16, 3)
  error = np.abs(rgb.astype(int) - reference.astype(int))
  if mode == "1":  # 1-bit dithers: black and white only, the same brightness on average
    assert set(np.unique(rgb)) <= {0, 255} and abs(rgb.mean() - reference.mean()) < 20
  elif mode == "P":  # the palette's own colours (quantized and dithered when the file was written)
    np.testing.assert_array_equal(rgb, np.asarray(image.convert("RGB")))
  else:
    assert error.max() <= 1


@pytest.mark.parametrize(
    "content,message", [(b"", "is empty"), (b"not an image at all", "not a readable image"), (None, "does not exist")]
)
def test_bad_files_are_one_error_naming_the_file(tmp_path, content, message):
  path = tmp_path / "photo.jpg"
  if content is not None:
    path.write_bytes(content)
  with pytest.raises(ValueError, match=message) as e:
    images.open_image(path)
  assert "photo.jpg" in str(e.value)


def test_truncated_jpeg_is_an_error(tmp_path):
  path = tmp_path / "cut.jpg"
  Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(path, quality=90)
  path.write_bytes(path.read_bytes()[:400])
  with pytest.raises(ValueError, match="cut.jpg"):
    images.open_image(path)


def test_query_photos_go_through_the_same_reader(tmp_path):
  values = np.round(_gradient() * 65535).astype(np.uint16)
  path = tmp_path / "deep.png"
  Image.fromarray(values).save(path)
  np.testing.assert_array_equal(np.asarray(images.open_image(str(path))), images.read_rgb(path))


def _png_header(path, width: int, height: int) -> None:
  """A PNG that declares `width` x `height` (IHDR with its CRC) and holds no pixels: only a header is needed to know."""

  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_a_photo_above_40_megapixels_is_refused_before_decoding(tmp_path):
  """The 144-megapixel PNG that took 42 s and 7 GB: refused from its header, naming the file and the limit."""
  path = tmp_path / "huge.png"
  _png_header(path, 12_000, 12_000)
  with pytest.raises(ValueError, match=r"huge.png' is 12000 x 12000 pixels \(144 MP\), above the 40 MP limit"):
    images.read_rgb(path)
