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

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """../shared/data beside the checkout; skips the test with the reason when it is absent (a user's machine)."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real test data not found at {SHARED_DATA} (it sits beside the checkout in CI)")
  return SHARED_DATA


@pytest.fixture(scope="module")
def fast_compiles():
  """Turns most XLA optimizations off for a test module of tiny models, where they cost more compile time than they
  save (the flax examples' tests do this too); modules opt in with `pytestmark = usefixtures("fast_compiles")`."""
  import jax  # pylint: disable=g-import-not-at-top  (after XLA_FLAGS is set above)
  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", before)


def run_demo(workdir, *flags) -> tuple[dict[str, str], str]:
  """`python -m launch.demo --config=configs/tiny.py` as a user runs it: ({what: path} of its closing list, stdout)."""
  cmd = [sys.executable, "-m", "launch.demo", "--config=configs/tiny.py", f"--workdir={workdir}", *flags]
  result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
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
_END_TO_END_FIXTURES = {"tiny_run", "run", "workdir", "reference", "dataset"}


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
  """Marks end-to-end tests `slow` (see pyproject.toml): those using a trained or built run, and those marked so."""
  for item in items:
    if _END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())):
      item.add_marker(pytest.mark.slow)
