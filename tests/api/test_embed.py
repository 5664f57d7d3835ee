"""The public API as a user sees it: only `import jembed`, on a workdir the launch scripts made.

The fixture runs the three stages as a user would (`python -m launch...` on the tiny config, 6 shapes, viewpoint and
category heads on); the tests then call `jembed.*` under jit and vmap, and run README's example as written.
"""

import contextlib
import dataclasses
import io
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

import jembed
from jembed.training import model as model_lib  # a ModelSpec of either compute dtype, without a trained workdir

ROOT = pathlib.Path(__file__).resolve().parents[2]

# README's example, verbatim; the test only swaps in its own workdir and photo.
README_EXAMPLE = """\
import jax, numpy as np, PIL.Image, jembed
model = jembed.load("/tmp/jembed")  # the trained network and the shape points of a workdir
images = np.asarray(PIL.Image.open("photo.jpg").convert("RGB"))[None]  # uint8[1, H, W, 3], any size
points = jax.jit(jembed.embed_images)(model.params, images)  # float32[1, D], in the shapes' space
print(model.shape_ids[np.argmin(((points[:, None] - model.shape_points) ** 2).sum(-1), axis=1)])
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> str:
  folder = str(tmp_path_factory.mktemp("api"))
  flags = [
      "--config=configs/tiny.py:limit=1",
      f"--workdir={folder}",
      "--config.data.image_size=32",
      "--config.data.images_per_shape=4",
      "--config.data.split_fractions=(0.75,0.25,0.0)",
  ]
  train_flags = [
      "--config.model.category_head=True",
      "--config.model.viewpoint_head=True",
      "--config.train.total_steps=2",
      "--config.train.eval_every=2",
  ]
  for stage, extra in (("embed_shapes", []), ("build_dataset", ["--workers=1"]), ("train", train_flags)):
    done = subprocess.run(
        [sys.executable, "-m", f"launch.{stage}", *flags, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="1"),
    )
    assert done.returncode == 0, f"launch.{stage} failed:\n{done.stderr[-3000:]}"
  return folder


# Tiny models: XLA's optimizations cost more compile time than they save (conftest.fast_compiles).
pytestmark = pytest.mark.usefixtures("fast_compiles")


def _images(n: int, size: int = 32) -> np.ndarray:
  return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_embed_images_is_pure_jittable_and_vmappable(workdir):
  model = jembed.load(workdir)
  assert model.step == 2 and len(model.shape_ids) == len(model.shape_points) == 6
  dim = model.shape_points.shape[1]  # the shape embedding's (at most N - 1 for N shapes)
  images = _images(4)
  eager = jembed.embed_images(model.params, images)
  assert eager.shape == (4, dim) and eager.dtype == jnp.float32
  jitted = jax.jit(jembed.embed_images)(model.params, images)
  np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-5)
  mapped = jax.jit(jax.vmap(jembed.embed_images, in_axes=(None, 0)))(model.params, images)  # one image per call
  np.testing.assert_allclose(mapped, eager, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jembed.embed_images(model.params, images[0]), eager[0], rtol=1e-5, atol=1e-5)
  assert not np.allclose(eager[0], eager[1])  # different images, different points
  bigger = jembed.embed_images(model.params, np.repeat(np.repeat(images, 2, axis=1), 2, axis=2))  # stretched
  assert bigger.shape == (4, dim) and np.isfinite(bigger).all()


def test_mirror_average_is_the_mean_of_the_image_and_its_mirror(workdir):
  """The default config trains with flips and averages a photo's point with its mirror image's: checked against
  the network applied to each on its own; the heads read the image as it is."""
  model = jembed.load(workdir)
  assert model.params.spec.mirror_average
  images = _images(3)
  plain = jembed.Params(model.params.variables, dataclasses.replace(model.params.spec, mirror_average=False))
  one, mirrored = jembed.embed_images(plain, images), jembed.embed_images(plain, images[:, :, ::-1])
  assert not np.allclose(one, mirrored, atol=1e-4)  # the network alone is not mirror-invariant
  averaged = jax.jit(jembed.embed_images)(model.params, images)
  np.testing.assert_allclose(averaged, (one + mirrored) / 2, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jembed.embed_images(model.params, images[:, :, ::-1]), averaged, rtol=1e-5, atol=1e-5)
  for angle, degrees in jembed.predict_viewpoint(model.params, images).items():
    np.testing.assert_array_equal(degrees, jembed.predict_viewpoint(plain, images)[angle])


def test_viewpoint_and_category_heads(workdir):
  model = jembed.load(workdir)
  assert model.categories == ("airplane", "car", "chair", "lamp", "sofa", "table")
  views = jax.jit(jembed.predict_viewpoint)(model.params, _images(3))
  assert set(views) == {"azimuth", "elevation", "tilt"}
  for angle in views.values():
    assert angle.shape == (3,) and bool(jnp.all((angle >= 0) & (angle < 360)))
  categories = jax.vmap(jembed.predict_category, in_axes=(None, 0))(model.params, _images(3))
  assert categories.shape == (3,) and bool(jnp.all((categories >= 0) & (categories < 6)))
  # the point and the pose from one forward pass equal the two separate calls
  points, both = jax.jit(jembed.embed_with_viewpoint)(model.params, _images(3))
  np.testing.assert_allclose(points, jembed.embed_images(model.params, _images(3)), rtol=1e-5, atol=1e-5)
  for angle in views:
    np.testing.assert_array_equal(both[angle], views[angle])


def test_readme_example_runs_as_written(workdir, tmp_path, monkeypatch):
  model = jembed.load(workdir)
  Image.fromarray(_images(1, 50)[0]).save(tmp_path / "photo.jpg")
  monkeypatch.chdir(tmp_path)
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(README_EXAMPLE.replace('"/tmp/jembed"', repr(workdir)), {})  # pylint: disable=exec-used
  printed = out.getvalue().strip()
  assert printed.startswith("[") and any(str(i) in printed for i in model.shape_ids), printed


def test_embed_images_takes_either_compute_dtype():
  """The jitted embed function on a network whose spec says float32 or bfloat16 (a bf16-trained checkpoint carries
  'bfloat16' in its ModelSpec): float32 points either way, the bf16 ones within 3 % of the float32 ones' largest
  coordinate (measured: 0.66 %; bf16 rounds to 8 bits of mantissa, ~0.4 % a rounding)."""
  spec = model_lib.ModelSpec(widths=(8, 16), dim=5, image_size=24, hidden=(32,), head_norm=True, point_scale=3.0)
  variables = jax.jit(lambda key: model_lib.init_params(spec, key))(jax.random.key(0))
  embed, images = jax.jit(jembed.embed_images), _images(4, 30)
  want = embed(jembed.Params(variables, spec), images)
  got = embed(jembed.Params(variables, dataclasses.replace(spec, compute_dtype="bfloat16")), images)
  assert want.dtype == got.dtype == jnp.float32 and got.shape == want.shape == (4, 5)
  np.testing.assert_allclose(got, want, rtol=0, atol=0.03 * float(np.max(np.abs(want))))
  assert not np.array_equal(got, want)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    jembed.load(str(tmp_path))
