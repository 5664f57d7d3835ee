"""The paper's CaffeNet / R-CNN trunk (conv1-pool5) in Flax, and its weights from a `.caffemodel`.

bvlc_reference_caffenet and R-CNN's bvlc_reference_rcnn_ilsvrc13 (the paper's backbone, paper-pipeline section 3):
conv1 96x11 s4 -> ReLU -> max-pool 3/2 -> LRN(5, 1e-4, 0.75), conv2 256x5 p2 g2 -> pool -> LRN, conv3 384x3 p1,
conv4 384x3 p1 g2, conv5 256x3 p1 g2 -> pool5 = 256 x 6 x 6 at 227 x 227. Features = pool5 flattened in Caffe's
(C, H, W) order (9216), so R-CNN's fc6 weights apply to them unchanged. Input: BGR x 255 minus the ImageNet mean.

Caffe's layouts carry over without reordering: its conv weights [out, in / group, kh, kw] become Flax's
[kh, kw, in / group, out], and a grouped convolution's output channels are in group order in both.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jembed.backbones import convert

WIDTHS = (96, 256, 384, 384, 256)
_GROUPS = (1, 2, 1, 2, 2)
_KERNELS = (11, 5, 3, 3, 3)


def local_response_norm(
    x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> jax.Array:
  """Caffe's across-channel LRN: x_c / (k + alpha/size * sum of x^2 over the `size` channels around c)^beta.

  Caffe divides alpha by the window size (TensorFlow's `local_response_normalization` does not), and the window is
  zero-padded at the first and last channels. Computed in float32 (a sum of squares and a power), returned in x's dtype.
  """
  dtype, x = x.dtype, x.astype(jnp.float32)
  sq = jax.lax.reduce_window(
      x * x,
      0.0,
      jax.lax.add,
      (1,) * (x.ndim - 1) + (size,),
      (1,) * x.ndim,
      [(0, 0)] * (x.ndim - 1) + [((size - 1) // 2, size - 1 - (size - 1) // 2)],
  )
  return (x / (k + (alpha / size) * sq) ** beta).astype(dtype)


def caffe_max_pool(x: jax.Array, window: int = 3, stride: int = 2) -> jax.Array:
  """Max pooling with Caffe's output size, ceil((H - window) / stride) + 1 (the last window may hang over)."""
  pads = []
  for n in x.shape[1:3]:
    out = -(-(n - window) // stride) + 1
    pads.append((0, max(0, (out - 1) * stride + window - n)))
  return nn.max_pool(x, (window, window), (stride, stride), padding=pads)


class CaffeNet(nn.Module):
  """CaffeNet conv1-pool5 (pool, then LRN, as bvlc_reference_caffenet and R-CNN): [B, 227, 227, 3] -> [B, 6, 6, 256].

  `widths` are the five convolutions' channels (the paper's by default; smaller ones only in tests); `dtype` the
  compute dtype (parameters stay float32; the LRN runs in float32).
  """

  widths: tuple[int, ...] = WIDTHS
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    w, dt = self.widths, self.dtype
    x = nn.relu(nn.Conv(w[0], (11, 11), (4, 4), padding="VALID", dtype=dt, name="conv1")(x))
    x = local_response_norm(caffe_max_pool(x))
    x = nn.relu(nn.Conv(w[1], (5, 5), padding=2, feature_group_count=2, dtype=dt, name="conv2")(x))
    x = local_response_norm(caffe_max_pool(x))
    x = nn.relu(nn.Conv(w[2], (3, 3), padding=1, dtype=dt, name="conv3")(x))
    x = nn.relu(nn.Conv(w[3], (3, 3), padding=1, feature_group_count=2, dtype=dt, name="conv4")(x))
    x = nn.relu(nn.Conv(w[4], (3, 3), padding=1, feature_group_count=2, dtype=dt, name="conv5")(x))
    return caffe_max_pool(x)


def pool5_features(pool5: jax.Array) -> jax.Array:
  """[B, H, W, C] -> float32[B, C*H*W] in Caffe's (C, H, W) order (keeps R-CNN's fc6 weights usable)."""
  return jnp.transpose(pool5, (0, 3, 1, 2)).reshape(pool5.shape[0], -1)


def expected(widths: tuple[int, ...] = WIDTHS) -> list[convert.Expect]:
  """conv1-conv5 of a .caffemodel (`read_caffemodel` names: `<layer>.weight` [out, in / group, k, k], `.bias`)."""
  rows, channels = [], 3
  for i, (width, groups, k) in enumerate(zip(widths, _GROUPS, _KERNELS)):
    name = f"conv{i + 1}"
    rows += [
        convert.Expect(f"{name}.weight", (name, "kernel"), (width, channels // groups, k, k), "conv"),
        convert.Expect(f"{name}.bias", (name, "bias"), (width,)),
    ]
    channels = width
  return rows


IGNORED = [
    (r"fc\d+\.(weight|bias)", "a fully connected layer: the head above pool5 is trained here"),
    (r"fc-rcnn\.(weight|bias)", "R-CNN's 200-class detector layer"),
]
