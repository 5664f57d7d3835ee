"""Shared test set-up: forced CPU devices and the path to ../shared/data.

XLA_FLAGS must be set before jax is imported anywhere, so it lives here, at the top of the first file pytest loads.
"""

import os
import pathlib
import re
import subprocess
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import pytest  # noqa: E402
from scipy.spatial import distance as scipy_distance

from configs import tiny
from jembed.data import build
from jembed.data import naming
from jembed.data import pipeline
from jembed.workdir import records

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """../shared/data beside the checkout; skips the test with the reason when it is absent (a user's machine)."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real test data not found at {SHARED_DATA} (it sits beside the checkout in CI)")
  return SHARED_DATA


@pytest.fixture(scope="module")
def egl_renderer():
  """The EGL renderer, one context per test module; skips the test where no headless context opens."""
  try:
    from jembed.render import egl  # pylint: disable=g-import-not-at-top

    renderer = egl.EGLRenderer()
  except Exception as e:  # pylint: disable=broad-except
    pytest.skip(f"no EGL context ({type(e).__name__}: {e}); install libegl1 libegl-mesa0 libgl1-mesa-dri")
  yield renderer
  renderer.release()


@pytest.fixture(scope="module")
def fast_compiles():
  """Turns most XLA optimizations off for a test module of tiny models, where they cost more compile time than they
  save (the flax examples' tests do this too); modules opt in with `pytestmark = usefixtures("fast_compiles")`."""
  import jax  # pylint: disable=g-import-not-at-top  (after XLA_FLAGS is set above)

  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", before)


def run_launcher(launcher: str, *flags, timeout: float = 600, **env) -> subprocess.CompletedProcess:
  """`python -m launch.<launcher> <flags>` in the repository, as a user runs it (output captured, text)."""
  return subprocess.run(
      [sys.executable, "-m", f"launch.{launcher}", *map(str, flags)],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=timeout,
      env={**os.environ, "PYTHONPATH": str(REPO), **env},
  )


def run_demo(workdir, *flags) -> tuple[dict[str, str], str]:
  """`python -m launch.demo --config=configs/tiny.py` as a user runs it: ({what: path} of its closing list, stdout)."""
  result = run_launcher("demo", "--config=configs/tiny.py", f"--workdir={workdir}", *flags, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  # The closing list: "<what>  <path>" lines (TFDS prints its own lines before it).
  outputs = dict(m.groups() for m in re.finditer(r"^(\S.*?)\s{2,}(/\S+)$", result.stdout, re.MULTILINE))
  return outputs, result.stdout


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[pathlib.Path, dict[str, str], str]:
  """One finished demo on the tiny config (18 shapes, every stage), shared by the tests that need a trained run:
  (workdir, the demo's {what: path}, its stdout)."""
  workdir = tmp_path_factory.mktemp("tiny_run")
  outputs, stdout = run_demo(workdir)
  return workdir, outputs, stdout


# Fixtures that run a whole stage chain (or a training run): every test using one is an end-to-end test.
_END_TO_END_FIXTURES = {"tiny_run", "run", "workdir", "reference", "dataset", "train_dataset"}


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
  """Marks end-to-end tests `slow` (see pyproject.toml): those using a trained or built run, and those marked so."""
  for item in items:
    if _END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())):
      item.add_marker(pytest.mark.slow)


# The training tests' tiny dataset, shared with the frozen-backbone tests (tests/backbones).
@pytest.fixture(scope="session")
def train_dataset(tmp_path_factory):
  """The training tests' tiny dataset (6 shapes x 8 images, 24 px: 36 train, 12 validation) and a made-up 5-D
  embedding."""
  return _build_train_dataset(str(tmp_path_factory.mktemp("train_data")), tiny_train_config())


@pytest.fixture(scope="session")
def raw_train_dataset(tmp_path_factory):
  """`train_dataset`'s images and embedding, stored decoded (`config.data.image_format='raw'`)."""
  config = tiny_train_config()
  config.data.image_format = "raw"
  return _build_train_dataset(str(tmp_path_factory.mktemp("raw_train_data")), config)


def _build_train_dataset(folder: str, config) -> str:
  build.build_dataset(config, folder, workers=1)
  ids = pipeline.read_metadata(naming.dataset_dir(config, folder))["shape_ids"]
  save_made_up_embedding(ids, f"{folder}/shape_embedding.npz")
  return folder


def integer_points(n: int, d: int, seed: int) -> np.ndarray:
  """float32[n, d] in {-2, ..., 2}: many exactly equal distances, and duplicate rows (every product and sum of them
  is exact in float32, so equal distances are equal on every side and their order is the tie rule alone)."""
  return np.random.default_rng(seed).integers(-2, 3, (n, d)).astype(np.float32)


def knn_reference(
    queries: np.ndarray, database: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
  """The oracle of exact k-NN: float64 brute force, distances and the first k of a stable argsort (ties by ascending
  index); `exclude`, one database row per query, is never returned."""
  dist = scipy_distance.cdist(queries.astype(np.float64), database.astype(np.float64))
  if exclude is not None:
    dist[np.arange(len(queries)), exclude] = np.inf
  order = np.argsort(dist, axis=1, kind="stable")[:, :k]
  return np.take_along_axis(dist, order, axis=1), order


def save_made_up_embedding(ids, path: str, dim: int = 5) -> None:
  """A shape embedding of `ids` (category = the id's first part) at random points float32[N, dim] (seed 0)."""
  points = np.random.default_rng(0).normal(scale=3.0, size=(len(ids), dim)).astype(np.float32)
  records.ShapeEmbedding(
      ids=np.array(ids),
      categories=np.array([i.split("/")[0] for i in ids]),
      points=points,
      stress=0.0,
      stress_curve=np.zeros(1, np.float32),
  ).save(path)


def tiny_train_config():
  """configs/tiny.py shrunk to the training tests' dataset: 6 shapes x 8 images of 24 px, 6 steps."""
  config = tiny.get_config()
  config.shapes.limit = 1
  config.data.update(images_per_shape=8, image_size=24, sample_sheet=2, split_fractions=(0.75, 0.25, 0.0))
  config.model.update(dropout=0.5, category_head=True, viewpoint_head=True)
  config.input.update(batch_size=8, read_threads=1)
  config.train.update(total_steps=6, log_every=1, eval_every=3, ckpt_every=2, max_to_keep=5)
  return config


def workdir_on(dataset: str, tmp_path, name: str) -> str:
  """A fresh workdir `tmp_path/name` that links the dataset and embedding of `train_dataset`."""
  workdir = tmp_path / name
  workdir.mkdir()
  os.symlink(f"{dataset}/tfds", workdir / "tfds")
  os.symlink(f"{dataset}/shape_embedding.npz", workdir / "shape_embedding.npz")
  return str(workdir)
