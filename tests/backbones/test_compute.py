"""How the networks compute: bfloat16 where it is asked for (and float32 where it must stay), remat changing nothing."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jembed import backbones
from jembed.backbones import compute
from jembed.backbones import resnet
from jembed.training import model as model_lib

pytestmark = pytest.mark.usefixtures("fast_compiles")

VIT = model_lib.ModelSpec(
    backbone="vit_small_patch16_224", dim=8, image_size=32, hidden=(32,), trunk_width=64, trunk_depth=2, head_norm=True
)
SMALL = model_lib.ModelSpec(widths=(8, 16), dim=8, image_size=24, hidden=(32,), num_categories=3, viewpoint_bins=360)
# A two-block ResNet (ResNet-50's code, fewer and narrower blocks: seconds, not a minute, on CPU).
SMALL_RESNET = dataclasses.replace(
    backbones.get("resnet50", 32), config=resnet.ResNetConfig(layers=(1, 1), widths=(8, 16), stem=8)
)


def _equations(jaxpr):
  """Every equation of a closed jaxpr, nested ones (remat, pjit, custom_vjp) included."""
  for eqn in jaxpr.eqns:
    yield eqn
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else [param]:
        if hasattr(sub, "eqns"):
          yield from _equations(sub)
        elif hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
          yield from _equations(sub.jaxpr)


def _primitives(fn, *args) -> list:
  """(name, first input's dtype) of every primitive `fn` runs, nested ones included, in program order."""
  eqns = _equations(jax.make_jaxpr(fn)(*args).jaxpr)
  return [(e.primitive.name, str(e.invars[0].aval.dtype) if e.invars else "") for e in eqns]


def _matmul_dtypes(spec: model_lib.ModelSpec, grad: bool = False) -> list[str]:
  """The input dtypes of every matmul and convolution of the network's forward pass (and backward pass with
  `grad`), in program order."""
  net = model_lib.EmbeddingNet(spec)
  params = _init(spec)
  images = jnp.zeros((2, spec.image_size, spec.image_size, 3), jnp.uint8)
  if grad:
    fn = jax.grad(lambda p: jnp.sum(net.apply(p, images)["point"]))
  else:
    fn = lambda p: net.apply(p, images)  # noqa: E731
  return [dtype for name, dtype in _primitives(fn, params) if name in ("dot_general", "conv_general_dilated")]


def _init(spec: model_lib.ModelSpec):
  return jax.jit(lambda key: model_lib.init_params(spec, key))(jax.random.key(0))  # jitted: eager init takes seconds


def _apply(spec: model_lib.ModelSpec, params, images, **kwargs):
  return jax.jit(lambda p, x: model_lib.EmbeddingNet(spec).apply(p, x, **kwargs))(params, images)


@pytest.mark.parametrize("spec", [VIT, SMALL], ids=["vit", "small"])
def test_bf16_runs_the_trunk_and_hidden_layers_in_bf16_and_the_outputs_in_float32(spec):
  """bfloat16: every matmul and convolution but the output layers' takes bf16 inputs; the parameters and every
  output are float32. float32: nothing is bf16 (the default's program is the one it always was)."""
  bf16 = dataclasses.replace(spec, compute_dtype="bfloat16")
  dtypes = _matmul_dtypes(bf16)
  outputs = 1 + (1 if spec.num_categories else 0) + (3 if spec.viewpoint_bins else 0)  # point, category, angles
  assert dtypes[:-outputs] and set(dtypes[:-outputs]) == {"bfloat16"}, dtypes
  assert set(dtypes[-outputs:]) == {"float32"}
  assert set(_matmul_dtypes(spec)) == {"float32"}
  params = _init(bf16)
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype("float32")}
  images = np.random.default_rng(0).integers(0, 256, (3, spec.image_size, spec.image_size, 3), dtype=np.uint8)
  want, got = _apply(spec, params, images), _apply(bf16, params, images)
  for key, value in got.items():
    assert value.dtype == jnp.float32, key
    # bf16 rounds each activation to 8 bits of mantissa (~0.4 %): the outputs stay close to float32's.
    np.testing.assert_allclose(value, want[key], rtol=0.05, atol=0.05 * float(jnp.max(jnp.abs(want[key]))))
  assert not np.array_equal(got["point"], want["point"])
  features = jax.eval_shape(lambda p: model_lib.EmbeddingNet(bf16).apply(p, images, features_only=True), params)
  assert features.dtype == jnp.float32


def test_the_backward_pass_of_bf16_is_bf16_too():
  dtypes = _matmul_dtypes(dataclasses.replace(VIT, compute_dtype="bfloat16"), grad=True)
  assert dtypes.count("bfloat16") > 3 * dtypes.count("float32")  # forward and backward of every bf16 layer


def test_a_bf16_resnet_and_caffenet_compute_in_bf16():
  """The trunks of `jembed.backbones` (ResNet's frozen BatchNorm, CaffeNet's LRN in float32 inside) keep bf16
  between their layers; their pooled features come back float32."""
  for spec in (SMALL_RESNET, dataclasses.replace(backbones.get("caffenet", 67), config=(8, 8, 8, 8, 8))):
    variables = jax.jit(lambda key: backbones.init_variables(spec, key))(jax.random.key(0))  # noqa: B023
    images = np.random.default_rng(0).integers(0, 256, (2, spec.image_size, spec.image_size, 3), dtype=np.uint8)
    net = backbones.Backbone(spec, dtype=jnp.bfloat16)
    ops = _primitives(lambda v: net.apply(v, images), variables)
    assert {dtype for name, dtype in ops if name == "conv_general_dilated"} == {"bfloat16"}, spec.arch
    got = jax.jit(net.apply)(variables, images)
    want = jax.jit(backbones.Backbone(spec).apply)(variables, images)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05 * float(jnp.max(jnp.abs(want))))


def test_remat_changes_neither_the_params_nor_the_gradients():
  """A ViT's blocks rematerialised with the 'dots' policy and a ResNet's with 'full': the same variables, the same
  gradients (up to the order of float sums), and one remat region per block in the program."""
  images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  for spec, remat in ((backbones.get(VIT.backbone, 32).resized(64, 2), "dots"), (SMALL_RESNET, "full")):
    plain, rematted = backbones.Backbone(spec), backbones.Backbone(spec, remat=remat)
    variables = jax.jit(plain.init)(jax.random.key(0), images)
    assert jax.tree.structure(jax.eval_shape(rematted.init, jax.random.key(0), images)) == jax.tree.structure(variables)

    # A random readout of the features (their sum of squares would be constant under the ViT's final LayerNorm).
    readout = jax.random.normal(jax.random.key(1), (spec.features,))

    def grads(net):
      return jax.jit(jax.grad(lambda v: jnp.sum(net.apply(v, images) @ readout)))(variables)  # noqa: B023

    want = grads(plain)
    # Equal up to float32 reassociation: within 1e-5 of each tensor's largest entry (recomputation may fuse the
    # forward pass's sums differently).
    same = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.max(np.abs(b))))  # noqa: E731
    jax.tree.map(same, grads(rematted), want)
    names = [name for name, _ in _primitives(lambda v: rematted.apply(v, images), variables)]  # noqa: B023
    assert sum(name.startswith(("remat", "checkpoint")) for name in names) == 2  # blocks


def test_names_are_checked():
  with pytest.raises(ValueError, match="unknown compute dtype 'float16'"):
    compute.dtype("float16")
  with pytest.raises(ValueError, match="unknown remat policy 'some'"):
    compute.block(backbones.vit.Block, "some")
  with pytest.raises(ValueError, match="only a ViT's width and depth"):
    backbones.get("resnet50").resized(width=64)
  spec = backbones.get("vit_small_patch16_224", 32).resized(width=128, depth=3)
  assert (spec.config.width, spec.config.heads, spec.config.mlp, spec.config.depth, spec.config.grid) == (
      128,
      2,
      512,
      3,
      2,
  )
  assert spec.features == 128 and backbones.get("vit_small_patch16_224").resized() == backbones.get(
      "vit_small_patch16_224"
  )
