"""Blockwise, sharded Euclidean distances against scipy's `pdist`/`cdist` (float64) as the oracle."""

import jax
import numpy as np
import pytest
from scipy.spatial import distance as scipy_distance

from jembed.embedding import distances


def _descriptors(n: int, d: int, seed: int = 0, offset: float = 0.0, scaled: bool = True) -> np.ndarray:
  """float32[n, d] non-negative, HoG-like rows plus a shared offset; `scaled` gives rows random overall scales, so that
  some pairs are close next to their norms (where the GEMM identity cancels digits)."""
  rng = np.random.default_rng(seed)
  scale = rng.random((n, 1)) if scaled else 1.0
  return (offset + rng.random((n, d)) * scale).astype(np.float32)


def _max_rel_err(got: np.ndarray, want: np.ndarray) -> float:
  positive = want > 0
  return float(np.max(np.abs(got[positive] - want[positive]) / want[positive]))


@pytest.mark.parametrize("block_size", [None, 40, 64])
def test_pairwise_matches_pdist(block_size):
  x = _descriptors(203, 300)
  got = distances.pairwise_distances(x, block_size=block_size)
  want = scipy_distance.squareform(scipy_distance.pdist(x.astype(np.float64)))
  assert got.dtype == np.float32 and got.shape == (203, 203)
  assert _max_rel_err(got, want) < 1e-4
  assert np.all(np.diag(got) == 0.0)
  np.testing.assert_array_equal(got, got.T)


def test_centring_saves_digits_with_a_large_common_offset():
  # ‖a‖² ≈ 1e4 · 300 while ‖a − b‖² ≈ 10: without centring float32 keeps no correct digit of the difference.
  x = _descriptors(64, 300, offset=100.0, scaled=False)
  got = distances.pairwise_distances(x, block_size=32, refine_rtol=0.0)
  want = scipy_distance.squareform(scipy_distance.pdist(x.astype(np.float64)))
  assert _max_rel_err(got, want) < 1e-4


def test_duplicates_are_exact_zeros():
  x = _descriptors(50, 1000, offset=3.0)
  x[17] = x[4]
  x[31] = x[4]
  got = distances.pairwise_distances(x, block_size=16)
  assert got[4, 17] == got[17, 4] == got[4, 31] == got[17, 31] == 0.0
  assert np.count_nonzero(got == 0) == 50 + 6  # the diagonal and the three duplicate pairs, both triangles


def test_float64_in_jax_x64_mode():
  x = _descriptors(70, 50).astype(np.float64)
  want = scipy_distance.squareform(scipy_distance.pdist(x))
  with jax.enable_x64(True):
    got = distances.pairwise_distances(x, block_size=32)
  assert got.dtype == np.float64
  assert _max_rel_err(got, want) < 1e-10
  # Without x64 the same float64 input is computed (and returned) in float32.
  got32 = distances.pairwise_distances(x, block_size=32)
  assert got32.dtype == np.float32 and _max_rel_err(got32, want) < 1e-4


def test_sharded_equals_unsharded():
  assert jax.device_count() == 4  # tests/conftest.py forces 4 CPU devices
  x = _descriptors(150, 200)
  sharded = distances.pairwise_distances(x, block_size=48, sharded=True)
  single = distances.pairwise_distances(x, block_size=48, sharded=False)
  # Per-device GEMMs of other shapes round differently; both are well inside the 1e-4 budget.
  np.testing.assert_allclose(sharded, single, rtol=2e-5)
  want = scipy_distance.squareform(scipy_distance.pdist(x.astype(np.float64)))
  assert max(_max_rel_err(sharded, want), _max_rel_err(single, want)) < 1e-4


def test_cross_matches_cdist():
  a, b = _descriptors(37, 120, seed=1), _descriptors(91, 120, seed=2)
  b[5] = a[3]
  got = distances.cross_distances(a, b, block_size=16)
  want = scipy_distance.cdist(a.astype(np.float64), b.astype(np.float64))
  assert got.shape == (37, 91) and _max_rel_err(got, want) < 1e-4
  assert got[3, 5] == 0.0


class _RowReader:
  """A read-only array stand-in that records every read, to prove the input is only read in row blocks."""

  def __init__(self, array: np.ndarray):
    self.array, self.shape, self.dtype, self.reads = array, array.shape, array.dtype, []

  def __getitem__(self, index):
    rows = np.arange(self.shape[0])[index]
    self.reads.append(np.size(rows))
    return self.array[index]


def test_memmap_in_and_out(tmp_path):
  x = _descriptors(130, 90)
  path = tmp_path / "x.npy"
  np.save(path, x)
  x_map = np.load(path, mmap_mode="r")
  out_path = tmp_path / "d.npy"
  got = distances.pairwise_distances(x_map, block_size=32, out=out_path)
  assert isinstance(got, np.memmap)
  del got
  on_disk = np.load(out_path)
  np.testing.assert_allclose(on_disk, distances.pairwise_distances(x, block_size=32), rtol=1e-6)
  reader = _RowReader(x)
  distances.pairwise_distances(reader, block_size=32)
  assert reader.reads and max(reader.reads) <= 32


def test_out_array_is_filled_in_place():
  x = _descriptors(40, 30)
  out = np.full((40, 40), np.nan, np.float32)
  assert distances.pairwise_distances(x, out=out, block_size=16) is out
  assert not np.any(np.isnan(out))
  with pytest.raises(ValueError):
    distances.pairwise_distances(x, out=np.zeros((3, 3), np.float32))
