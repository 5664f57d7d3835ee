"""The paper's frozen-backbone recipe, made fast: every dataset image's pooled backbone features, computed once.

With `config.model.frozen_backbone` the backbone never changes, so its features of an image never change either (the
paper precomputed R-CNN's pool5 into LMDB the same way). `build` runs the backbone over the train and validation
splits once and stores, in `workdir/features/<key>/`:
  <split>_features.npy           float32[N, F], row i = the split's example i
  <split>_features_flipped.npy   the same of the mirrored images (when `config.train.augment_flip`)
  <split>_labels.npz             the dataset's own labels of each row (shape index in the dataset, category, angles)
  <split>.json                   rows done (a killed build resumes), then `complete`
The key hashes the backbone (name, input size, normalization, architecture), the weight file's SHA-1 and the
dataset's config name, so another backbone, weight file or dataset gets another cache.

Training then reads rows, not images (`CachedBatches`): the head trains at head speed. The splits stay the dataset's
(train rows for training, validation rows for validation; the test split is never read). Augmentation: mirroring
stays exact, because the features of each mirrored image are cached too and each example picks one of its two rows
per step (with its azimuth and tilt mirrored, as for images); random shifts cannot be applied to pooled features
and are off (`config.train.augment_shift` is ignored, with a warning).
"""

import hashlib
import json
import os

from absl import logging
import jax
import ml_collections
import numpy as np
import tqdm

from jembed.backbones import registry
from jembed.data import naming
from jembed.data import pipeline
from jembed.workdir import files
from jembed.workdir import paths
from jembed.workdir import records

SPLITS = ("train", "validation")
LABELS = ("shape", "category", "azimuth", "elevation", "tilt")


def fingerprint(path: str) -> str:
  """SHA-1 of a file's bytes (a weight file: renaming or moving it keeps its cache)."""
  digest = hashlib.sha1()
  with open(os.path.expanduser(path), "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      digest.update(block)
  return digest.hexdigest()


def cache_dir(config: ml_collections.ConfigDict, workdir: str, spec) -> str:
  """`workdir/features/<backbone>-<key>`: the cache of this backbone, weight file and dataset (`spec`: ModelSpec)."""
  settings = dict(
      backbone=spec.backbone,
      image_size=spec.image_size,
      normalization=spec.normalization,
      widths=spec.widths,
      weights=fingerprint(registry.weights_path(config.model.backbone_weights, spec.backbone)),
      dataset=naming.config_name(config),
      flip=bool(config.train.augment_flip),
  )
  return paths.feature_cache(workdir, f"{spec.backbone}-{paths.cache_key(settings)}")


def build(config: ml_collections.ConfigDict, workdir: str, net, params, spec, *, batch_size: int = 64) -> str:
  """Computes (or finishes) the features of the train and validation splits; returns the cache folder.

  Args:
    net: the `EmbeddingNet`; params: its variables (the backbone's are used).
    spec: its `ModelSpec` (for the key).
    batch_size: images per forward pass (a fixed shape: one compilation).
  """
  folder = cache_dir(config, workdir, spec)
  os.makedirs(folder, exist_ok=True)
  fn = jax.jit(lambda p, im: net.apply(p, im, features_only=True))
  for split in SPLITS:
    try:
      source = pipeline.data_source(config, workdir, split)
    except (KeyError, ValueError) as e:
      logging.warning("no %s split (%s): nothing cached for it", split, e)
      continue
    _build_split(folder, split, source, fn, params, batch_size, flip=bool(config.train.augment_flip))
  return folder


def _build_split(folder, split, source, fn, params, batch_size, *, flip: bool) -> None:
  progress_path = os.path.join(folder, f"{split}.json")
  progress = json.load(open(progress_path)) if os.path.exists(progress_path) else {"done": 0}
  n = len(source)
  if progress.get("complete"):
    return
  outputs, labels = None, {
      k: np.zeros(n, np.float32 if k in ("azimuth", "elevation", "tilt") else np.int32) for k in LABELS
  }
  labels_path = os.path.join(folder, f"{split}_labels.npz")
  if progress["done"] and os.path.exists(labels_path):
    with np.load(labels_path) as f:
      labels = {k: f[k].copy() for k in LABELS}
  bar = tqdm.tqdm(total=n, initial=progress["done"], desc=f"backbone features ({split})", unit="img")
  for start in range(progress["done"], n, batch_size):
    rows = range(start, min(start + batch_size, n))
    images = []
    for i in rows:
      example = source[i]
      images.append(pipeline.decode_image(example["image"]))
      for k in LABELS:
        labels[k][i] = example["shape_index" if k == "shape" else k]
    images = np.stack(images + [images[-1]] * (batch_size - len(images)))  # padded: one shape, one compilation
    views = {"features": images} | ({"features_flipped": images[:, :, ::-1]} if flip else {})
    for name, batch in views.items():
      feats = np.asarray(fn(params, batch), np.float32)[: len(rows)]
      if outputs is None:
        outputs = {k: _open(folder, split, k, (n, feats.shape[1])) for k in views}
      outputs[name][start : start + len(rows)] = feats
    for out in outputs.values():
      out.flush()
    files.save_npz(labels_path, **labels)
    progress["done"] = start + len(rows)
    files.write_json(progress_path, progress)
    bar.update(len(rows))
  bar.close()
  files.write_json(progress_path, dict(progress, complete=True, rows=n))


def _open(folder, split, name, shape):
  path = os.path.join(folder, f"{split}_{name}.npy")
  if os.path.exists(path):
    return np.lib.format.open_memmap(path, mode="r+")
  return files.open_memmap(path, np.float32, shape)  # space reserved: a full disk is an error, not a SIGBUS


def load_split(config: ml_collections.ConfigDict, workdir: str, folder: str, split: str) -> dict[str, np.ndarray]:
  """A cached split as batch columns: 'features' (and 'features_flipped') float32[N, F] (memory-mapped), 'point',
  'shape_index', 'category_index', 'azimuth', 'elevation', 'tilt' (the shape points joined as the pipeline does).

  Raises:
    FileNotFoundError: the split is not cached (completely).
  """
  progress = os.path.join(folder, f"{split}.json")
  if not os.path.exists(progress) or not json.load(open(progress)).get("complete"):
    raise FileNotFoundError(f"no complete {split} features in {folder}")
  table = pipeline.join_points(
      pipeline.read_metadata(naming.dataset_dir(config, workdir)), records.load_shape_embedding(workdir)
  )
  with np.load(os.path.join(folder, f"{split}_labels.npz")) as f:
    labels = {k: f[k] for k in LABELS}
  shape = labels["shape"]
  out = dict(
      point=table.points[shape],
      shape_index=table.rows[shape].astype(np.int32),
      category_index=labels["category"].astype(np.int32),
      **{k: labels[k].astype(np.float32) for k in ("azimuth", "elevation", "tilt")},
  )
  for name in ("features", "features_flipped"):
    path = os.path.join(folder, f"{split}_{name}.npy")
    if os.path.exists(path):
      out[name] = np.load(path, mmap_mode="r")
  return out


class CachedBatches:
  """Global batches of cached rows, shuffled per epoch (seeded), with a checkpointable position.

  Epoch e visits the rows in `np.random.default_rng([seed, e]).permutation(N)` (or in order without `shuffle`);
  each host takes its consecutive slice of every global batch. With `num_epochs`, stops before a batch would run
  past that many epochs.
  """

  def __init__(
      self,
      columns: dict[str, np.ndarray],
      batch_size: int,
      mesh,
      *,
      seed: int = 0,
      shuffle: bool = True,
      num_epochs: int | None = None,
  ):
    self._columns, self._batch, self._mesh = columns, int(batch_size), mesh
    self._n = len(columns["point"])
    self._seed, self._shuffle, self._epochs = int(seed), shuffle, num_epochs
    self._position, self._perms = 0, {}

  def __iter__(self) -> "CachedBatches":
    return self

  def _order(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      self._perms = {
          epoch: np.random.default_rng([self._seed, epoch]).permutation(self._n)
          if self._shuffle
          else np.arange(self._n)
      }
    return self._perms[epoch]

  def __next__(self) -> dict[str, jax.Array]:
    if self._epochs is not None and self._position + self._batch > self._n * self._epochs:
      raise StopIteration
    pos = self._position + np.arange(self._batch)
    rows = np.concatenate([self._order(e)[pos[pos // self._n == e] % self._n] for e in np.unique(pos // self._n)])
    self._position += self._batch
    local = np.array_split(rows, jax.process_count())[jax.process_index()]
    return pipeline.to_global({k: np.asarray(v[local]) for k, v in self._columns.items()}, self._mesh)

  def get_state(self) -> dict:
    return {"position": int(self._position)}

  def set_state(self, state: dict) -> None:
    self._position = int(state["position"])
