"""The synthetic training images as a TFDS dataset: `JembedImages`, a GeneratorBasedBuilder writing ArrayRecord files.

No TensorFlow is needed to write or read it: images are PNG bytes encoded with Pillow and handed to
`tfds.features.Image(encoding_format='png')`, which stores bytes as they are (only numpy arrays would go through TF's
encoder), and `tfds.data_source` decodes them with Pillow (or OpenCV when installed). With
`config.data.image_format='raw'` the images are stored decoded instead, as the S*S*3 bytes of the uint8 array
(`tfds.features.Tensor(..., encoding='bytes')`): no PNG decode on the training hosts, ArrayRecord's own zstd
decompression only (measured at 160 px: 4x the images per host core, 1.5x the disk: tests/benchmarks/input_pipeline.py).

Features of one example (one image):
  image        uint8[S, S, 3]           the composited, stretched image (PNG, or raw bytes)
  shape_index  int32                    row of the dataset's shape list, `metadata.json` 'shape_ids'
  shape_id     str                      e.g. 'chair/003' or '03001627/1a6f...'; points are joined by it at read time
  category     ClassLabel               the shape's category (names in the features, sorted)
  image_index  int32                    which of the shape's images (its seed)
  azimuth, elevation, tilt, distance    float32 view labels (degrees, world units)
  clutter      bool                     photo / procedural background (True) or flat gray (False)
  background   str                      the background's source: a photo file name, 'procedural:...' or 'gray:<v>'

The embedding point is **not** stored: the input pipeline joins it from `shape_embedding.npz` by shape id, so
re-running the shape embedding never requires re-rendering (see `pipeline.py`).

The BuilderConfig's name is `<source>-<hash of every setting that changes the images>` (`naming.py`), so a dataset
on disk always matches the config that asks for it and changing a setting builds a new one beside it.
Rendering happens in `_split_generators` through `render_cache` (parallel, resumable); the class is not registered
with TFDS (`skip_registration`), so readers always load the dataset from its files, never from this code.
"""

import os

from etils import epath
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jembed.data import backgrounds as backgrounds_lib
from jembed.data import naming
from jembed.data import pipeline
from jembed.data import render_cache
from jembed.data import splits
from jembed.data import synthesis
from jembed.shapes import sources

NAME = naming.NAME
DATASET_VERSION = naming.DATASET_VERSION


def builder_config(config: ml_collections.ConfigDict) -> tfds.core.BuilderConfig:
  """The BuilderConfig of the dataset `config` describes (name from `naming.config_name`)."""
  return tfds.core.BuilderConfig(
      name=naming.config_name(config),
      version=DATASET_VERSION,
      description="jembed synthetic images; the settings are in metadata.json",
  )


def image_feature(image_size: int, image_format: str = "png") -> tfds.features.FeatureConnector:
  """How the image is stored: PNG bytes ('png') or the uint8 array's own bytes ('raw')."""
  shape = (image_size, image_size, 3)
  if image_format == "raw":
    return tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES)
  return tfds.features.Image(shape=shape, encoding_format="png")


def stored_example(example: dict, image_format: str) -> dict:
  """A rendered example (its image PNG bytes, as the render cache holds it) as the dataset stores it."""
  return example if image_format == "png" else dict(example, image=pipeline.decode_image(example["image"]))


def features(image_size: int, categories: list[str], image_format: str = "png") -> tfds.features.FeaturesDict:
  scalar = tfds.features.Scalar
  return tfds.features.FeaturesDict(
      {
          "image": image_feature(image_size, image_format),
          "shape_index": scalar(np.int32),
          "shape_id": tfds.features.Text(),
          "category": tfds.features.ClassLabel(names=categories),
          "image_index": scalar(np.int32),
          "azimuth": scalar(np.float32),
          "elevation": scalar(np.float32),
          "tilt": scalar(np.float32),
          "distance": scalar(np.float32),
          "clutter": scalar(np.bool_),
          "background": tfds.features.Text(),
      }
  )


class JembedImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Synthetic images of the shapes of `config.shapes`, made as `config.data` says."""

  VERSION = tfds.core.Version(DATASET_VERSION)
  RELEASE_NOTES = {
      DATASET_VERSION: "Render-for-CNN images (views, lamps, truncation, backgrounds) with view labels; "
      "embedding points joined at read time.",
  }

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's own lookup of this file needs the `importlib_resources` backport, which tensorflow-datasets 4.9.10
    # uses but does not install; the answer is simply this module.
    return epath.Path(__file__)

  def __init__(
      self,
      *,
      config: ml_collections.ConfigDict,
      data_dir: str,
      cache_dir: str | None = None,
      workers: int = 1,
      **kwargs,
  ):
    """Lists the shapes (cheap, no mesh is read); rendering waits for `render` or `download_and_prepare`.

    Args:
      config: a jembed config (reads `shapes`, `data`, `render.backend`, `seed`).
      data_dir: the TFDS data dir, e.g. `workdir/tfds`.
      cache_dir: per-shape render cache; default `<data_dir>/../dataset_cache/<content name>` (one for both image
        formats: the renders are the same, so a png build with `keep_cache` lets the raw build skip rendering).
      workers: rendering processes.
      **kwargs: passed to `tfds.core.GeneratorBasedBuilder`.
    """
    self.jembed_config = config
    self.refs = sources.list_shapes(config.shapes)
    self.categories = sorted({ref.category for ref in self.refs})
    self.settings = synthesis.SynthesisSettings.from_config(config.data)
    tfds_config = builder_config(config)
    self.cache_dir = cache_dir or os.path.join(
        os.fspath(data_dir), os.pardir, "dataset_cache", naming.content_name(config)
    )
    self.workers = workers
    self.background_report = backgrounds_lib.BackgroundReport()
    self._photos = None
    super().__init__(data_dir=data_dir, config=tfds_config, file_format="array_record", **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="Synthetic training images of jembed (Li, Su et al. 2015, section 2; Render for CNN).",
        features=features(self.settings.image_size, self.categories, naming.image_format(self.jembed_config)),
        metadata=tfds.core.MetadataDict(),
        citation="Li, Su, Qi, Fish, Cohen-Or, Guibas. Joint Embeddings of Shapes and Images via CNN Image "
        "Purification. SIGGRAPH Asia 2015.",
    )

  def photos(self) -> tuple[str, ...]:
    """The usable background photos of `config.data.backgrounds` (listed and checked once); () = procedural."""
    if self._photos is None:
      folder = self.jembed_config.data.backgrounds
      self._photos = tuple(backgrounds_lib.list_photos(folder, self.background_report)) if folder else ()
    return self._photos

  def render_job(self) -> render_cache.RenderJob:
    data, shapes = self.jembed_config.data, self.jembed_config.shapes
    if data.views_dir and not os.path.isdir(os.path.expanduser(data.views_dir)):  # fail here, not in a worker
      raise FileNotFoundError(f"view distribution folder {data.views_dir!r} (config.data.views_dir) does not exist")
    return render_cache.RenderJob(
        settings=self.settings,
        seed=int(self.jembed_config.seed),
        images_per_shape=int(data.images_per_shape),
        renderer=self.jembed_config.render.backend,
        up_axis=shapes.get("up_axis", "y"),
        front=shapes.get("front", "auto"),
        views_dir=data.views_dir,
        distance=float(data.distance),
        photos=self.photos(),
        background_scale=float(data.background_scale),
        clutter_ratio=float(data.clutter_ratio),
        cache_dir=os.path.normpath(self.cache_dir),
        procedural_share=float(data.get("procedural_share", 0.0)),
        background_jitter=float(data.get("background_jitter", 0.0)),
        pool_refs=self.distractor_refs(),
    )

  def distractor_refs(self) -> tuple:
    """The shapes distractors are drawn from: `config.data.distractor_shapes` of the collection, a function of the
    seed and the shape list (few enough that each worker loads each of them once)."""
    data = self.jembed_config.data
    if not float(data.get("distractors", 0.0)) or len(self.refs) < 2:
      return ()
    n = min(int(data.get("distractor_shapes", 24)), len(self.refs))
    rng = np.random.default_rng(np.random.SeedSequence([int(self.jembed_config.seed), 21]))
    return tuple(self.refs[int(i)] for i in sorted(rng.choice(len(self.refs), size=n, replace=False)))

  def render(self) -> dict:
    """Renders every shape not in the cache yet (worker processes, a progress bar)."""
    return render_cache.render_to_cache(list(enumerate(self.refs)), self.render_job(), self.workers)

  def split_plan(self) -> splits.SplitPlan:
    data = self.jembed_config.data
    return splits.SplitPlan(
        ids=tuple(r.id for r in self.refs),
        categories=tuple(r.category for r in self.refs),
        images_per_shape=int(data.images_per_shape),
        fractions=tuple(data.split_fractions),
        by=data.split_by,
        seed=int(self.jembed_config.seed),
    )

  def set_metadata(self, headers: list[dict]) -> None:
    """`metadata.json`: the shapes, categories, settings, and what each shape's header says (skipped, renderer)."""
    data = self.jembed_config.data
    self.info.metadata.update(
        shape_ids=[r.id for r in self.refs],
        shape_categories=[r.category for r in self.refs],
        categories=self.categories,
        images_per_shape=int(data.images_per_shape),
        image_size=self.settings.image_size,
        split_by=data.split_by,
        split_fractions=list(data.split_fractions),
        renderers=sorted({h["renderer"] for h in headers if h["renderer"]}),
        skipped_shapes=[[h["id"], h["skipped"]] for h in headers if h["skipped"]],
        skipped_backgrounds=[list(s) for s in self.background_report.skipped],
        settings=naming.content_settings(self.jembed_config),
        image_format=naming.image_format(self.jembed_config),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    self.render()
    headers = [render_cache.read_header(self.cache_dir, i) for i in range(len(self.refs))]
    if all(h["skipped"] for h in headers):
      raise ValueError(f"none of the {len(self.refs)} shapes could be loaded; first: {headers[0]}")
    self.set_metadata(headers)
    assignment = self.split_plan().assignment(np.array([not h["skipped"] for h in headers]))
    present = splits.present(assignment, self.jembed_config.data.split_fractions)
    return {
        name: self._generate_examples(index, assignment) for index, name in enumerate(splits.SPLITS) if index in present
    }

  def _generate_examples(self, split_index: int, assignment: np.ndarray):
    """(key, example) of one split, shape by shape from the cache; TFDS shuffles them by key when writing."""
    image_format = naming.image_format(self.jembed_config)
    for shape_index in np.flatnonzero((assignment == split_index).any(1)):
      for example in render_cache.read_examples(self.cache_dir, int(shape_index)):
        if assignment[shape_index, example["image_index"]] == split_index:
          yield f"{shape_index:06d}_{example['image_index']:04d}", stored_example(example, image_format)
