"""The point-cloud shape encoder: FPS and ball query against brute-force numpy, permutation invariance, presets."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jembed.training import point_encoder as pe

pytestmark = pytest.mark.usefixtures("fast_compiles")


def fps_oracle(points: np.ndarray, count: int) -> np.ndarray:
  """Farthest point sampling written out in float64 numpy: start farthest from the mean, then max-min distance."""
  points = points.astype(np.float64)
  chosen = [int(np.argmax(((points - points.mean(0)) ** 2).sum(-1)))]
  nearest = np.full(len(points), np.inf)
  for _ in range(count - 1):
    nearest = np.minimum(nearest, ((points - points[chosen[-1]]) ** 2).sum(-1))
    chosen.append(int(np.argmax(nearest)))
  return np.array(chosen)


def ball_oracle(points: np.ndarray, centres: np.ndarray, radius: float, nsample: int) -> np.ndarray:
  """For each centre: the indices of points with d < r, by distance, first nsample, padded with the nearest."""
  out = []
  for c in centres.astype(np.float64):
    d = np.sqrt(((points.astype(np.float64) - c) ** 2).sum(-1))
    inside = np.flatnonzero(d < radius)
    inside = inside[np.argsort(d[inside], kind="stable")][:nsample]
    out.append(np.concatenate([inside, np.full(nsample - len(inside), inside[0])]))
  return np.array(out)


def test_fps_matches_brute_force():
  points = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
  got = np.asarray(jax.jit(pe.fps, static_argnums=1)(points, 24))
  np.testing.assert_array_equal(got, fps_oracle(points, 24))
  assert len(set(got.tolist())) == 24


def test_ball_query_matches_brute_force():
  rng = np.random.default_rng(1)
  points = rng.uniform(-1, 1, size=(400, 3)).astype(np.float32)
  centres = points[rng.choice(400, 16, replace=False)]
  got = np.asarray(pe.ball_query(jnp.asarray(points), jnp.asarray(centres), 0.35, 12))
  want = ball_oracle(points, centres, 0.35, 12)
  np.testing.assert_array_equal(got, want)
  assert (want == want[:, :1]).sum() > 16, "some balls must be padded for the test to cover padding"


def small_spec(**kw) -> pe.EncoderSpec:
  return pe.EncoderSpec(
      **dict(
          dict(
              out_dim=8, dim=32, depth=1, heads=2, mlp=64, sa_widths=(16,), sa_dim=32, patches=16, radius=0.5, nsample=8
          ),
          **kw,
      )
  )


def test_encoder_shapes_dtypes_and_permutation_invariance():
  spec = small_spec()
  points = np.random.default_rng(2).uniform(-1, 1, size=(3, 128, 3)).astype(np.float32)
  params = pe.init_params(spec, jax.random.key(0), 128)
  apply = jax.jit(pe.PointEncoder(spec).apply)
  out = apply(params, points)
  assert out.shape == (3, 8) and out.dtype == jnp.float32
  perm = np.random.default_rng(3).permutation(128)
  np.testing.assert_allclose(np.asarray(apply(params, points[:, perm])), np.asarray(out), rtol=1e-5, atol=1e-6)
  # Not a constant function: another cloud gives another point.
  assert np.abs(np.asarray(out[0] - out[1])).max() > 1e-4


def test_encoder_with_normals():
  spec = small_spec(in_features=3, point_scale=5.0)
  rng = np.random.default_rng(4)
  points, normals = rng.normal(size=(2, 64, 3)).astype(np.float32), rng.normal(size=(2, 64, 3)).astype(np.float32)
  params = pe.init_params(spec, jax.random.key(1), 64)
  out = pe.PointEncoder(spec).apply(params, points, normals)
  assert out.shape == (2, 8)
  with pytest.raises(ValueError, match="features per point"):
    pe.PointEncoder(spec).apply(params, points)


def test_presets_build_published_sizes():
  cfg = ml_collections.ConfigDict(
      dict(
          preset="ppat_bigg",
          points=10000,
          normals=True,
          dim=0,
          depth=0,
          heads=0,
          mlp=0,
          sa_widths=(),
          sa_dim=0,
          patches=0,
          radius=0.0,
          nsample=0,
      )
  )
  spec = pe.spec_from_config(cfg, out_dim=1280)
  assert (
      spec.dim,
      spec.depth,
      spec.heads,
      spec.mlp,
      spec.sa_dim,
      spec.patches,
      spec.radius,
      spec.nsample,
      spec.in_features,
  ) == (512, 12, 8, 1536, 256, 384, 0.2, 64, 3)
  shapes = jax.eval_shape(lambda: pe.init_params(spec, jax.random.key(0), 10000))
  n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
  # PPAT-bigG: 12 blocks of 512-wide attention (3 x 512^2 qkv + 512^2 proj) and 512 <-> 1536 MLPs dominate.
  assert 12 * (4 * 512 * 512 + 2 * 512 * 1536) < n < 1.1 * 12 * (4 * 512 * 512 + 2 * 512 * 1536) + 2e6
  cfg.preset = "nope"
  with pytest.raises(ValueError, match="preset"):
    pe.spec_from_config(cfg, out_dim=8)
