"""Shared test set-up: forced CPU devices and the path to ../shared/data.

XLA_FLAGS must be set before jax is imported anywhere, so it lives here, at the top of the first file pytest loads.
"""

import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
