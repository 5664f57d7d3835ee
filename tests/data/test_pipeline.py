"""The grain input pipeline: global batches on the ('data',) mesh, the point join, seeded epochs, host slices."""

import collections

import jax
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from configs import tiny
from jembed.data import build
from jembed.data import naming
from jembed.data import pipeline
from jembed.workdir import records


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """A tiny dataset (6 shapes x 4 images, 24 px) and a made-up embedding of its shapes, in reverse order plus one."""
  workdir = str(tmp_path_factory.mktemp("pipeline"))
  config = tiny.get_config()
  config.shapes.limit = 1
  config.data.update(images_per_shape=4, image_size=24, sample_sheet=2, split_fractions=(0.75, 0.25, 0.0))
  config.input.batch_size = 4
  build.build_dataset(config, workdir, workers=1, keep_cache=True)  # (the raw test reuses the renders)
  ids = pipeline.read_metadata(naming.dataset_dir(config, workdir))["shape_ids"][::-1] + ["extra/000"]
  points = np.random.default_rng(0).normal(size=(len(ids), 5)).astype(np.float32)
  embedding = records.ShapeEmbedding(
      ids=np.array(ids),
      categories=np.array([i.split("/")[0] for i in ids]),
      points=points,
      stress=0.0,
      stress_curve=np.zeros(1, np.float32),
  )
  embedding.save(f"{workdir}/shape_embedding.npz")
  return config, workdir, embedding


def _source(config, workdir):
  return pipeline.data_source(config, workdir, "train")


def test_global_batches(built):
  config, workdir, embedding = built
  batches = list(pipeline.create_input_iterator(config, workdir, num_epochs=1))
  assert len(batches) == 18 // 4  # 18 training images, whole batches only
  batch = batches[0]
  assert set(batch) == set(pipeline.BATCH_KEYS)
  assert batch["image"].shape == (4, 24, 24, 3) and batch["image"].dtype == np.uint8
  assert batch["point"].shape == (4, 5) and batch["point"].dtype == np.float32
  for key in ("shape_index", "category_index"):
    assert batch[key].dtype == np.int32 and batch[key].shape == (4,)
  for key in ("azimuth", "elevation", "tilt"):
    assert batch[key].dtype == np.float32
  for value in batch.values():
    assert isinstance(value, jax.Array) and value.sharding.spec == P("data")
    assert len(value.sharding.device_set) == jax.device_count() == 4
  # The join: each point is the embedding's point of the example's shape, whatever the embedding's row order.
  for b in batches:
    rows = np.asarray(b["shape_index"])
    np.testing.assert_array_equal(np.asarray(b["point"]), embedding.points[rows])
    names = sorted({i.split("/")[0] for i in embedding.ids[:-1]})
    assert [names[c] for c in np.asarray(b["category_index"])] == [embedding.ids[r].split("/")[0] for r in rows]


def test_epochs_are_seeded_and_reshuffled(built):
  config, workdir, _ = built
  table = pipeline.join_points(
      pipeline.read_metadata(naming.dataset_dir(config, workdir)), records.load_shape_embedding(workdir)
  )

  def keys(seed, epochs=2):
    stream = pipeline.host_dataset(
        _source(config, workdir), table, local_batch=1, seed=seed, num_epochs=epochs, read_threads=1
    )
    return [(int(b["shape_index"][0]), float(b["azimuth"][0])) for b in stream]

  first = keys(0)
  assert len(first) == 36 and first == keys(0)
  epoch1, epoch2 = first[:18], first[18:]
  assert sorted(epoch1) == sorted(epoch2) and len(set(epoch1)) == 18  # every image once per epoch
  assert epoch1 != epoch2  # reshuffled
  assert keys(1) != first


def test_hosts_get_disjoint_slices(built):
  config, workdir, _ = built
  table = pipeline.join_points(
      pipeline.read_metadata(naming.dataset_dir(config, workdir)), records.load_shape_embedding(workdir)
  )
  seen = []
  for host in range(2):
    stream = pipeline.host_dataset(
        _source(config, workdir),
        table,
        local_batch=2,
        seed=3,
        num_epochs=1,
        process_index=host,
        process_count=2,
        read_threads=1,
    )
    seen.append([(int(i), float(a)) for b in stream for i, a in zip(b["shape_index"], b["azimuth"])])
  assert len(seen[0]) == len(seen[1]) == 8  # 18 cut to 16 = whole global batches of 2 x 2: equal counts per host
  assert not set(seen[0]) & set(seen[1])


def test_missing_points_and_missing_dataset_are_clear(built, tmp_path):
  config, workdir, embedding = built
  partial = records.ShapeEmbedding(
      ids=embedding.ids[2:],
      categories=embedding.categories[2:],
      points=embedding.points[2:],
      stress=0.0,
      stress_curve=np.zeros(1),
  )
  partial.save(str(tmp_path / "partial.npz"))
  with pytest.raises(ValueError, match=r"2 of the dataset's 6 shapes have no point .*same config.shapes"):
    next(pipeline.create_input_iterator(config, workdir, embedding_path=str(tmp_path / "partial.npz")))
  with pytest.raises(FileNotFoundError, match="launch.build_dataset"):
    next(pipeline.create_input_iterator(config, str(tmp_path)))
  other = tiny.get_config()
  other.data.image_size = 40  # another config: another dataset name, not silently the built one
  assert naming.config_name(other) != naming.config_name(config)
  with pytest.raises(FileNotFoundError):
    next(pipeline.create_input_iterator(other, workdir))
  config_bad = tiny.get_config()
  config_bad.shapes.limit = 1
  config_bad.data.update(images_per_shape=4, image_size=24, split_fractions=(0.75, 0.25, 0.0))
  config_bad.input.batch_size = 6
  with pytest.raises(ValueError, match="must divide"):
    next(pipeline.create_input_iterator(config_bad, workdir))


def test_skipped_shapes_need_no_point():
  metadata = dict(shape_ids=["a/1", "a/2", "b/1"], skipped_shapes=[["a/2", "empty mesh"]])
  embedding = records.ShapeEmbedding(
      ids=np.array(["b/1", "a/1"]),
      categories=np.array(["b", "a"]),
      points=np.eye(2, dtype=np.float32),
      stress=0.0,
      stress_curve=np.zeros(1),
  )
  table = pipeline.join_points(metadata, embedding)
  np.testing.assert_array_equal(table.rows, [1, -1, 0])
  np.testing.assert_array_equal(table.points[[0, 2]], [[0, 1], [1, 0]])
  assert np.isnan(table.points[1]).all()


def test_normalize_images():
  x = pipeline.normalize_images(np.array([0, 255, 127], np.uint8))
  np.testing.assert_allclose(np.asarray(x), [-1.0, 1.0, 127 / 127.5 - 1], atol=1e-6)
  assert x.dtype == np.float32


def test_split_counts_in_the_stream(built):
  config, workdir, _ = built
  counts = collections.Counter()
  for b in pipeline.create_input_iterator(config, workdir, "validation", shuffle=False, num_epochs=1):
    counts.update(np.asarray(b["shape_index"]).tolist())
  assert sum(counts.values()) == 4  # 6 validation images, one whole batch of 4


def test_follows_the_mesh_set_with_set_mesh(built):
  config, workdir, _ = built
  mesh = jax.make_mesh((2,), ("data",), devices=jax.devices()[:2])
  with jax.set_mesh(mesh):
    batch = next(pipeline.create_input_iterator(config, workdir))
  assert batch["image"].sharding.mesh == mesh and len(batch["image"].sharding.device_set) == 2


def test_position_can_be_checkpointed(built):
  config, workdir, _ = built
  iterator = pipeline.create_input_iterator(config, workdir)
  next(iterator), next(iterator)
  state = iterator.get_state()
  expected = next(iterator)
  resumed = pipeline.create_input_iterator(config, workdir)
  resumed.set_state(state)
  batch = next(resumed)
  for key in pipeline.BATCH_KEYS:
    np.testing.assert_array_equal(np.asarray(batch[key]), np.asarray(expected[key]))


def _batches(config, workdir, n: int) -> list[dict]:
  iterator = pipeline.create_input_iterator(config, workdir)
  return [jax.device_get(next(iterator)) for _ in range(n)]


def test_raw_images_stream_the_same_batches_as_png(built):
  """`data.image_format='raw'`: another dataset (its own name, so the two never mix), the same settings recorded,
  the same images decoded once at build time instead of on every read (from the png build's renders: none made
  again); the same batches, bit for bit."""
  config, workdir, _ = built
  raw = config.copy_and_resolve_references()
  raw.data.image_format = "raw"
  assert naming.config_name(raw) == naming.config_name(config) + "-raw"
  assert build.build_dataset(raw, workdir, workers=1).images_rendered == 0
  png_meta = pipeline.read_metadata(naming.dataset_dir(config, workdir))
  raw_meta = pipeline.read_metadata(naming.dataset_dir(raw, workdir))
  assert raw_meta["settings"] == png_meta["settings"] and raw_meta["image_format"] == "raw"
  stored = pipeline.data_source(raw, workdir, "train")[0]["image"]
  assert isinstance(stored, np.ndarray) and stored.dtype == np.uint8 and stored.shape == (24, 24, 3)
  for got, want in zip(_batches(raw, workdir, 5), _batches(config, workdir, 5), strict=True):
    for key in pipeline.BATCH_KEYS:
      np.testing.assert_array_equal(got[key], want[key])


def test_device_prefetch_and_decode_processes_change_nothing_but_speed(built):
  """Batches read ahead onto the devices, or decoded in grain worker processes: the same batches in the same order,
  and a checkpointed position that resumes at the batch the trainer would have taken next, not grain's read-ahead."""
  config, workdir, _ = built
  plain = config.copy_and_resolve_references()
  plain.input.update(device_prefetch=0, decode_processes=0)
  want = _batches(plain, workdir, 6)
  for prefetch, processes in ((3, 0), (2, 2)):
    other = config.copy_and_resolve_references()
    other.input.update(device_prefetch=prefetch, decode_processes=processes)
    iterator = pipeline.create_input_iterator(other, workdir)
    got = [jax.device_get(next(iterator)) for _ in range(2)]
    state = iterator.get_state()  # taken while 3 batches sit in the buffer
    resumed = pipeline.create_input_iterator(other, workdir)
    resumed.set_state(state)
    got += [jax.device_get(next(iterator)) for _ in range(4)]
    for a, b, c in zip(got, want, [None, None] + [jax.device_get(next(resumed)) for _ in range(4)], strict=True):
      for key in pipeline.BATCH_KEYS:
        np.testing.assert_array_equal(a[key], b[key])
        if c is not None:
          np.testing.assert_array_equal(c[key], b[key])
  mixed = pipeline.create_input_iterator(plain, workdir)
  with pytest.raises(ValueError, match="another config.input.decode_processes"):
    mixed.set_state(state)  # a position from worker processes, resumed without them
