"""The images an evaluation runs on: synthetic test images of held-out views (clean and cluttered) and real photos.

Synthetic sets (the paper's cross-view protocol, reference §4.1, on our own shapes): each evaluated shape gets
`config.eval.images_per_shape` new images (3, like ExactMatchChairs' three photos per model) drawn exactly as the
training images are (view histogram, random lamps, albedo, truncation; `data/synthesis.py`), but with image indices
past the training ones, `example_rng(seed, shape id, images_per_shape + j)`, so no view, light or crop was ever in
the dataset. When the dataset is split by shape, only its held-out test shapes get test images (still ranked among all
shapes), so the numbers say how the network does on shapes it never saw. Each render is finished twice from the
same generator state, so the two sets differ in nothing but the background:

* `synthetic_clean`: on white, like a product photo;
* `synthetic_clutter`: on a cluttered background (the config's background photos, or the built-in procedural scenes),
  always cluttered (the training mix had 10 % flat gray).

Photo sets (`photo_sets.py`) are real photos with their ground-truth shape, stretched to the training image size as
the paper stretched its crops to CaffeNet's input.

Sets are cached in `workdir/eval/sets/<name>.npz` next to the settings they were made with, so re-running the
evaluation (or the demo) renders nothing again unless those settings change.
"""

import copy
import dataclasses
import os

from absl import logging
import ml_collections
import numpy as np
import tqdm

from jembed.data import backgrounds as backgrounds_lib
from jembed.data import splits
from jembed.data import synthesis
from jembed.data import viewpoints
from jembed.evaluation import photo_sets
from jembed.render import backend
from jembed.render import camera
from jembed.shapes import manifest
from jembed.shapes import sources
from jembed.utils import config_checks as checks
from jembed.utils import images
from jembed.workdir import files
from jembed.workdir import paths

SYNTHETIC = ("synthetic_clean", "synthetic_clutter")
VALIDATION_SET = "synthetic_validation.npz"


@dataclasses.dataclass(frozen=True)
class ImageSet:
  """Query images with their ground truth.

  Attributes:
    name: the set's key in results.json ('synthetic_clean', 'synthetic_clutter', 'ikea', ...).
    images: uint8[Q, S, S, 3].
    shape_index: int32[Q] row of each image's shape in the shape embedding.
    labels: str[Q] a short label per image (file name, or shape id and view).
    views: float32[Q, 3] the true (azimuth, elevation, tilt) of each image in degrees (synthetic sets), or None.
    categories: str[Q] each image's true category, for sets that know only that (then `shape_index` is -1), or None.
  """

  name: str
  images: np.ndarray
  shape_index: np.ndarray
  labels: np.ndarray
  views: np.ndarray | None = None
  categories: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.shape_index)

  @property
  def category_only(self) -> bool:
    """Only the images' categories are known: scored by `evaluate.category_protocols`."""
    return self.categories is not None


class _White:
  """A `Backgrounds` stand-in for the clean set: white behind the object."""

  def draw(self, rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, bool, str]:
    del rng
    return np.full((h, w, 3), 255, np.uint8), False, "white"


def _key(settings: dict) -> str:
  return paths.cache_key(settings)


def _load_cached(path: str, key: str) -> dict | None:
  """The cached set at `path` if it was made with settings `key`; None (make it again) if not, or if it is damaged."""
  if not os.path.exists(path):
    return None
  try:
    cached = files.load_npz(path)
  except files.DamagedFile as e:
    logging.warning("%s; making the set again", e)
    return None
  return cached if str(cached.get("key")) == key else None


def evaluated_shapes(ids: np.ndarray, max_shapes: int, seed: int, candidates: np.ndarray | None = None) -> np.ndarray:
  """int[M] sorted rows of the shapes that get test images: all `candidates` (default: every shape), or `max_shapes`
  of them drawn at random.

  Retrieval always ranks among *all* shapes; the cap only bounds how many queries large collections make.
  """
  rows = np.arange(len(ids)) if candidates is None else np.asarray(candidates)
  if not max_shapes or len(rows) <= max_shapes:
    return rows
  return np.sort(np.random.default_rng([int(seed) % 2**63, 4242]).choice(rows, max_shapes, replace=False))


def held_out_shapes(config: ml_collections.ConfigDict, ids: np.ndarray, categories: np.ndarray) -> np.ndarray | None:
  """Rows of the shapes the dataset kept out of training (its 'test' split) when it is split by shape, else None.

  The assignment is the dataset's own (`splits.assign` on the embedded shapes, which are the ones the dataset could
  load), so a split-by-shape run is evaluated on shapes its network never saw, ranked among all shapes.

  Raises:
    ValueError: the dataset is split by shape but gives the test split no shape.
  """
  if config.data.split_by != "shape":
    return None
  per_image = splits.assign(
      [str(i) for i in ids],
      [str(c) for c in categories],
      1,
      tuple(config.data.split_fractions),
      "shape",
      int(config.seed),
  )
  rows = np.flatnonzero(per_image[:, 0] == splits.SPLITS.index("test"))
  if not len(rows):
    raise ValueError(
        "config.data.split_by='shape' but the test split has no shape: give " "config.data.split_fractions a test share"
    )
  return rows


def finish_twins(
    rgba: np.ndarray,
    params: synthesis.ImageParams,
    rng: np.random.Generator,
    clutter: backgrounds_lib.Backgrounds,
    settings: synthesis.SynthesisSettings,
) -> tuple[np.ndarray, np.ndarray]:
  """One render finished twice (`synthesis.finish_image`) from the same generator state: the same crop and tint,
  composited once on white and once on `clutter`. Returns (clean, cluttered), uint8[S, S, 3] each."""
  twin = copy.deepcopy(rng)
  return (
      synthesis.finish_image(rgba, params, rng, _White(), settings)[0],
      synthesis.finish_image(rgba, params, twin, clutter, settings)[0],
  )


def _render_synthetic(
    config: ml_collections.ConfigDict,
    refs: list,
    orientation: tuple[str, str],
    rows: dict[str, int],
    per_shape: int,
    photos: list[str],
    first: int | None = None,
) -> dict[str, list]:
  """Renders every ref's held-out views (image indices `first`, ...; by default the first the dataset did not use)
  and finishes each twice (white, clutter).

  The training images' appearance switches (random materials, distractors, JPEG) stay off here: the test images are
  the same whichever way the network was trained, so runs with and without them compare on one set.
  """
  settings = dataclasses.replace(
      synthesis.SynthesisSettings.from_config(config.data), appearance="tint", distractors=0.0, jpeg=0.0
  )
  renderer = backend.get_renderer(config.render.backend)
  photo_bg = (
      backgrounds_lib.PhotoBackgrounds(photos, settings.render_size, float(config.data.background_scale))
      if photos
      else None
  )
  clutter = backgrounds_lib.Backgrounds(
      photo_bg, clutter_ratio=1.0, procedural_share=float(config.data.get("procedural_share", 0.0))
  )
  if first is None:
    first = int(config.data.images_per_shape)  # image indices the dataset used are 0 .. first - 1
  out = {"synthetic_clean": [], "synthetic_clutter": [], "shape_index": [], "labels": [], "views": []}
  report = sources.LoadReport()
  shapes = sources.iter_shapes(refs, *orientation, report)
  for shape in tqdm.tqdm(shapes, total=len(refs), desc="rendering test images", unit="shape"):
    distribution = viewpoints.distribution_for(shape.category, config.data.views_dir, config.data.distance)
    rngs = [synthesis.example_rng(config.seed, shape.id, first + j) for j in range(per_shape)]
    params = [synthesis.sample_params(rng, distribution, settings) for rng in rngs]
    views = camera.Views.make(
        [p.azimuth for p in params],
        [p.elevation for p in params],
        [p.tilt for p in params],
        [p.distance for p in params],
    )
    rgba = renderer.render(
        shape.vertices,
        shape.faces,
        views,
        size=settings.render_size,
        lights=[p.lights for p in params],
        albedo=np.asarray([p.albedo for p in params], np.float32),
        antialias=settings.antialias,
    ).rgba
    for p, rng, view in zip(params, rngs, rgba):
      clean, cluttered = finish_twins(view, p, rng, clutter, settings)
      out["synthetic_clean"].append(clean)
      out["synthetic_clutter"].append(cluttered)
      out["shape_index"].append(rows[shape.id])
      out["labels"].append(f"{shape.id} az{p.azimuth:.0f} el{p.elevation:.0f}")
      out["views"].append((p.azimuth, p.elevation, p.tilt))
  for line in report.lines():
    logging.info("%s", line)
  return out


def _photos(config: ml_collections.ConfigDict) -> list[str]:
  return backgrounds_lib.list_photos(config.data.backgrounds) if config.data.backgrounds else []


def _sets_key(config: ml_collections.ConfigDict, shape_ids: np.ndarray, rows, photos: list[str], **extra) -> str:
  """The settings a synthetic set's images depend on (`extra`: how many per shape, or the first image index)."""
  return _key(
      dict(
          shapes=config.shapes.to_dict(),
          data=config.data.to_dict(),
          seed=config.seed,
          **extra,
          ids=[str(shape_ids[r]) for r in rows],
          photos=photos,
          backend=config.render.backend,
      )
  )


def _render_rows(config, workdir, shape_ids, rows, per_shape: int, photos, first: int | None, what: str) -> dict:
  """`_render_synthetic` of the embedding's shapes at `rows`, from the meshes the embedding was made from."""
  wanted = {str(shape_ids[r]): int(r) for r in rows}
  refs, up_axis, front = manifest.listed_shapes(workdir, wanted)
  out = _render_synthetic(config, refs, (up_axis, front), wanted, per_shape, photos, first)
  if not out["shape_index"]:
    raise ValueError(f"no {what} images: none of the embedded shapes could be loaded from config.shapes")
  return out


def synthetic_sets(
    config: ml_collections.ConfigDict, workdir: str, shape_ids: np.ndarray, shape_categories: np.ndarray | None = None
) -> list[ImageSet]:
  """The clean and the cluttered test set of `config` (rendered once, then cached in `workdir/eval/sets/`).

  Args:
    config: reads `shapes`, `render.backend`, `data` (synthesis settings, backgrounds, images_per_shape), `seed` and
      `eval` (images_per_shape, max_shapes).
    workdir: the run's folder.
    shape_ids: str[N] the shape embedding's ids; `ImageSet.shape_index` indexes them.

  Returns:
    [synthetic_clean, synthetic_clutter], the same views, shapes and crops in the same order.
  """
  per_shape = int(config.eval.images_per_shape)
  candidates = None if shape_categories is None else held_out_shapes(config, shape_ids, shape_categories)
  rows = evaluated_shapes(shape_ids, int(config.eval.max_shapes), int(config.seed), candidates)
  photos = _photos(config)
  key = _sets_key(config, shape_ids, rows, photos, per_shape=per_shape)
  path = paths.eval_sets(workdir, paths.SYNTHETIC_SETS)
  cached = _load_cached(path, key)
  if cached is None or "views" not in cached:  # sets cached before the views were kept are rendered again
    out = _render_rows(config, workdir, shape_ids, rows, per_shape, photos, None, "test")
    cached = dict(
        key=np.array(key),
        shape_index=np.asarray(out["shape_index"], np.int32),
        labels=np.asarray(out["labels"]),
        views=np.asarray(out["views"], np.float32),
        **{name: np.stack(out[name]) for name in SYNTHETIC},
    )
    files.save_npz(path, **cached)
  return [ImageSet(name, cached[name], cached["shape_index"], cached["labels"], cached["views"]) for name in SYNTHETIC]


def validation_set(config: ml_collections.ConfigDict, workdir: str, shape_ids: np.ndarray) -> ImageSet:
  """Synthetic images for choosing weights (verification's, `verify_method`), never the test images: one new view
  per shape (of at most `config.eval.max_shapes`, drawn with another seed), from the image index after the test
  sets', each finished on white and on clutter; cached in `workdir/eval/sets/`.

  Returns:
    The set 'synthetic_validation' (both twins, 2 images per shape) with its true views.
  """
  rows = evaluated_shapes(shape_ids, int(config.eval.max_shapes), int(config.seed) + 1)
  photos = _photos(config)
  first = int(config.data.images_per_shape) + int(config.eval.images_per_shape)
  key = _sets_key(config, shape_ids, rows, photos, first=first)
  path = paths.eval_sets(workdir, VALIDATION_SET)
  cached = _load_cached(path, key)
  if cached is None:
    out = _render_rows(config, workdir, shape_ids, rows, 1, photos, first, "validation")
    cached = dict(
        key=np.array(key),
        images=np.concatenate([np.stack(out[name]) for name in SYNTHETIC]),
        shape_index=np.tile(np.asarray(out["shape_index"], np.int32), 2),
        labels=np.tile(np.asarray(out["labels"]), 2),
        views=np.tile(np.asarray(out["views"], np.float32), (2, 1)),
    )
    files.save_npz(path, **cached)
  return ImageSet("synthetic_validation", cached["images"], cached["shape_index"], cached["labels"], cached["views"])


def photo_sets_of(config: ml_collections.ConfigDict, workdir: str, shape_ids: np.ndarray) -> list[ImageSet]:
  """The real-photo sets named by `config.eval.photo_set` / `photo_root` (none when it is empty).

  'ikea' gives three sets: all photos ('ikea'), and those of each half of the models ('ikea_tune', 'ikea_held_out';
  `photo_sets.ikea_half`). Photos whose ground-truth shape is not in the embedding (skipped meshes) are left out, with
  a warning.
  """
  kind = str(config.eval.get("photo_set", "") or "")
  if not kind:
    return []
  photos = photo_sets.load_photo_set(kind, config.eval.photo_root)
  if all(not p.shape_id for p in photos):
    return [_category_set(kind, photos, config, workdir)]
  size = int(config.data.image_size)
  key = _key(dict(kind=kind, root=config.eval.photo_root, size=size, n=len(photos), ids=list(map(str, shape_ids))))
  path = paths.eval_sets(workdir, f"{kind}.npz")
  cached = _load_cached(path, key)
  if cached is None:
    rows = {str(s): i for i, s in enumerate(shape_ids)}
    usable = [p for p in photos if p.shape_id in rows]
    if len(usable) < len(photos):
      logging.warning(
          "%d of %d photos show shapes that are not in the embedding; left out", len(photos) - len(usable), len(photos)
      )
    if not usable:
      raise ValueError(f"no photo of the {kind!r} set shows an embedded shape: is config.shapes the same collection?")
    read = np.stack(
        [images.read_photo(p.path, size) for p in tqdm.tqdm(usable, desc=f"reading {kind} photos", unit="photo")]
    )
    cached = dict(
        key=np.array(key),
        images=read,
        shape_index=np.asarray([rows[p.shape_id] for p in usable], np.int32),
        labels=np.asarray([os.path.basename(p.path) for p in usable]),
    )
    files.save_npz(path, **cached)
  whole = ImageSet(kind, cached["images"], cached["shape_index"], cached["labels"])
  if kind != "ikea":
    return [whole]
  halves = np.asarray([photo_sets.ikea_half(str(shape_ids[i])) for i in whole.shape_index])
  subsets = [(f"{kind}_{half}", halves == half) for half in photo_sets.IKEA_HALVES]
  return [whole] + [
      ImageSet(name, whole.images[m], whole.shape_index[m], whole.labels[m]) for name, m in subsets if m.any()
  ]


def _category_set(kind: str, photos: list, config: ml_collections.ConfigDict, workdir: str) -> ImageSet:
  """A photo set that knows only each photo's category (`photo_sets.folder_photos`): shape_index -1."""
  size = int(config.data.image_size)
  key = _key(dict(kind=kind, root=config.eval.photo_root, size=size, n=len(photos), categories_only=True))
  path = paths.eval_sets(workdir, f"{kind}_categories.npz")
  cached = _load_cached(path, key)
  if cached is None:
    read = np.stack(
        [images.read_photo(p.path, size) for p in tqdm.tqdm(photos, desc=f"reading {kind} photos", unit="photo")]
    )
    cached = dict(
        key=np.array(key),
        images=read,
        labels=np.asarray([os.path.basename(p.path) for p in photos]),
        categories=np.asarray([p.category for p in photos]),
    )
    files.save_npz(path, **cached)
  n = len(cached["labels"])
  return ImageSet(
      f"{kind}_categories", cached["images"], np.full(n, -1, np.int32), cached["labels"], None, cached["categories"]
  )


# The checks `launch` runs on this stage's config fields before any work (`jembed.utils.config_checks`).
CONFIG_RULES = {
    "eval.sets": checks.each(checks.choice(("synthetic",))),
    "eval.images_per_shape": checks.integer(1),
    "eval.max_shapes": checks.integer(0),
    "eval.photo_set": checks.choice(("",) + tuple(photo_sets.KINDS)),
    "eval.gallery_queries": checks.integer(0),
}
