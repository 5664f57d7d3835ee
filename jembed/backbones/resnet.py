"""ResNet-50 (He et al. 2016, torchvision's v1.5: stride in the 3x3 conv) in Flax, and its torchvision/timm weights.

torchvision's `resnet50` and timm's `resnet50` (and its `.a1_in1k`, `.tv_in1k`, ... weights) share one state-dict
layout: `conv1`, `bn1`, `layer{1-4}.{i}.conv{1,2,3}` / `bn{1,2,3}` / `downsample.{0,1}`, `fc`. Pooled features are
the global average of layer4: float32[B, 2048].

BatchNorm is frozen (running statistics, as every fine-tuning recipe of these weights does, detectron2's
FrozenBatchNorm): its mean and var are parameters behind `stop_gradient`, so the network's variables are only
{'params': ...}, the same function trains and tests, and no batch statistics cross devices. (Trained from scratch it
is therefore a per-channel affine map, not a normalization: a ViT, normalized by LayerNorm, is the from-scratch choice
of configs/accelerator.py.)

`dtype` is the compute dtype (parameters stay float32, see `jembed.backbones.compute`); `remat` rematerialises each
bottleneck block.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jembed.backbones import compute
from jembed.backbones import convert

BN_EPS = 1e-5  # torch's BatchNorm2d default


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
  """A bottleneck ResNet: `layers` blocks per stage, `widths` the 3x3 convs' channels (x4 out), `stem` channels."""

  layers: tuple[int, ...] = (3, 4, 6, 3)
  widths: tuple[int, ...] = (64, 128, 256, 512)
  stem: int = 64
  expansion: int = 4

  @property
  def features(self) -> int:
    return self.widths[-1] * self.expansion


class FrozenBatchNorm(nn.Module):
  """y = (x - mean) / sqrt(var + eps) * scale + bias with fixed (non-trained) mean and var."""

  eps: float = BN_EPS

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    mean = jax.lax.stop_gradient(self.param("mean", nn.initializers.zeros, (c,)))
    var = jax.lax.stop_gradient(self.param("var", nn.initializers.ones, (c,)))
    mult = scale * jax.lax.rsqrt(var + self.eps)  # float32 (the parameters'), applied in the input's dtype
    return x * mult.astype(x.dtype) + (bias - mean * mult).astype(x.dtype)


def _conv(features: int, kernel: int, stride: int = 1, name: str = "", dtype=jnp.float32) -> nn.Conv:
  return nn.Conv(
      features, (kernel, kernel), (stride, stride), padding=kernel // 2, use_bias=False, dtype=dtype, name=name
  )


class Bottleneck(nn.Module):
  width: int
  stride: int
  expansion: int
  downsample: bool
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    dt = self.dtype
    y = nn.relu(FrozenBatchNorm(name="bn1")(_conv(self.width, 1, name="conv1", dtype=dt)(x)))
    y = nn.relu(FrozenBatchNorm(name="bn2")(_conv(self.width, 3, self.stride, name="conv2", dtype=dt)(y)))
    y = FrozenBatchNorm(name="bn3")(_conv(self.width * self.expansion, 1, name="conv3", dtype=dt)(y))
    if self.downsample:
      x = FrozenBatchNorm(name="downsample_bn")(
          _conv(self.width * self.expansion, 1, self.stride, name="downsample_conv", dtype=dt)(x)
      )
    return nn.relu(x + y)


class ResNet(nn.Module):
  """[B, H, W, 3] (normalized) -> [B, widths[-1] * expansion] in `dtype`, the global average of the last stage."""

  config: ResNetConfig
  dtype: jnp.dtype = jnp.float32
  remat: str = "none"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cfg = self.config
    x = nn.relu(FrozenBatchNorm(name="bn1")(_conv(cfg.stem, 7, 2, name="conv1", dtype=self.dtype)(x)))
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    channels = cfg.stem
    block = compute.block(Bottleneck, self.remat)
    for stage, (blocks, width) in enumerate(zip(cfg.layers, cfg.widths)):
      for i in range(blocks):
        stride = 2 if stage > 0 and i == 0 else 1
        x = block(
            width,
            stride,
            cfg.expansion,
            downsample=i == 0 and (stride != 1 or channels != width * cfg.expansion),
            dtype=self.dtype,
            name=f"layer{stage + 1}_{i}",
        )(x)
        channels = width * cfg.expansion
    return jnp.mean(x, axis=(1, 2))


def expected(cfg: ResNetConfig) -> list[convert.Expect]:
  """Every tensor of a torchvision/timm ResNet file that the features use, in the file's layout."""
  rows = convert.conv_bn_rows("conv1", "bn1", ("conv1",), ("bn1",), cfg.stem, 3, 7)
  channels = cfg.stem
  for stage, (blocks, width) in enumerate(zip(cfg.layers, cfg.widths)):
    out = width * cfg.expansion
    for i in range(blocks):
      key, target = f"layer{stage + 1}.{i}", f"layer{stage + 1}_{i}"
      for n, c_out, c_in, k in ((1, width, channels, 1), (2, width, width, 3), (3, out, width, 1)):
        rows += convert.conv_bn_rows(
            f"{key}.conv{n}", f"{key}.bn{n}", (target, f"conv{n}"), (target, f"bn{n}"), c_out, c_in, k
        )
      if i == 0 and (stage > 0 or channels != out):
        rows += convert.conv_bn_rows(
            f"{key}.downsample.0", f"{key}.downsample.1", (target, "downsample_conv"), (target, "downsample_bn"),
            out, channels, 1,
        )  # fmt: skip
      channels = out
  return rows


IGNORED = [
    (r".*num_batches_tracked", "BatchNorm's step counter (no effect at inference)"),
    (r"fc\.(weight|bias)", "the ImageNet classifier (features are taken before it)"),
]
