"""The frozen-backbone feature cache: its rows are the backbone's features of the dataset's images (and of their
mirror images), a head step from cached features is the step the whole network takes on those images, and a frozen
run trains from the cache, validates on the validation split's rows and resumes."""

import json
import os

import jax
import numpy as np
import pytest

from jembed.backbones import feature_cache
from jembed.data import pipeline
from jembed.training import model as model_lib
from jembed.training import optimizer
from jembed.training import state as state_lib
from jembed.training import step_fns
from jembed.training import train
from jembed.workdir import paths

from conftest import tiny_train_config
from conftest import workdir_on

pytestmark = pytest.mark.usefixtures("fast_compiles")


def _frozen_config(weights: str):
  config = tiny_train_config()
  config.model.update(frozen_backbone=True, backbone_weights=weights, category_head=True, viewpoint_head=True)
  config.train.update(augment_flip=True, augment_shift=0.0)
  return config


def _weights(tmp_path, config) -> str:
  """The small backbone's random params as a weights file (a stand-in for a converted pretrained backbone)."""
  spec = model_lib.ModelSpec.from_config(config.model, dim=5, image_size=config.data.image_size, num_categories=6)
  backbone = model_lib.init_params(spec, jax.random.key(7))["params"]["backbone"]
  path = str(tmp_path / "backbone.npz")
  np.savez(path, **{f"{layer}/{name}": np.asarray(v) for layer, d in backbone.items() for name, v in d.items()})
  return path


def test_head_step_from_cached_features_equals_the_step_on_images(train_dataset, tmp_path):
  config = _frozen_config("")
  config.optax.name = "sgd"  # (Adam's first step divides by |g|: it would magnify rounding noise of tiny gradients)
  spec = model_lib.ModelSpec.from_config(config.model, dim=5, image_size=24, num_categories=6, point_scale=2.0)
  net, mesh = model_lib.EmbeddingNet(spec), step_fns.create_mesh()
  params = model_lib.init_params(spec, jax.random.key(0))
  tx, schedule = optimizer.make_optimizer(config, params)
  state = dict(step=np.int32(0), params=params, opt_state=tx.init(params))
  batch = next(pipeline.create_input_iterator(config, train_dataset, "train", mesh=mesh, shuffle=False))
  batch = jax.device_get(batch)
  features = lambda im: np.asarray(net.apply(params, im, features_only=True))
  cached = {k: v for k, v in batch.items() if k != "image"}
  cached.update(features=features(batch["image"]), features_flipped=features(batch["image"][:, :, ::-1]))
  weights = dict(embedding=1.0, category=0.1, viewpoint=0.1)
  rng = jax.random.key(3)
  copy = lambda s: jax.tree.map(np.array, s)
  on_images, m1 = step_fns.make_update_fn(net, tx, schedule, mesh, weights, flip=True)(copy(state), batch, rng)
  on_features, m2 = step_fns.make_update_fn(net, tx, schedule, mesh, weights, flip=True, from_features=True)(
      copy(state), cached, rng
  )
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), on_features["params"], on_images["params"]
  )
  np.testing.assert_allclose(m2["loss"], m1["loss"], rtol=1e-5)
  jax.tree.map(np.testing.assert_array_equal, on_features["params"]["params"]["backbone"], params["params"]["backbone"])


@pytest.mark.slow
def test_frozen_run_trains_from_the_cache_and_resumes(train_dataset, tmp_path):
  config = _frozen_config(_weights(tmp_path, tiny_train_config()))
  workdir = workdir_on(train_dataset, tmp_path, "frozen")
  final = train.train_and_evaluate(config, workdir)
  assert final["step"] == 6 and 0.0 <= final["val_top1"] <= 1.0
  (folder,) = [os.path.join(paths.feature_cache(workdir), f) for f in os.listdir(paths.feature_cache(workdir))]
  sizes = {split: len(pipeline.data_source(config, workdir, split)) for split in ("train", "validation")}
  for split, n in sizes.items():
    assert json.load(open(os.path.join(folder, f"{split}.json")))["complete"]
    assert np.load(os.path.join(folder, f"{split}_features_flipped.npy")).shape[0] == n
  # The cached rows are the network's features of the split's images, in the split's order.
  columns = feature_cache.load_split(config, workdir, folder, "validation")
  images = next(pipeline.create_input_iterator(config, workdir, "validation", shuffle=False, num_epochs=1))
  net_spec = state_lib.model_spec(config, workdir, np.zeros((6, 5), np.float32))[0]
  backbone = model_lib.load_backbone_weights(
      config.model.backbone_weights,
      jax.eval_shape(lambda: model_lib.init_params(net_spec, jax.random.key(0)))["params"]["backbone"],
  )
  want = model_lib.EmbeddingNet(net_spec).apply(
      {"params": {"backbone": backbone}}, np.asarray(images["image"]), features_only=True
  )
  np.testing.assert_allclose(columns["features"][: len(want)], want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(columns["shape_index"][: len(want)], np.asarray(images["shape_index"]))
  # A second run on the same workdir reuses the cache (and the finished checkpoint): nothing is recomputed.
  before = os.path.getmtime(os.path.join(folder, "train_features.npy"))
  config.train.total_steps = 8
  assert train.train_and_evaluate(config, workdir)["step"] == 8
  assert os.path.getmtime(os.path.join(folder, "train_features.npy")) == before


def test_cached_batches_cover_each_epoch_once_and_resume():
  columns = {"point": np.arange(12, dtype=np.float32)[:, None], "features": np.arange(12, dtype=np.float32)[:, None]}
  mesh = step_fns.create_mesh()
  it = feature_cache.CachedBatches(columns, 4, mesh, seed=1)
  epoch = np.concatenate([np.asarray(next(it)["features"])[:, 0] for _ in range(3)])
  assert sorted(epoch) == list(range(12)) and list(epoch) != list(range(12))
  state = it.get_state()
  a = np.asarray(next(it)["features"])
  it.set_state(state)
  np.testing.assert_array_equal(np.asarray(next(it)["features"]), a)
  once = feature_cache.CachedBatches(columns, 8, mesh, shuffle=False, num_epochs=1)
  assert [np.asarray(b["features"])[:, 0].tolist() for b in once] == [list(range(8))]
