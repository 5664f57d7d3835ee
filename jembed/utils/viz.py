"""Pictures people look at instead of reading numbers: contact sheets of views, galleries, embedding maps."""

import functools
import re
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


@functools.lru_cache(maxsize=8)  # loading the built-in font costs milliseconds; every caption would pay it
def _font(size: int) -> ImageFont.ImageFont:
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow < 10.1 has no sized default font.
    return ImageFont.load_default()


def image_grid(
    rows: Sequence[tuple[str, np.ndarray]],
    thumb: int = 64,
    label_width: int = 150,
    header: str | None = None,
    pad: int = 2,
) -> Image.Image:
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


def wrap(text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
  """`text` as lines no wider than `width` pixels in `font`: broken after spaces, '/' and '_' where it can be (shape
  ids like 'bookcase/035_EXPEDIT_expedit_bookcase_4x4' have no spaces), else between any two characters."""
  lines, line = [], ""
  for piece in re.findall(r"[^ /_]*[ /_]?", text):
    if not piece:
      continue
    if line and font.getlength(line + piece.rstrip()) > width:
      lines.append(line.rstrip())
      line = ""
    while font.getlength(piece.rstrip()) > width:  # a piece wider than the tile on its own: cut it
      cut = 1
      while cut < len(piece) and font.getlength(piece[: cut + 1]) <= width:
        cut += 1
      lines.append(piece[:cut])
      piece = piece[cut:]
    line += piece
  if line.rstrip() or not lines:
    lines.append(line.rstrip())
  return lines


def captioned_row(
    images: Sequence[np.ndarray],
    captions: Sequence[Sequence[str]],
    thumb: int = 160,
    frames: Sequence[str | None] | None = None,
    pad: int = 6,
) -> Image.Image:
  """Images side by side, each fitted into thumb x thumb on white, with lines of caption text under it (a line wider
  than the tile is wrapped, not cut: a shape id stays whole).

  Args:
    images: uint8[H, W, 3] (any sizes).
    captions: per image, the lines to print under it.
    thumb: the box each image is fitted into (aspect ratio kept).
    frames: per image, an outline colour or None.
    pad: pixels between and around the tiles.

  Returns:
    An RGB PIL image.
  """
  font = _font(12)
  captions = [[part for text in lines for part in wrap(text, font, thumb)] for lines in captions]
  lines = max((len(c) for c in captions), default=0)
  sheet = Image.new("RGB", (pad + len(images) * (thumb + pad), pad + thumb + 4 + 15 * lines + pad), "white")
  draw = ImageDraw.Draw(sheet)
  for i, image in enumerate(images):
    x = pad + i * (thumb + pad)
    tile = Image.fromarray(np.asarray(image)).convert("RGB")
    tile.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
    sheet.paste(tile, (x + (thumb - tile.width) // 2, pad + (thumb - tile.height) // 2))
    if frames and frames[i]:
      draw.rectangle([x - 2, pad - 2, x + thumb + 1, pad + thumb + 1], outline=frames[i], width=3)
    for j, text in enumerate(captions[i]):
      draw.text((x, pad + thumb + 4 + 15 * j), text, fill="black", font=font)
  return sheet


def stack_rows(rows: Sequence[Image.Image], pad: int = 6) -> Image.Image:
  """Images one under the other on white, left-aligned (e.g. several `captioned_row`s)."""
  sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows) + pad * (len(rows) - 1)), "white")
  y = 0
  for row in rows:
    sheet.paste(row, (0, y))
    y += row.height + pad
  return sheet
