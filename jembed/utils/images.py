"""The one way jembed reads an image file (query photos, photo sets, backgrounds, the web page): what a viewer shows is
what the network gets, or a clear error.

A viewer (a browser, an image app) shows a file after
  * its EXIF orientation (phone photos are stored sideways with a tag saying so),
  * scaling its bit depth to the screen's 8 bits (a 16-bit PNG's 65535 is white, its 32768 mid-gray — plain
    `convert('RGB')` clips every value above 255 to white instead),
  * compositing transparent pixels over the page (white here, as the paper's product shots),
  * decoding palette, CMYK, 1-bit and gray files to colours;
`to_rgb` does the same, for any mode Pillow opens. Animated files give their first frame.
"""

import os
import warnings

import numpy as np
from PIL import Image
from PIL import ImageOps

from jembed.utils import resample

# The largest image read (decoded): a 40 MP RGB photo is 120 MB in memory and seconds to stretch; a photo of one object
# needs far fewer pixels (the network sees ~128 x 128), and larger files are more likely mistakes or hostile.
MAX_PIXELS = 40_000_000
# Integer modes wider than 8 bits, with their full-scale value.
_WIDE_INTEGER = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535}
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _wide_to_8bit(image: Image.Image) -> Image.Image:
  """16-bit, 32-bit integer and float gray images as 8-bit 'L', scaled by their range as viewers do."""
  values = np.asarray(image)
  if image.mode in _WIDE_INTEGER:
    full = _WIDE_INTEGER[image.mode]
  elif image.mode == "I":  # Pillow opens 16-bit PNGs as 'I' too; a larger maximum means a 32-bit file
    full = 65535 if values.max(initial=0) <= 65535 else float(np.iinfo(np.int32).max)
  else:  # 'F': float images in [0, 1] are the common convention; larger values are taken as 0..255
    full = 1.0 if values.max(initial=0) <= 1.0 else 255.0
  scaled = np.clip(values.astype(np.float64) * (255.0 / full), 0, 255)
  return Image.fromarray(np.floor(scaled + 0.5).astype(np.uint8), "L")


def swaps_axes(image: Image.Image) -> bool:
  """Whether the file's EXIF orientation turns it by 90° (its width and height swap when shown)."""
  return image.getexif().get(0x0112, 1) in (5, 6, 7, 8)


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
  """An 'RGB' image of `image` as a viewer shows it (see the module docstring); transparency over `background`."""
  image = ImageOps.exif_transpose(image)
  if image.mode in _WIDE_INTEGER or image.mode in ("I", "F"):
    image = _wide_to_8bit(image)
  if image.mode in ("P", "PA") or image.info.get("transparency") is not None:
    image = image.convert("RGBA")
  if image.mode in ("RGBA", "LA", "La", "RGBa"):
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, background + (255,))
    image = Image.alpha_composite(canvas, rgba)
  return image.convert("RGB")


def open_image(path: str | os.PathLike) -> Image.Image:
  """The file at `path` as an 'RGB' PIL image (decoded now, so a broken file fails here).

  Raises:
    ValueError: the file is missing, empty, not an image, truncated or above `MAX_PIXELS` (the message names it and
      says why).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ValueError(f"{path!r} does not exist or is not a file")
  if os.path.getsize(path) == 0:
    raise ValueError(f"{path!r} is empty (0 bytes)")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS is ours, and lower
      with Image.open(path) as image:  # reads the header only: the size is known before any decoding
        width, height = image.size
        if width * height <= MAX_PIXELS:
          image.seek(0)
          return to_rgb(image)
  except Image.DecompressionBombError as e:
    raise ValueError(f"{path!r} is too large to decode safely ({e})") from None
  except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for non-images and broken files
    raise ValueError(f"{path!r} is not a readable image ({type(e).__name__}: {e})") from None
  raise ValueError(
      f"{path!r} is {width} x {height} pixels ({width * height / 1e6:.0f} MP), above the {MAX_PIXELS // 10**6} MP "
      "limit: downscale it (the network sees about 128 x 128 pixels)"
  )


def read_rgb(path: str | os.PathLike) -> np.ndarray:
  """uint8[H, W, 3] of `open_image(path)`."""
  return np.asarray(open_image(path))


def stretch_photo(image: Image.Image, size: int) -> np.ndarray:
  """uint8[size, size, 3]: the whole photo stretched to a square, as the training crops were (aspect not kept; the
  kernel of `resample.stretch`, independent of Pillow's version)."""
  return resample.stretch(np.asarray(image.convert("RGB")), size)


def read_photo(path: str | os.PathLike, size: int) -> np.ndarray:
  """`open_image` then `stretch_photo`: a photo file as a network input, uint8[size, size, 3]."""
  return stretch_photo(open_image(path), size)
