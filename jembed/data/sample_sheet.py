"""`workdir/dataset_samples.png`: random examples of a built dataset with their labels printed under them.

It reads the dataset the way training does (`tfds.data_source` on the files, no builder code), so the sheet also shows
that what was written reads back.
"""

import os

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont
import tensorflow_datasets as tfds


def _font(size: int) -> ImageFont.ImageFont:
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow < 10.1 has no sized default font
    return ImageFont.load_default()


def read_examples(dataset_dir: str, n: int, seed: int = 0, split: str = "train") -> list[dict]:
  """n random decoded examples of `split` (fewer if it is smaller), category as its name."""
  builder = tfds.builder_from_directory(dataset_dir)
  source = builder.as_data_source(split=split)
  rng = np.random.default_rng(seed)
  indices = rng.choice(len(source), size=min(n, len(source)), replace=False)
  names = builder.info.features["category"].names
  examples = []
  for index in sorted(indices.tolist()):
    example = dict(source[index])
    example["category"] = names[int(example["category"])]
    examples.append(example)
  return examples


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def _label_lines(example: dict) -> list[str]:
  background = _text(example["background"]).replace("procedural:", "").replace("gray:", "gray ")
  return [
      _text(example["shape_id"]),
      f"{example['category']}  image {int(example['image_index'])}",
      f"az {float(example['azimuth']):.0f} el {float(example['elevation']):.0f} " f"tilt {float(example['tilt']):.0f}",
      ("clutter: " if example["clutter"] else "plain ") + background,
  ]


def _fit(font: ImageFont.ImageFont, text: str, width: int) -> str:
  """`text` cut (keeping its end, where ids and file names differ) to fit `width` pixels."""
  if font.getlength(text) <= width:
    return text
  while text and font.getlength(".." + text) > width:
    text = text[1:]
  return ".." + text


def draw_sheet(examples: list[dict], tile: int = 128, columns: int = 6, header: str = "") -> Image.Image:
  """A grid of the examples' images, each with 4 label lines (id, category and image index, az/el/tilt, background)."""
  font = _font(11)
  line, pad, top = 13, 6, (22 if header else 0)
  cell_w, cell_h = tile + pad, tile + 4 * line + pad
  rows = -(-len(examples) // columns)
  sheet = Image.new("RGB", (columns * cell_w + pad, top + rows * cell_h + pad), "white")
  draw = ImageDraw.Draw(sheet)
  if header:
    draw.text((pad, 5), header, fill="black", font=_font(12))
  for i, example in enumerate(examples):
    x, y = pad + (i % columns) * cell_w, top + pad + (i // columns) * cell_h
    image = Image.fromarray(np.asarray(example["image"])).resize((tile, tile), Image.NEAREST)
    sheet.paste(image, (x, y))
    for j, text in enumerate(_label_lines(example)):
      draw.text((x, y + tile + 1 + j * line), _fit(font, text, tile), fill="black", font=font)
  return sheet


def write_sample_sheet(dataset_dir: str, path: str, n: int = 24, seed: int = 0, split: str = "train") -> str:
  """Draws n random examples of the dataset at `dataset_dir` into the PNG `path`; returns `path`."""
  examples = read_examples(dataset_dir, n, seed, split)
  info = tfds.builder_from_directory(dataset_dir).info
  size = info.features["image"].shape[0]
  header = (
      f"{len(examples)} random '{split}' examples of {info.full_name} "
      f"({', '.join(f'{k} {v.num_examples}' for k, v in info.splits.items())}; {size}x{size} px)"
  )
  tile = max(size, 128)  # small test images are enlarged (nearest) so the labels fit under them
  draw_sheet(examples, tile=tile, header=header).save(path)
  return os.fspath(path)
