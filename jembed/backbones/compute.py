"""How a network computes, apart from what it computes: the compute dtype and the rematerialisation of its blocks.

Mixed precision is flax's `dtype` / `param_dtype` split: with `compute_dtype='bfloat16'` activations, matmuls and
convolutions run in bfloat16 while parameters (hence gradients and optimizer state) stay float32; LayerNorm computes
its statistics in float32 whatever its `dtype` (flax promotes them), attention's softmax runs in float32
(`jax.nn.dot_product_attention`), and the networks' outputs and losses are float32. bfloat16 has float32's exponent
range, so no loss scaling is needed (float16 would need it; it is not offered).

Rematerialisation (`remat`) trades compute for memory: a block's activations are not kept for the backward pass but
recomputed from its input, except what the policy saves. It changes no parameter and no value, only peak memory and
FLOPs (a full remat adds about one forward pass, ~1/3 of a training step's FLOPs).
"""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# What a rematerialised block keeps for the backward pass.
REMAT_POLICIES: dict[str, Callable | None] = {
    "none": None,  # no remat: every activation is kept (the fastest, the most memory)
    "full": jax.checkpoint_policies.nothing_saveable,  # only the block's input: recompute the rest
    # The outputs of matmuls without batch dimensions (the Dense layers' kernels: QKV, projections, MLP); attention
    # scores, norms and activations are recomputed. For transformers this keeps most of the speed for less memory.
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def dtype(name: str) -> jnp.dtype:
  """The jnp dtype of a compute dtype's name ('float32' | 'bfloat16').

  Raises:
    ValueError: another name.
  """
  if name not in DTYPES:
    raise ValueError(f"unknown compute dtype {name!r} (use {' or '.join(map(repr, DTYPES))})")
  return DTYPES[name]


def block(module: type[nn.Module], remat: str) -> type[nn.Module]:
  """`module` (a block class whose `__call__` takes arrays only), rematerialised per `remat` (`REMAT_POLICIES`).

  The parameters keep their names and shapes (`nn.remat` lifts the module as it is), so checkpoints and weight files
  are the same with and without it.
  """
  if remat not in REMAT_POLICIES:
    raise ValueError(f"unknown remat policy {remat!r} (use one of {', '.join(map(repr, REMAT_POLICIES))})")
  if remat == "none":
    return module
  return nn.remat(module, policy=REMAT_POLICIES[remat])
