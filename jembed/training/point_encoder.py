"""The learned shape encoder: a point cloud -> one point of the joint space (OpenShape's PPAT family, encoders.md §1).

  points float32[B, P, 3] (+ optional per-point features, e.g. normals [B, P, F])
    -> farthest point sampling of `patches` centres
    -> ball query: the `nsample` nearest points within `radius` of each centre (padded with the nearest)
    -> per group: concat(xyz - centre, features) -> shared MLP (Dense, ReLU; `sa_widths` then `sa_dim`)
       -> max over the group                                          (one PointNet++ set-abstraction layer)
    -> concat(centre, group feature) -> Dense(dim) -> LayerNorm; a learned CLS token first; no positional embedding
    -> `depth` pre-norm transformer blocks (bias-free qkv, heads of width dim / heads, MLP Linear-GELU-Linear)
    -> the CLS token -> Dense(out_dim) (x `point_scale`, the Sammon points' spread, as the image network's output)

Two choices differ from PPAT on purpose: the ball keeps the *nearest* `nsample` points (PPAT keeps the first ones in
index order) and FPS starts at the point farthest from the cloud's mean (PPAT at index 0). Both make the encoder a
function of the point *set*: permuting the points does not change its output. The shared MLP has no normalization
(PPAT's BatchNorm would need batch statistics synchronized over devices; a per-point LayerNorm is degenerate on the
centre point, whose relative xyz is exactly 0: its input is the bias alone, and the gradient through the norm of a
near-zero vector explodes). The LayerNorm after the lift normalizes each token instead.

Everything is pure and jittable; `fps` and `ball_query` work on one cloud and are vmapped over the batch.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
  """Everything that rebuilds the encoder (frozen and hashable: it rides with the params as static pytree data).

  Attributes:
    out_dim: D, the joint space's dimension.
    dim, depth, heads, mlp: the transformer's width, blocks, attention heads and MLP hidden size.
    sa_widths, sa_dim: the tokenizer's shared MLP (hidden widths, then the group feature's width).
    patches, radius, nsample: FPS centres, ball radius (the clouds live in the unit bounding sphere), points per group.
    in_features: per-point features besides xyz (0, or 3 for normals).
    point_scale: the output is multiplied by this (the Sammon points' RMS spread).
  """

  out_dim: int = 128
  dim: int = 64
  depth: int = 2
  heads: int = 1
  mlp: int = 128
  sa_widths: tuple[int, ...] = (32,)
  sa_dim: int = 64
  patches: int = 32
  radius: float = 0.3
  nsample: int = 16
  in_features: int = 0
  point_scale: float = 1.0

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "EncoderSpec":
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# OpenShape's released PPAT sizes (Colin97/OpenShape_code, src/models/ppat.py; encoders.md §1): the ViT-bigG-14-aligned
# model and the ViT-L/14 and B/32 ones. They take 10,000 points with 3 features (rgb; ours: normals) besides xyz.
PRESETS = {
    "demo": {},  # the defaults above: ~1.9 GFLOP per fwd+bwd of 64 clouds, under the image network's 3.0
    "ppat_bigg": dict(
        dim=512,
        depth=12,
        heads=8,
        mlp=1536,
        sa_widths=(64, 64),
        sa_dim=256,
        patches=384,
        radius=0.2,
        nsample=64,
        out_dim=1280,
    ),
    "ppat_l14": dict(
        dim=512,
        depth=12,
        heads=8,
        mlp=1024,
        sa_widths=(64, 64),
        sa_dim=128,
        patches=64,
        radius=0.4,
        nsample=256,
        out_dim=768,
    ),
    "ppat_b32": dict(
        dim=512,
        depth=12,
        heads=8,
        mlp=1024,
        sa_widths=(64, 64),
        sa_dim=128,
        patches=64,
        radius=0.4,
        nsample=256,
        out_dim=512,
    ),
}


def spec_from_config(cfg: ml_collections.ConfigDict, *, out_dim: int, point_scale: float = 1.0) -> EncoderSpec:
  """`config.shape_encoder` (a `preset`, then any non-empty field overriding it) plus what the data decides."""
  fields = dict(PRESETS[cfg.preset]) if cfg.preset in PRESETS else None
  if fields is None:
    raise ValueError(f"config.shape_encoder.preset={cfg.preset!r} is not one of {sorted(PRESETS)}")
  for name in ("dim", "depth", "heads", "mlp", "sa_dim", "patches", "radius", "nsample"):
    if cfg.get(name):
      fields[name] = cfg[name]
  if cfg.get("sa_widths"):
    fields["sa_widths"] = tuple(cfg.sa_widths)
  fields.update(out_dim=int(out_dim), in_features=3 if cfg.normals else 0, point_scale=float(point_scale))
  spec = EncoderSpec(**fields)
  if spec.dim % spec.heads:
    raise ValueError(f"config.shape_encoder: dim {spec.dim} must divide into {spec.heads} heads")
  if spec.patches > int(cfg.points) or spec.nsample > int(cfg.points):
    raise ValueError(
        f"config.shape_encoder: patches ({spec.patches}) and nsample ({spec.nsample}) must not exceed "
        f"points ({cfg.points})"
    )
  return spec


def fps(points: jax.Array, count: int) -> jax.Array:
  """Farthest point sampling of one cloud, started at the point farthest from the cloud's mean.

  Args:
    points: float32[P, 3].
    count: S <= P centres.

  Returns:
    int32[S] indices into `points`; each next one is the point farthest from those already chosen (ties: the lowest
    index, as np.argmax).
  """
  points = points.astype(jnp.float32)
  start = jnp.argmax(jnp.sum(jnp.square(points - jnp.mean(points, axis=0)), axis=-1)).astype(jnp.int32)

  def step(i, carry):
    chosen, nearest = carry
    d2 = jnp.sum(jnp.square(points - points[chosen[i - 1]]), axis=-1)
    nearest = jnp.minimum(nearest, d2)
    return chosen.at[i].set(jnp.argmax(nearest).astype(jnp.int32)), nearest

  chosen = jnp.zeros((count,), jnp.int32).at[0].set(start)
  nearest = jnp.full_like(points[:, 0], jnp.inf)  # like `points`, so it is per-device under shard_map as well
  return jax.lax.fori_loop(1, count, step, (chosen, nearest))[0]


def ball_query(points: jax.Array, centres: jax.Array, radius: float, nsample: int) -> jax.Array:
  """The `nsample` nearest points within `radius` of each centre, padded with the nearest one.

  Args:
    points: float32[P, 3].
    centres: float32[S, 3] (points of the cloud, so every ball holds at least its centre).
    radius: the ball's radius (strictly inside: d < radius).
    nsample: K points per group.

  Returns:
    int32[S, K] indices into `points`, nearest first (ties: the lower index).
  """
  d2 = jnp.sum(jnp.square(centres[:, None, :] - points[None, :, :]), axis=-1)  # [S, P]
  inside = d2 < radius * radius
  # top_k of the negated distances: the K nearest, in order; points outside the ball rank last (-inf).
  _, idx = jax.lax.top_k(jnp.where(inside, -d2, -jnp.inf), nsample)
  found = jnp.take_along_axis(inside, idx, axis=1)
  return jnp.where(found, idx, idx[:, :1]).astype(jnp.int32)


def group(
    points: jax.Array, features: jax.Array | None, patches: int, radius: float, nsample: int
) -> tuple[jax.Array, jax.Array]:
  """One cloud -> (float32[S, 3] centres, float32[S, K, 3 + F] each group's xyz relative to its centre and features)."""
  centres = points[fps(points, patches)]
  idx = ball_query(points, centres, radius, nsample)
  grouped = points[idx] - centres[:, None, :]
  if features is not None:
    grouped = jnp.concatenate([grouped, features[idx]], axis=-1)
  return centres, grouped


class Block(nn.Module):
  """A pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x))."""

  dim: int
  heads: int
  mlp: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, t, _ = x.shape
    head = self.dim // self.heads
    y = nn.LayerNorm(name="norm1")(x)
    qkv = nn.Dense(3 * self.dim, use_bias=False, name="qkv")(y).reshape(b, t, 3, self.heads, head)
    y = nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]).reshape(b, t, self.dim)
    x = x + nn.Dense(self.dim, name="proj")(y)
    y = nn.Dense(self.mlp, name="fc1")(nn.LayerNorm(name="norm2")(x))
    return x + nn.Dense(self.dim, name="fc2")(nn.gelu(y, approximate=False))


class PointEncoder(nn.Module):
  """float32[B, P, 3] points (+ float32[B, P, F] features) -> float32[B, out_dim]."""

  spec: EncoderSpec

  @nn.compact
  def __call__(self, points: jax.Array, features: jax.Array | None = None) -> jax.Array:
    spec = self.spec
    points = points.astype(jnp.float32)
    if (features is None) != (spec.in_features == 0) or (
        features is not None and features.shape[-1] != spec.in_features
    ):
      raise ValueError(
          f"the encoder takes {spec.in_features} features per point, got "
          f"{None if features is None else features.shape}"
      )
    centres, x = jax.vmap(lambda p, f: group(p, f, spec.patches, spec.radius, spec.nsample))(points, features)
    for i, width in enumerate(spec.sa_widths + (spec.sa_dim,)):  # the shared MLP (PPAT's 1x1 convs)
      x = nn.relu(nn.Dense(width, name=f"sa_fc{i}")(x))
    x = jnp.max(x, axis=2)  # [B, S, sa_dim]: max over each group
    x = nn.LayerNorm(name="lift_norm")(nn.Dense(spec.dim, name="lift")(jnp.concatenate([centres, x], axis=-1)))
    cls = self.param("cls", nn.initializers.normal(0.02), (1, 1, spec.dim))
    x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, spec.dim)), x], axis=1)
    for i in range(spec.depth):
      x = Block(spec.dim, spec.heads, spec.mlp, name=f"block{i}")(x)
    out = nn.Dense(spec.out_dim, kernel_init=nn.initializers.normal(0.01), name="shape_embedding")(x[:, 0])
    return out * spec.point_scale if spec.point_scale != 1.0 else out


def init_params(spec: EncoderSpec, rng: jax.Array, num_points: int) -> dict:
  """The encoder's variables {'params': ...} for clouds of `num_points` points."""
  points = jnp.zeros((1, num_points, 3), jnp.float32)
  features = jnp.zeros((1, num_points, spec.in_features), jnp.float32) if spec.in_features else None
  # Points at one spot would put every group in one ball; spread them so init traces the general case.
  points = points + jnp.linspace(-0.5, 0.5, num_points)[None, :, None]
  return PointEncoder(spec).init({"params": rng}, points, features)


def flops_per_cloud(spec: EncoderSpec, num_points: int) -> float:
  """Multiply-adds x 2 of one forward pass (GEMMs and distances; FPS and top_k counted as their distance work)."""
  s, k, d = spec.patches, spec.nsample, spec.dim
  widths = (3 + spec.in_features,) + spec.sa_widths + (spec.sa_dim,)
  tokenizer = s * k * sum(a * b for a, b in zip(widths[:-1], widths[1:])) + s * (3 + spec.sa_dim) * d
  distances = s * num_points * 3 * 2  # FPS updates + the ball query's distance matrix
  t = s + 1
  block = t * d * 3 * d + 2 * t * t * d + t * d * d + 2 * t * d * spec.mlp
  return 2.0 * (tokenizer + distances + spec.depth * block + d * spec.out_dim)
