"""What a trained run's embedding keeps, shown by feature inversion (launch/invert.py; the solver is `inversion`).

Three kinds of target, each written as one gallery PNG (a row per target: the input, then its inversion from each
chosen layer, each captioned with the feature loss reached) and summarised in `inversions.json`:

* photos (`invert_images`): the image's own features at each layer, the point included;
* shapes (`invert_shapes`): a shape's Sammon point as the target of the embedding layer, i.e. the image the network
  associates with the shape (no image made that point: the network has to find one);
* twins (`invert_twins`): the evaluation's synthetic test images, whose clean and cluttered versions are one render
  on two backgrounds. If the network purifies, the two inversions look alike: `twin_distances` measures how much
  (their pixel distance against the inputs', and against inversions of unrelated images from the same start).
"""

import dataclasses
import os

import ml_collections
import numpy as np
from PIL import Image
import tqdm

from jembed.api import embed
from jembed.api import inversion
from jembed.api import query
from jembed.evaluation import image_sets
from jembed.render import thumbnails
from jembed.utils import images
from jembed.utils import viz


@dataclasses.dataclass(frozen=True)
class Row:
  """One gallery row: a target's input picture and its inversion from each layer.

  Attributes:
    label: what the target is (file name, shape id, test image label).
    input: uint8[H, W, 3] the image (or shape view) the target came from.
    images: {layer: uint8[S, S, 3]} the inversions.
    feature_loss: {layer: float} ||phi(x) - phi0||^2 / ||phi0||^2 reached.
    start_loss: {layer: float} the same at the random start.
  """

  label: str
  input: np.ndarray
  images: dict[str, np.ndarray]
  feature_loss: dict[str, float]
  start_loss: dict[str, float]

  def summary(self) -> dict:
    return dict(label=self.label, feature_loss=self.feature_loss, start_loss=self.start_loss)


def _invert_rows(
    params: embed.Params,
    labels: list[str],
    inputs: np.ndarray,
    targets: dict[str, np.ndarray],
    settings: inversion.Settings,
    seed: int,
) -> list[Row]:
  """Inverts targets {layer: float32[B, F]} (one batch per layer) into one `Row` per input."""
  images, reached, start = {}, {}, {}
  for layer in tqdm.tqdm(targets, desc="inverting layers", unit="layer"):
    result = inversion.invert(params, targets[layer], layer, settings, seed)
    images[layer], reached[layer], start[layer] = result.images, result.feature_loss, result.start_loss
  return [
      Row(
          label,
          inputs[b],
          {k: v[b] for k, v in images.items()},
          {k: float(v[b]) for k, v in reached.items()},
          {k: float(v[b]) for k, v in start.items()},
      )
      for b, label in enumerate(labels)
  ]


def image_targets(params: embed.Params, images: np.ndarray, layers: tuple[str, ...]) -> dict[str, np.ndarray]:
  """{layer: float32[B, F]} the features of uint8[B, S, S, 3] images at each layer."""
  pixels = np.asarray(images, np.float32)
  return {layer: np.asarray(inversion.layer_features(params, pixels, layer)) for layer in layers}


def invert_images(
    model: embed.TrainedModel, paths: list[str], layers: tuple[str, ...], settings: inversion.Settings, seed: int
) -> list[Row]:
  """Each photo (stretched to the network's input, as `launch.query` does) inverted from each of `layers`."""
  size = int(model.params.spec.image_size)
  photos = np.stack([images.stretch_photo(images.open_image(p), size) for p in paths])
  labels = [os.path.basename(p) for p in paths]
  return _invert_rows(model.params, labels, photos, image_targets(model.params, photos, layers), settings, seed)


def shape_rows(model: embed.TrainedModel, shape_ids: list[str]) -> np.ndarray:
  """int[K] the rows of `shape_ids` in the shape embedding; ValueError naming an unknown id."""
  rows = {str(s): i for i, s in enumerate(model.shape_ids)}
  for shape_id in shape_ids:
    if shape_id not in rows:
      raise ValueError(
          f"--shape: unknown shape id {shape_id!r}; the workdir has {len(rows)} shapes, "
          f"e.g. {', '.join(list(rows)[:3])}"
      )
  return np.asarray([rows[s] for s in shape_ids])


def invert_shapes(
    workdir: str, model: embed.TrainedModel, shape_ids: list[str], settings: inversion.Settings, seed: int
) -> list[Row]:
  """Each shape's Sammon point inverted through the embedding layer; the input column is the shape's view."""
  rows = shape_rows(model, shape_ids)
  size = int(model.params.spec.image_size)
  thumbs = thumbnails.workdir_thumbnails(workdir, shape_ids, 2 * size)
  blank = np.full((2 * size, 2 * size, 3), 255, np.uint8)
  inputs = np.stack([thumbs.get(s, blank) for s in shape_ids])
  labels = [f"{s} ({model.shape_categories[r]})" for s, r in zip(shape_ids, rows)]
  return _invert_rows(model.params, labels, inputs, {inversion.POINT: model.shape_points[rows]}, settings, seed)


def pick_twins(
    config: ml_collections.ConfigDict, workdir: str, model: embed.TrainedModel, count: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """`count` test images spread evenly over the synthetic sets: (cluttered, clean) uint8[K, S, S, 3], labels."""
  clean, clutter = image_sets.synthetic_sets(config, workdir, model.shape_ids, model.shape_categories)
  picks = np.linspace(0, len(clean) - 1, min(count, len(clean))).round().astype(int)
  return clutter.images[picks], clean.images[picks], [str(clean.labels[i]) for i in picks]


def invert_twins(
    params: embed.Params,
    cluttered: np.ndarray,
    clean: np.ndarray,
    labels: list[str],
    layers: tuple[str, ...],
    settings: inversion.Settings,
    seed: int,
) -> tuple[list[Row], list[Row], dict[str, dict[str, float]]]:
  """Cluttered test images and their clean twins inverted from the same start at each layer, and how alike.

  Returns:
    (rows of the cluttered images, rows of their clean twins, {layer: distances}) with, per layer,
    'inputs': the RMS pixel difference of the cluttered and clean inputs (0..1 units), 'inversions': the same
    between their inversions, 'unrelated': between inversions of different clean images (image i against i - 1),
    'ratio': inversions / unrelated (< 1: a twin's inversion is nearer its twin's than a stranger's), and
    'feature_distance': ||phi(cluttered) - phi(clean)|| / ||phi(clean)||, the purification itself.
  """
  k = len(labels)
  both = np.concatenate([cluttered, clean])
  targets = image_targets(params, both, layers)
  rows = _invert_rows(params, labels + labels, both, targets, settings, seed)
  distances = {}
  for layer in layers:
    inv_a, inv_b = np.stack([r.images[layer] for r in rows[:k]]), np.stack([r.images[layer] for r in rows[k:]])
    unrelated = _rms(inv_b, np.roll(inv_b, 1, axis=0)) if k > 1 else float("nan")
    fa, fb = targets[layer][:k], targets[layer][k:]
    feature_distance = np.linalg.norm(fa - fb, axis=1) / np.maximum(np.linalg.norm(fb, axis=1), 1e-12)
    distances[layer] = dict(
        inputs=_rms(cluttered, clean),
        inversions=_rms(inv_a, inv_b),
        unrelated=unrelated,
        ratio=_rms(inv_a, inv_b) / unrelated if unrelated > 0 else float("nan"),
        feature_distance=float(np.mean(feature_distance)),
    )
  return rows[:k], rows[k:], distances


def _rms(a: np.ndarray, b: np.ndarray) -> float:
  """RMS difference of uint8 images in 0..1 units, averaged over the pairs (a[i], b[i])."""
  d = (np.asarray(a, np.float32) - np.asarray(b, np.float32)) / 255.0
  return float(np.mean(np.sqrt(np.mean(d.reshape(len(d), -1) ** 2, axis=1))))


def _fit(image: np.ndarray, thumb: int) -> np.ndarray:
  """Scales an image to thumb x thumb (the network's 48 px inversions would otherwise be stamps)."""
  return np.asarray(Image.fromarray(np.asarray(image)).convert("RGB").resize((thumb, thumb), Image.BILINEAR))


def stretch(image: np.ndarray) -> np.ndarray:
  """uint8 image with its 1st-99th percentile stretched to 0..255 (M&V display their inversions rescaled, too):
  deep layers' inversions are faint, and their structure is what the eye should see."""
  x = np.asarray(image, np.float32)
  lo, hi = np.percentile(x, [1, 99])
  return np.clip(np.round((x - lo) * 255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)


def write_gallery(rows: list[list[Row]], layers: tuple[str, ...], path: str, thumb: int = 112) -> str:
  """A PNG with one line per entry of `rows`: each Row's input and its inversions (`input | layer... ` repeated
  for each Row of the line, e.g. a cluttered image then its clean twin), captioned with the feature loss.

  The inversions are shown contrast-stretched (`stretch`); the distances and inversions.json use them as found."""
  lines = []
  for line in rows:
    images, captions = [], []
    for row in line:
      images.append(_fit(row.input, thumb))
      captions.append([row.label[:22], "input"])
      for layer in layers:
        if layer in row.images:
          images.append(_fit(stretch(row.images[layer]), thumb))
          captions.append([layer, f"loss {row.feature_loss[layer]:.3f}"])
    lines.append(viz.captioned_row(images, captions, thumb))
  sheet = Image.new("RGB", (max(im.width for im in lines), sum(im.height for im in lines)), "white")
  y = 0
  for im in lines:
    sheet.paste(im, (0, y))
    y += im.height
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  sheet.save(path)
  return path


def load(workdir: str) -> embed.TrainedModel:
  """The trained run of `workdir`, or FileNotFoundError saying which launcher to run first."""
  query.check_workdir(workdir)
  return embed.load(workdir)
