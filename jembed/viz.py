"""Pictures people look at instead of reading numbers: contact sheets of views, galleries, embedding maps."""

from typing import Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont


def on_white(rgba: np.ndarray) -> np.ndarray:
  """Composites straight (non-premultiplied) RGBA over white: uint8[..., 4] -> uint8[..., 3]."""
  rgb = rgba[..., :3].astype(np.float32)
  a = rgba[..., 3:4].astype(np.float32) / 255.0
  return np.round(rgb * a + 255.0 * (1.0 - a)).astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow < 10.1 has no sized default font.
    return ImageFont.load_default()


def image_grid(rows: Sequence[tuple[str, np.ndarray]], thumb: int = 64, label_width: int = 150,
               header: str | None = None, pad: int = 2) -> Image.Image:
  """A grid with one labelled row per entry.

  Args:
    rows: (label, images) pairs; images uint8[K, H, W, 3] (or [K, H, W] gray); rows may have different K.
    thumb: each image is resized to thumb x thumb (aspect ratio kept, centred on white).
    label_width: pixels reserved on the left for the row label.
    header: optional line of text above the grid.
    pad: pixels between images.

  Returns:
    An RGB PIL image.
  """
  cols = max((len(images) for _, images in rows), default=1)
  top = 22 if header else 0
  sheet = Image.new("RGB", (label_width + cols * (thumb + pad) + pad, top + len(rows) * (thumb + pad) + pad), "white")
  draw = ImageDraw.Draw(sheet)
  font = _font(12)
  if header:
    draw.text((pad + 2, 4), header, fill="black", font=font)
  for r, (label, images) in enumerate(rows):
    y = top + pad + r * (thumb + pad)
    draw.text((4, y + thumb // 2 - 7), label[:24], fill="black", font=font)
    for c, img in enumerate(images):
      tile = Image.fromarray(np.asarray(img)).convert("RGB")
      tile.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
      x = label_width + pad + c * (thumb + pad)
      sheet.paste(tile, (x + (thumb - tile.width) // 2, y + (thumb - tile.height) // 2))
  return sheet
