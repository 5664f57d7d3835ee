"""Vision Transformers in Flax, with timm's layout (DINOv2, DeiT, AugReg) and OpenCLIP's image tower.

One pre-norm ViT (Dosovitskiy et al. 2021) covers both families; what differs is in `ViTConfig`:
  timm      patch conv with bias, [CLS] (+ DINOv2's register tokens) + learned positions, blocks with optional layer
            scale (DINOv2), final LayerNorm (eps 1e-6), features = the normalized [CLS] token
  OpenCLIP  patch conv without bias, `ln_pre` before the blocks, LayerNorm eps 1e-5, exact GELU (OpenAI's own
            weights: QuickGELU, x * sigmoid(1.702 x)), `ln_post` then x @ `proj`: features = the CLIP image embedding
Both use exact (erf) GELU where torch's nn.GELU does: flax's default is the tanh approximation.

Positions: the weights fix a grid (DINOv2: 37 x 37 for 518 px); another image size resamples them once at load time
with timm's rule (`resample_abs_pos_embed`: bicubic with antialiasing, prefix tokens kept), which
`jax.image.resize(..., 'cubic', antialias=True)` reproduces (same Keys kernel, a = -0.5, same edge renormalization).

`dtype` is the compute dtype (parameters stay float32, LayerNorm statistics and attention's softmax run in float32;
see `jembed.backbones.compute`); `remat` rematerialises each block.
"""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jembed.backbones import compute
from jembed.backbones import convert


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """A ViT's architecture.

  Attributes:
    patch, width, depth, heads, mlp: patch size, token width, blocks, attention heads, MLP hidden width.
    grid: patches per side at the run's image size (image_size // patch).
    layer_scale: per-channel scales after attention and MLP (DINOv2's ls1/ls2).
    registers: DINOv2's register tokens after [CLS] (timm `reg_token`; they get no position).
    pos_cls: the position table has a row for [CLS] (timm's `no_embed_class=False`; DINOv2 with registers: False).
    patch_bias, ln_pre, eps, act: see the module docstring ('gelu' exact | 'quick_gelu').
    proj: >0: the width of CLIP's output projection (features = that width).
  """

  patch: int
  width: int
  depth: int
  heads: int
  mlp: int
  grid: int
  layer_scale: bool = False
  registers: int = 0
  pos_cls: bool = True
  patch_bias: bool = True
  ln_pre: bool = False
  eps: float = 1e-6
  act: str = "gelu"
  proj: int = 0

  @property
  def features(self) -> int:
    return self.proj or self.width


def _act(x: jax.Array, kind: str) -> jax.Array:
  if kind == "gelu":
    return nn.gelu(x, approximate=False)
  if kind == "quick_gelu":
    return x * jax.nn.sigmoid(1.702 * x)
  raise ValueError(f"unknown activation {kind!r}")


class Block(nn.Module):
  """Pre-norm transformer block: x + [ls1 *] attn(norm1(x)), then x + [ls2 *] mlp(norm2(x))."""

  config: ViTConfig
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cfg, dt = self.config, self.dtype
    b, t, w = x.shape
    qkv = nn.Dense(3 * w, dtype=dt, name="qkv")(nn.LayerNorm(cfg.eps, dtype=dt, name="norm1")(x))
    q, k, v = jnp.split(qkv.reshape(b, t, 3, cfg.heads, w // cfg.heads), 3, axis=2)
    attn = jax.nn.dot_product_attention(q[:, :, 0], k[:, :, 0], v[:, :, 0]).reshape(b, t, w)
    y = nn.Dense(w, dtype=dt, name="proj")(attn)
    if cfg.layer_scale:
      y = y * self.param("ls1", nn.initializers.ones, (w,)).astype(dt)
    x = x + y
    y = nn.Dense(cfg.mlp, dtype=dt, name="fc1")(nn.LayerNorm(cfg.eps, dtype=dt, name="norm2")(x))
    y = nn.Dense(w, dtype=dt, name="fc2")(_act(y, cfg.act))
    if cfg.layer_scale:
      y = y * self.param("ls2", nn.initializers.ones, (w,)).astype(dt)
    return x + y


class VisionTransformer(nn.Module):
  """[B, grid*patch, grid*patch, 3] (normalized) -> [B, features] in `dtype`: the [CLS] token's features."""

  config: ViTConfig
  dtype: jnp.dtype = jnp.float32
  remat: str = "none"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cfg, dt = self.config, self.dtype
    x = nn.Conv(
        cfg.width,
        (cfg.patch, cfg.patch),
        (cfg.patch, cfg.patch),
        padding="VALID",
        use_bias=cfg.patch_bias,
        dtype=dt,
        name="patch_embed",
    )(x)
    b = x.shape[0]
    x = x.reshape(b, -1, cfg.width)
    init = nn.initializers.normal(0.02)
    cls = self.param("cls_token", init, (1, cfg.width))
    pos = self.param("pos_embed", init, (int(cfg.pos_cls) + cfg.grid * cfg.grid, cfg.width))
    if cfg.pos_cls:
      cls, pos = cls + pos[:1], pos[1:]
    tokens = [cls] + ([self.param("reg_token", init, (cfg.registers, cfg.width))] if cfg.registers else [])
    tokens = [jnp.broadcast_to(t.astype(dt), (b,) + t.shape) for t in tokens]
    x = jnp.concatenate(tokens + [x + pos.astype(dt)], axis=1)
    if cfg.ln_pre:
      x = nn.LayerNorm(cfg.eps, dtype=dt, name="ln_pre")(x)
    block = compute.block(Block, self.remat)
    for i in range(cfg.depth):
      x = block(cfg, dtype=dt, name=f"block{i}")(x)
    x = nn.LayerNorm(cfg.eps, dtype=dt, name="norm")(x[:, 0])
    if cfg.proj:
      x = x @ self.param("proj", init, (cfg.width, cfg.proj)).astype(dt)
    return x


def file_grid(tensors: dict[str, np.ndarray], key: str, prefix_tokens: int, path: str) -> int:
  """The square grid the file's position table was trained at."""
  if key not in tensors:
    raise convert.WeightFileError(f"{path}: no tensor {key!r} (the position table of a ViT)")
  n = tensors[key].reshape(-1, tensors[key].shape[-1]).shape[0] - prefix_tokens
  side = math.isqrt(max(n, 0))
  if side * side != n:
    raise convert.WeightFileError(f"{path}: {key!r} has {n} patch positions, not a square grid")
  return side


def resample_positions(pos: np.ndarray, grid: int, prefix_tokens: int = 1) -> np.ndarray:
  """[prefix + g*g, W] positions -> [prefix + grid*grid, W], as timm's `resample_abs_pos_embed` (see docstring)."""
  old = math.isqrt(pos.shape[0] - prefix_tokens)
  if old == grid:
    return pos
  table = pos[prefix_tokens:].reshape(old, old, -1)
  table = jax.image.resize(jnp.asarray(table), (grid, grid, table.shape[-1]), "cubic", antialias=True)
  return np.concatenate([pos[:prefix_tokens], np.asarray(table).reshape(grid * grid, -1)], axis=0)


# Each block's tensors in each layout: our name -> the file's (weight, bias) names under the block's prefix.
_TIMM_BLOCK = dict(
    norm1=("norm1.weight", "norm1.bias"),
    qkv=("attn.qkv.weight", "attn.qkv.bias"),
    proj=("attn.proj.weight", "attn.proj.bias"),
    norm2=("norm2.weight", "norm2.bias"),
    fc1=("mlp.fc1.weight", "mlp.fc1.bias"),
    fc2=("mlp.fc2.weight", "mlp.fc2.bias"),
    ls1="ls1.gamma",
    ls2="ls2.gamma",
)
_OPENCLIP_BLOCK = dict(
    norm1=("ln_1.weight", "ln_1.bias"),
    qkv=("attn.in_proj_weight", "attn.in_proj_bias"),
    proj=("attn.out_proj.weight", "attn.out_proj.bias"),
    norm2=("ln_2.weight", "ln_2.bias"),
    fc1=("mlp.c_fc.weight", "mlp.c_fc.bias"),
    fc2=("mlp.c_proj.weight", "mlp.c_proj.bias"),
    ls1="ls_1.gamma",
    ls2="ls_2.gamma",
)


def _norm(rows, keys, target, width):
  rows += [
      convert.Expect(keys[0], target + ("scale",), (width,)),
      convert.Expect(keys[1], target + ("bias",), (width,)),
  ]


def _blocks(rows, cfg: ViTConfig, prefix: str, names: dict) -> None:
  w = cfg.width
  for i in range(cfg.depth):
    key, target = f"{prefix}.{i}.", (f"block{i}",)
    for ours, out, inp in (("qkv", 3 * w, w), ("proj", w, w), ("fc1", cfg.mlp, w), ("fc2", w, cfg.mlp)):
      weight, bias = names[ours]
      rows += [
          convert.Expect(key + weight, target + (ours, "kernel"), (out, inp), "linear"),
          convert.Expect(key + bias, target + (ours, "bias"), (out,)),
      ]
    for ours in ("norm1", "norm2"):
      _norm(rows, [key + n for n in names[ours]], target + (ours,), w)
    if cfg.layer_scale:
      rows += [convert.Expect(key + names[ours], target + (ours,), (w,)) for ours in ("ls1", "ls2")]


def expected_timm(cfg: ViTConfig, grid: int) -> list[convert.Expect]:
  """Every tensor of a timm ViT file (`grid`: the file's position grid), in timm's layout."""
  w, p = cfg.width, cfg.patch
  rows = [
      convert.Expect("patch_embed.proj.weight", ("patch_embed", "kernel"), (w, 3, p, p), "conv"),
      convert.Expect("patch_embed.proj.bias", ("patch_embed", "bias"), (w,)),
      convert.Expect("cls_token", ("cls_token",), (1, 1, w), "unbatch"),
      convert.Expect("pos_embed", ("pos_embed",), (1, int(cfg.pos_cls) + grid * grid, w), "unbatch"),
  ]
  if cfg.registers:
    rows.append(convert.Expect("reg_token", ("reg_token",), (1, cfg.registers, w), "unbatch"))
  _blocks(rows, cfg, "blocks", _TIMM_BLOCK)
  _norm(rows, ("norm.weight", "norm.bias"), ("norm",), w)
  return rows


IGNORED_TIMM = [
    (r"head\.(weight|bias)", "the classifier (features are the normalized [CLS] token before it)"),
    (r"mask_token", "DINOv2's masked-image-modeling token (training only)"),
]


def expected_openclip(cfg: ViTConfig, grid: int) -> list[convert.Expect]:
  """Every tensor of an OpenCLIP (or OpenAI CLIP) image tower, keys under `visual.`."""
  w, p = cfg.width, cfg.patch
  rows = [
      convert.Expect("visual.conv1.weight", ("patch_embed", "kernel"), (w, 3, p, p), "conv"),
      convert.Expect("visual.class_embedding", ("cls_token",), (w,), "row"),
      convert.Expect("visual.positional_embedding", ("pos_embed",), (1 + grid * grid, w)),
  ]
  _norm(rows, ("visual.ln_pre.weight", "visual.ln_pre.bias"), ("ln_pre",), w)
  _blocks(rows, cfg, "visual.transformer.resblocks", _OPENCLIP_BLOCK)
  _norm(rows, ("visual.ln_post.weight", "visual.ln_post.bias"), ("norm",), w)
  rows.append(convert.Expect("visual.proj", ("proj",), (w, cfg.proj)))
  return rows


IGNORED_OPENCLIP = [
    (r"(transformer|token_embedding|ln_final)\..*", "the text tower"),
    (r"(positional_embedding|text_projection|attn_mask)", "the text tower"),
    (r"logit_scale|logit_bias", "the contrastive loss's temperature"),
    (r"input_resolution|context_length|vocab_size", "OpenAI's TorchScript metadata"),
]
