"""The input pipeline: grain over `tfds.data_source` -> per-host batches -> global arrays on the ('data',) mesh.

  source      tfds.data_source on the ArrayRecord files (no builder code, no TensorFlow); PNGs left undecoded (a
              'raw' dataset's images come out as arrays: `config.data.image_format`, `tfds_builder`)
  shuffle     grain's global index shuffle, seeded, reshuffled every epoch (`repeat(reseed_each_epoch=True)`)
  host slice  the stream is cut into per-host batches of global_batch / process_count examples; batch k goes to
              host k mod process_count. So global batch j is elements [j B, (j + 1) B) of the stream, in order,
              however many processes share it (1 x 4 devices and 2 x 2 train on the same batches)
  decode      Pillow, in grain's read threads, or in `decode_processes` grain worker processes (each decodes whole
              batches; the order is the same); a raw dataset only copies the stored bytes
  join        the shape's embedding point from `shape_embedding.npz`, by shape id (see `join_points`)
  global      `jax.make_array_from_process_local_data` with NamedSharding(mesh, P('data'))
  prefetch    `input.device_prefetch` global batches are put on the devices ahead of the one training takes
              (2 = double-buffered: the host-to-device copy of the next batch overlaps the running step)

Images stay **uint8**: four times less host-to-device traffic than float32; the model normalizes them on the device
(`normalize_images` is the default it can call).

A batch is a dict of global jax.Arrays, leading axis sharded over 'data':
  image           uint8[B, H, W, 3]
  point           float32[B, D]   the shape's embedding point (the regression target)
  shape_index     int32[B]        the shape's row in shape_embedding.npz (so `points[shape_index] == point`)
  category_index  int32[B]        index into the dataset's sorted category names
  azimuth, elevation, tilt  float32[B] degrees
"""

import collections
import dataclasses
import glob
import io
import json
import os

from absl import flags
from array_record.python import array_record_module
import grain
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from jembed.data import naming
from jembed.utils import config_checks as checks
from jembed.workdir import checksums
from jembed.workdir import files
from jembed.workdir import paths
from jembed.workdir import provenance
from jembed.workdir import records

BATCH_KEYS = ("image", "point", "shape_index", "category_index", "azimuth", "elevation", "tilt")


@dataclasses.dataclass(frozen=True)
class PointTable:
  """The embedding points of the dataset's shapes.

  Attributes:
    points: float32[N, D], row = the dataset's shape index (NaN for shapes that have no images).
    rows: int32[N], each dataset shape's row in shape_embedding.npz (-1 for shapes without images).
  """

  points: np.ndarray
  rows: np.ndarray


def read_metadata(dataset_dir: str) -> dict:
  """The builder's `metadata.json` (shape ids, categories, skipped inputs, settings)."""
  path = os.path.join(dataset_dir, paths.DATASET_METADATA)
  try:
    with open(path) as f:
      return json.load(f)
  except ValueError as e:
    raise files.DamagedFile(
        f"{path} is damaged ({e}): run `python -m launch.build_dataset` with the same --config "
        "and --workdir to build the dataset again"
    ) from None


def require_dataset(config: ml_collections.ConfigDict, workdir: str) -> str:
  """The folder of the complete dataset `config` describes in `workdir`.

  Raises:
    FileNotFoundError: there is none; the message says which launcher builds it and, when the workdir holds datasets
      of other settings, how their settings differ from this config's.
  """
  path = naming.dataset_dir(config, workdir)
  if os.path.exists(os.path.join(path, "dataset_info.json")):
    return path
  build = f"run `python -m launch.build_dataset --workdir={workdir}` with this --config"
  others = sorted(
      glob.glob(
          os.path.join(naming.data_dir(workdir), naming.NAME, "*", naming.DATASET_VERSION, paths.DATASET_METADATA)
      )
  )
  mine = provenance.flatten(naming.content_settings(config))
  for other in others:
    try:
      theirs = provenance.flatten(read_metadata(os.path.dirname(other)).get("settings", {}))
    except (OSError, ValueError):
      continue
    raise FileNotFoundError(
        f"{workdir} has no dataset for this config: the one in {os.path.dirname(other)} was built "
        f"with other settings ({provenance.differences(theirs, mine)}); {build}, or train with "
        "the config it was built with"
    )
  raise FileNotFoundError(f"{workdir} has no dataset for this config: {build} first")


def damaged_shard(dataset_dir: str) -> str | None:
  """'<file> is damaged (why)' for the first file of the dataset that is not what the build wrote, else None.

  A dataset sealed by its build (`seal`: `digests.json`, the SHA-256 of every shard and JSON file) is checked
  against it (about 1 s per GB, once per process); an older one only by its shards' footers (each must hold the
  records dataset_info.json lists).
  """
  try:
    if checksums.verify_folder(dataset_dir, "it is not what the build wrote"):
      return None
  except checksums.Mismatch as e:
    return str(e).split(": it is not what", 1)[0]
  with open(os.path.join(dataset_dir, "dataset_info.json")) as f:
    info = json.load(f)
  for split in info.get("splits", []):
    lengths = [int(n) for n in split.get("shardLengths", [])]
    for i, expected in enumerate(lengths):
      path = os.path.join(dataset_dir, f"{naming.NAME}-{split['name']}.array_record-{i:05d}-of-{len(lengths):05d}")
      try:
        reader = array_record_module.ArrayRecordReader(path)
        found, why = reader.num_records(), ""
        reader.close()
      except (OSError, RuntimeError, ValueError) as e:
        found, why = -1, str(e).splitlines()[0][:160]
      if found != expected:
        return f"dataset shard {path} is damaged ({why or f'{found} of its {expected} records readable'})"
  return None


def seal(dataset_dir: str) -> None:
  """Writes `dataset_dir/digests.json`: the SHA-256 of every file of a finished dataset (`damaged_shard` checks it)."""
  checksums.write_folder_digests(dataset_dir)


def check_shards(dataset_dir: str) -> None:
  """Raises files.DamagedFile naming a damaged shard (`damaged_shard`) and the launcher that builds it again."""
  problem = damaged_shard(dataset_dir)
  if problem:
    raise files.DamagedFile(
        f"{problem}: run `python -m launch.build_dataset` with the same --config and --workdir "
        "to build the dataset again"
    )


def join_points(metadata: dict, embedding: records.ShapeEmbedding) -> PointTable:
  """Matches the dataset's shapes to the embedding's by id.

  Raises:
    ValueError: shapes that have images in the dataset are missing from the embedding (the message lists some and
      says what to rerun).
  """
  row_of = {str(shape_id): i for i, shape_id in enumerate(embedding.ids)}
  skipped = {shape_id for shape_id, _ in metadata.get("skipped_shapes", [])}
  ids = metadata["shape_ids"]
  missing = [i for i in ids if i not in row_of and i not in skipped]
  if missing:
    raise ValueError(
        f"{len(missing)} of the dataset's {len(ids)} shapes have no point in shape_embedding.npz "
        f"(e.g. {', '.join(missing[:5])}): the dataset and the shape embedding were made from different shapes. "
        "Run launch/embed_shapes.py and launch/build_dataset.py with the same config.shapes."
    )
  rows = np.array([row_of.get(i, -1) for i in ids], np.int32)
  points = np.where(rows[:, None] >= 0, np.asarray(embedding.points, np.float32)[np.maximum(rows, 0)], np.nan)
  return PointTable(points.astype(np.float32), rows)


def decode_image(stored) -> np.ndarray:
  """A dataset's stored image -> uint8[S, S, 3]: PNG bytes decoded (Pillow), a raw dataset's array as it is."""
  if isinstance(stored, (bytes, np.bytes_)):
    with Image.open(io.BytesIO(stored)) as im:
      return np.asarray(im.convert("RGB"))
  return np.asarray(stored, np.uint8)


class DecodeAndJoin(grain.transforms.Map):
  """A list of stored examples -> one batch of the numeric fields: images decoded, points joined, stacked."""

  def __init__(self, table: PointTable):
    self._table = table

  def one(self, example: dict) -> dict:
    shape = int(example["shape_index"])
    return dict(
        image=decode_image(example["image"]),
        point=self._table.points[shape],
        shape_index=np.int32(self._table.rows[shape]),
        category_index=np.int32(example["category"]),
        azimuth=np.float32(example["azimuth"]),
        elevation=np.float32(example["elevation"]),
        tilt=np.float32(example["tilt"]),
    )

  def map(self, examples: list[dict]) -> dict:
    decoded = [self.one(example) for example in examples]
    return {k: np.stack([d[k] for d in decoded]) for k in decoded[0]}


def data_source(config: ml_collections.ConfigDict, workdir: str, split: str):
  """The split's random-access source: PNGs left as bytes (decoded by `DecodeAndJoin`, in the pipeline's workers), a
  raw dataset's images as uint8 arrays (TFDS reads the stored bytes as the array: no decode).

  `tfds.data_source` finds the dataset by name in `workdir/tfds`; our builder class is not registered with TFDS, so
  this reads the files alone, as any other program could.
  """
  png = naming.image_format(config) == "png"
  return tfds.data_source(
      naming.tfds_name(config),
      split=split,
      data_dir=naming.data_dir(workdir),
      download=False,
      decoders={"image": tfds.decode.SkipDecoding()} if png else None,
  )


def host_dataset(
    source,
    table: PointTable,
    *,
    local_batch: int,
    seed: int,
    num_epochs: int | None = None,
    shuffle: bool = True,
    process_index: int = 0,
    process_count: int = 1,
    read_threads: int = 4,
    prefetch: int = 256,
    decode_processes: int = 0,
) -> grain.IterDataset:
  """This host's stream of local batches (numpy dicts, `BATCH_KEYS`).

  With a finite `num_epochs` the stream is cut to whole global batches first, so every host yields the same number
  of batches (a host that ran out early would hang the others in the next collective).
  """
  ds = grain.MapDataset.source(source)
  if shuffle:
    ds = ds.seed(seed).shuffle()
  ds = ds.repeat(num_epochs)  # reshuffles every epoch
  if num_epochs is not None:
    global_batch = local_batch * process_count
    ds = ds[: len(ds) - len(ds) % global_batch]
  # Slice whole local batches (not elements) so a global batch is a contiguous run of the stream (module docstring);
  # each host decodes only its own batches.
  ds = ds.batch(local_batch, drop_remainder=True, batch_fn=list)[process_index::process_count]
  ds = ds.map(DecodeAndJoin(table))
  iter_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch))
  if decode_processes > 0:
    if not flags.FLAGS.is_parsed():  # grain's workers read its absl flags; outside an absl app take their defaults
      flags.FLAGS.mark_as_parsed()
    iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=decode_processes))
  return iter_ds


def default_mesh() -> jax.sharding.Mesh:
  """The mesh set with `jax.set_mesh`, else a 1-D ('data',) mesh over all devices."""
  mesh = jax.sharding.get_mesh()
  if mesh is None or mesh.empty:
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
  return mesh


def to_global(local: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Per-host numpy batch -> global arrays, leading axis sharded over 'data' (each host supplies its slice)."""
  sharding = NamedSharding(mesh, P("data"))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


class GlobalBatches:
  """Iterator of global batches whose position can be checkpointed (grain's iterator state, a small dict).

  With `device_prefetch` = n > 0, n batches beyond the one returned are already on the devices
  (`make_array_from_process_local_data` only enqueues the copy, so the copy of the next batch runs while the caller's
  step does). The state is the position of the next batch the *caller* gets, not of grain's read-ahead: each batch
  in the buffer keeps the iterator state from before it was read, so a checkpoint resumes exactly.
  """

  def __init__(self, stream: grain.IterDataset, mesh: jax.sharding.Mesh, device_prefetch: int = 0):
    self._iterator = iter(stream)
    self._mesh = mesh
    self._ahead = int(device_prefetch)
    self._buffer: collections.deque[tuple[dict, dict[str, jax.Array]]] = collections.deque()

  def __iter__(self) -> "GlobalBatches":
    return self

  def _fill(self, n: int) -> None:
    while len(self._buffer) < n:
      state = self._iterator.get_state() if self._ahead else None
      try:
        batch = next(self._iterator)
      except StopIteration:
        return
      self._buffer.append((state, to_global(batch, self._mesh)))

  def __next__(self) -> dict[str, jax.Array]:
    self._fill(1 + self._ahead)
    if not self._buffer:
      raise StopIteration
    return self._buffer.popleft()[1]

  def get_state(self) -> dict:
    return self._buffer[0][0] if self._buffer else self._iterator.get_state()

  def set_state(self, state: dict) -> None:
    """Moves to a position `get_state` returned.

    Raises:
      ValueError: the position was saved with decode processes and this pipeline has none, or the other way round
        (grain's two iterators record positions differently).
    """
    self._buffer.clear()  # batches read ahead from the old position
    try:
      self._iterator.set_state(state)
    except KeyError as e:
      raise ValueError(
          f"the saved input position (keys {sorted(state)}) is not one this pipeline can resume from ({e} missing): "
          "it was saved with another config.input.decode_processes (0 and >0 record positions differently); "
          "resume with the value it was saved with"
      ) from None


def create_input_iterator(
    config: ml_collections.ConfigDict,
    workdir: str,
    split: str = "train",
    *,
    mesh: jax.sharding.Mesh | None = None,
    shuffle: bool = True,
    num_epochs: int | None = None,
    embedding_path: str | None = None,
) -> GlobalBatches:
  """Global batches of `split` of the dataset `config` built in `workdir`.

  Args:
    config: a jembed config (the dataset is found from `shapes`/`data`/`seed`; `input` sets the batching).
    workdir: the run's folder (holds tfds/ and shape_embedding.npz).
    split: 'train', 'validation' or 'test'.
    mesh: the ('data',) mesh; default `default_mesh()`.
    shuffle: False for evaluation (fixed order).
    num_epochs: None = `config.input.num_epochs` (0 = forever).
    embedding_path: default `workdir/shape_embedding.npz`.

  Returns:
    An iterator of dicts of global arrays (`BATCH_KEYS`, global batch `config.input.batch_size`) with
    `get_state`/`set_state` for checkpointing.

  Raises:
    FileNotFoundError: no dataset or no embedding for this config in `workdir` (the message says what to run).
    ValueError: the batch does not divide over the processes and devices, or shapes lack points.
  """
  mesh = mesh or default_mesh()
  batch_size, processes = int(config.input.batch_size), jax.process_count()
  if batch_size % mesh.size or batch_size % processes:
    raise ValueError(
        f"config.input.batch_size={batch_size} must divide over {processes} processes and " f"{mesh.size} devices"
    )
  path = require_dataset(config, workdir)
  table = join_points(
      read_metadata(path), records.ShapeEmbedding.load(embedding_path or paths.shape_embedding(workdir))
  )
  epochs = num_epochs if num_epochs is not None else (int(config.input.num_epochs) or None)
  stream = host_dataset(
      data_source(config, workdir, split),
      table,
      local_batch=batch_size // processes,
      seed=int(config.seed),
      num_epochs=epochs,
      shuffle=shuffle,
      process_index=jax.process_index(),
      process_count=processes,
      read_threads=int(config.input.read_threads),
      prefetch=int(config.input.prefetch),
      decode_processes=int(config.input.decode_processes),
  )
  return GlobalBatches(stream, mesh, int(config.input.get("device_prefetch", 0)))


def normalize_images(images: jax.Array) -> jax.Array:
  """uint8[..., 3] -> float32 in [-1, 1], on the device (what the pipeline leaves to the model)."""
  return images.astype(jnp.float32) * (2.0 / 255.0) - 1.0


# The checks `launch` runs on this stage's config fields before any work (`jembed.utils.config_checks`).
CONFIG_RULES = {
    "input.batch_size": checks.integer(1),
    "input.num_epochs": checks.integer(0),
    "input.read_threads": checks.integer(1),
    "input.prefetch": checks.integer(0),
    "input.decode_processes": checks.integer(0),
    "input.device_prefetch": checks.integer(0),
}
