"""Multi-process JAX on one machine: 2 processes x 2 CPU devices train the model of 1 process x 4 devices, checkpoint
together and resume after one process is killed; a failed start is an error, never a lone run.

Every process is `python -m launch.train` as a user starts it (explicit --coordinator_address on localhost), so the
launcher's start-up, the per-host input slices, the cross-process collectives (gloo on CPU) and orbax's multi-process
checkpoints are all exercised. Processes are always reaped (timeouts, kill in `finally`).
"""

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jembed.data import build
from jembed.data import naming
from jembed.data import pipeline
from jembed.training import checkpoints
from jembed.training import model as model_lib
from jembed.training import train
from jembed.utils import distributed

from conftest import save_made_up_embedding

# Tiny models: XLA's optimizations cost more compile time than they save; the launched processes turn them off too.
pytestmark = pytest.mark.usefixtures("fast_compiles")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOTAL = 16
# The tiny config with 6 shapes x 8 images of 24 px (36 train, 12 validation), dropout on (keyed by the example's
# place in the global batch, so the process layout must not change which example gets which mask).
CONFIG_PY = f"""
from configs import tiny

def get_config(arg=None):
  config = tiny.get_config()
  config.shapes.limit = 1
  config.data.update(images_per_shape=8, image_size=24, sample_sheet=2, split_fractions=(0.75, 0.25, 0.0))
  config.model.update(dropout=0.5, category_head=True)
  config.input.update(batch_size=8, read_threads=1)
  config.train.update(total_steps={TOTAL}, log_every=4, eval_every={TOTAL}, ckpt_every=4, max_to_keep=10)
  return config
"""
TIMEOUT_S = 240


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _load_config(path: str):
  spec = importlib.util.spec_from_file_location("distributed_test_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  """(config path, folder with the built dataset and a made-up 5-D shape embedding)."""
  folder = tmp_path_factory.mktemp("distributed")
  config_path = folder / "config.py"
  config_path.write_text(CONFIG_PY)
  config = _load_config(str(config_path))
  build.build_dataset(config, str(folder), workers=1)
  ids = pipeline.read_metadata(naming.dataset_dir(config, str(folder)))["shape_ids"]
  save_made_up_embedding(ids, str(folder / "shape_embedding.npz"))
  return str(config_path), str(folder)


def _workdir(dataset, tmp_path, name: str) -> str:
  workdir = tmp_path / name
  workdir.mkdir()
  os.symlink(f"{dataset[1]}/tfds", workdir / "tfds")
  os.symlink(f"{dataset[1]}/shape_embedding.npz", workdir / "shape_embedding.npz")
  return str(workdir)


@contextlib.contextmanager
def _train(dataset, workdir: str, processes: int, devices: int, *flags):
  """Starts `launch.train` in `processes` processes of `devices` CPU devices each; yields the Popen list and kills
  whatever still runs on the way out."""
  port = _free_port()
  env = {
      **os.environ,
      "PYTHONPATH": REPO,
      "JAX_PLATFORMS": "cpu",
      "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
      "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
  }
  procs = []
  try:
    for i in range(processes):
      multi = (
          [
              f"--coordinator_address=localhost:{port}",
              f"--num_processes={processes}",
              f"--process_id={i}",
              "--initialization_timeout=60",
          ]
          if processes > 1
          else []
      )
      procs.append(
          subprocess.Popen(
              [sys.executable, "-m", "launch.train", f"--config={dataset[0]}", f"--workdir={workdir}", *multi, *flags],
              cwd=REPO,
              env=env,
              stdout=subprocess.PIPE,
              stderr=subprocess.PIPE,
              text=True,
          )
      )
    yield procs
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
      p.communicate()


def _finish(procs) -> list[str]:
  """Waits for every process; their stdouts. Fails with the stderr tails of any that did not exit 0."""
  outs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
  bad = [
      f"process {i} exit {p.returncode}:\n{err[-2500:]}"
      for i, (p, (_, err)) in enumerate(zip(procs, outs))
      if p.returncode
  ]
  assert not bad, "\n".join(bad)
  return [out for out, _ in outs]


def _run(dataset, workdir, processes, devices) -> list[str]:
  with _train(dataset, workdir, processes, devices) as procs:
    return _finish(procs)


def _params(workdir: str, step: int) -> dict:
  ckpts = checkpoints.Checkpoints(workdir, read_only=True)
  try:
    spec = model_lib.ModelSpec.from_dict(ckpts.restore_meta(step)["model"])
    abstract = jax.eval_shape(lambda: model_lib.init_params(spec, jax.random.key(0)))
    return jax.device_get(
        ckpts.restore_params(
            step, checkpoints.abstract_like(abstract, jax.sharding.SingleDeviceSharding(jax.devices()[0]))
        )
    )
  finally:
    ckpts.close()


def _losses(workdir: str) -> list[tuple[int, float]]:
  with open(f"{workdir}/metrics.jsonl") as f:
    return [(r["step"], r["train_loss"]) for r in map(json.loads, f) if "train_loss" in r]


def _assert_same(got: dict, want: dict) -> None:
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
  """The run of 1 process x 4 devices (this one: conftest forces 4 CPU devices), uninterrupted: its workdir.

  (1 x 1, 1 x 2 and 1 x 4 devices taking the same steps is test_train's `test_same_step_on_one_two_and_four_devices`.)
  """
  assert jax.device_count() == 4 and jax.process_count() == 1
  workdir = _workdir(dataset, tmp_path_factory.mktemp("reference"), "1x4")
  train.train_and_evaluate(_load_config(dataset[0]), workdir)
  return workdir


@pytest.mark.slow
def test_two_processes_killed_and_resumed_train_the_model_of_one(dataset, reference, tmp_path):
  """2 processes x 2 devices, process 1 killed after a checkpoint, both restarted: the model of 1 x 4 devices."""
  workdir = _workdir(dataset, tmp_path, "2x2")
  ckpt_dir = checkpoints.directory(workdir)
  with _train(dataset, workdir, 2, 2) as procs:
    deadline = time.time() + TIMEOUT_S
    while not os.path.isdir(os.path.join(ckpt_dir, "4")):  # orbax renames a checkpoint into place when complete
      assert time.time() < deadline and all(p.poll() is None for p in procs), procs[0].stderr.read()[-2500:]
      time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)  # process 1 dies mid-run; process 0 cannot go on alone
    with contextlib.suppress(subprocess.TimeoutExpired):
      procs[0].wait(timeout=15)
  killed_at = checkpoints.Checkpoints(workdir, read_only=True).latest_step()
  assert 4 <= killed_at < TOTAL, f"the run was not killed mid-way (latest checkpoint {killed_at})"
  outs = _run(dataset, workdir, 2, 2)  # both processes started again with the same command: they resume

  want = _params(reference, TOTAL)
  _assert_same(_params(workdir, TOTAL), want)
  assert not np.allclose(_params(workdir, 4)["params"]["fc6"]["kernel"], want["params"]["fc6"]["kernel"])
  # Written once: the log has the reference's lines (not one copy per process), the loss curve exists, and only
  # process 0 prints the closing summary.
  two, one = _losses(workdir), _losses(reference)
  assert [s for s, _ in two] == [s for s, _ in one] == [4, 8, 12, 16]
  np.testing.assert_allclose([l for _, l in two], [l for _, l in one], rtol=1e-5)
  assert os.path.exists(f"{workdir}/loss_curve.png")
  assert f"step {TOTAL}:" in outs[0] and "step" not in outs[1]


def test_incomplete_or_failed_start_is_an_error_not_a_lone_run(tmp_path):
  with pytest.raises(distributed.DistributedError, match="missing --num_processes, --process_id"):
    distributed.initialize(distributed.Settings(coordinator_address="localhost:1"))
  with pytest.raises(distributed.DistributedError, match=r"--process_id=2 is not in \[0, --num_processes=2\)"):
    distributed.initialize(distributed.Settings(coordinator_address="localhost:1", num_processes=2, process_id=2))
  # --multihost where no cluster is detected: the launcher stops with the cause before it touches the data.
  result = subprocess.run(
      [sys.executable, "-m", "launch.train", "--config=configs/tiny.py", f"--workdir={tmp_path}", "--multihost"],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=120,
      env={**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"},
  )
  assert result.returncode != 0
  assert "multi-process start failed (no cluster environment detected" in result.stderr
  assert not os.path.exists(tmp_path / "checkpoints")


DISTANCES_SCRIPT = """
import sys
import numpy as np
from jembed.utils import distributed
distributed.initialize(distributed.Settings(coordinator_address=sys.argv[1], num_processes=2,
                                            process_id=int(sys.argv[2]), timeout_s=60))
from jembed.embedding import descriptors, shape_embedding
features = np.random.default_rng(0).random((600, 300), dtype=np.float32)  # 3 row blocks: 6 tiles, 3 each
features[5] = features[450]  # a duplicate pair: an exact zero, whichever process owns its tile
desc = descriptors.Descriptors(ids=[f"s{i:03d}" for i in range(600)], categories=["c"] * 600, features=features,
                               skipped=[])
d = shape_embedding.cached_distances(desc, sys.argv[3])
np.save(f"{sys.argv[3]}/seen{sys.argv[2]}.npy", np.asarray(d))
distributed.shutdown()
"""


def test_two_processes_share_the_distance_tiles(tmp_path):
  """The shape side's distance stage in 2 processes x 2 devices: each computes a share of the tiles, both get the
  whole matrix, which is scipy's."""
  from scipy.spatial import distance  # pylint: disable=g-import-not-at-top

  (tmp_path / "lfd").mkdir()
  port = _free_port()
  env = {
      **os.environ,
      "PYTHONPATH": REPO,
      "JAX_PLATFORMS": "cpu",
      "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
  }
  procs = [
      subprocess.Popen(
          [sys.executable, "-c", DISTANCES_SCRIPT, f"localhost:{port}", str(i), str(tmp_path)],
          env=env,
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
          text=True,
      )
      for i in range(2)
  ]
  try:
    _finish(procs)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  features = np.random.default_rng(0).random((600, 300), dtype=np.float32)
  features[5] = features[450]
  want = distance.squareform(distance.pdist(features.astype(np.float64)))
  for i in range(2):
    got = np.load(tmp_path / f"seen{i}.npy")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert got[5, 450] == got[450, 5] == 0.0
  assert sorted(os.listdir(tmp_path / "lfd")) == ["distances.json", "distances.npy"]  # the shares are gone
