"""Feature inversion (Mahendran & Vedaldi, CVPR 2015): the image a trained network maps to given features.

What a network keeps of an image is what survives the round trip image -> features -> image: an image found by
optimisation whose features match, from a random start, shows what every image with those features shares. The
objective (per image, as M&V's eq. 1 with their normalisations):

  ||phi(x) - phi0||^2 / ||phi0||^2  +  alpha_weight * R_alpha(x)  +  tv_weight * R_TV(x)

  R_alpha(x) = sum |x|^alpha / (H W B^alpha)                          keeps pixels in range (alpha = 6)
  R_TV(x)    = sum_ij,c (dx_ijc^2 + dy_ijc^2)^(beta/2) / (H W V^beta)  prefers piecewise smooth images (beta = 2)

with x the image in the network's unit range (pixel = 127.5 (x + 1), so B = 1 bounds it), dx, dy the differences to
the right and lower neighbours, and V = B / 6.5 a typical neighbour difference. phi is any layer the network records
(`layer_names`: conv1.., fc6.., and 'point', the embedding itself), so phi0 may also be a point that no image made:
a shape's Sammon point inverts to the image the network associates with that shape.

The solver is M&V's: momentum SGD (0.9) from a random image of typical norm, the learning rate cut 10x twice with
the momentum reset at each cut, all iterations in one jitted `lax.scan`, deterministic from a seed.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jembed.api import embed
from jembed.training import model as model_lib

POINT = "point"  # the embedding layer: the network's output, in the shapes' space
TYPICAL_VARIATION = 1.0 / 6.5  # V = B / 6.5 with B = 1 (the unit range), M&V's typical neighbour difference
# TV weight by depth, in M&V's 1 : 10 : 100 proportion for shallow (conv1-2), middle (conv3-5) and deep (fc, point)
# layers; the scale was chosen by eye on the demo network (lower leaves the deep layers' inversions as noise).
TV_WEIGHTS = {"shallow": 0.003, "middle": 0.03, "deep": 0.3}


@dataclasses.dataclass(frozen=True)
class Settings:
  """The objective's weights and the solver's schedule (hashable: jit specializes on it).

  Attributes:
    iterations: gradient steps (M&V: 400).
    learning_rate: the first step's largest pixel change, in the unit range; the learning rate is this over the
      largest entry of the first gradient, so one setting fits every layer (their gradients differ by orders of
      magnitude).
    momentum: heavy-ball momentum (M&V: 0.9).
    cuts: fractions of `iterations` at which the learning rate drops 10x and the momentum restarts from zero.
    alpha, alpha_weight: the alpha-norm's exponent and weight.
    beta, tv_weight: the TV exponent (2: smooth; 1 leaves spikes, M&V) and weight; None = by the layer's depth,
      `TV_WEIGHTS`.
    init_rms: the random start's RMS in the unit range (a typical image's).
    jitter: each step sees the image shifted (cyclically) by up to this many pixels, a fresh random shift per step
      (M&V's IJCV 2016 follow-up): detail that only works at one exact position, the adversarial kind, stops paying.
      Not at shallow layers (`for_layer`).
  """

  iterations: int = 400
  learning_rate: float = 0.05
  momentum: float = 0.9
  cuts: tuple[float, ...] = (0.5, 0.75)
  alpha: float = 6.0
  alpha_weight: float = 1e-3
  beta: float = 2.0
  tv_weight: float | None = None
  init_rms: float = 0.5
  jitter: int = 2


@dataclasses.dataclass(frozen=True)
class Inversion:
  """What `invert` returns.

  Attributes:
    images: uint8[B, S, S, 3] the reconstructions (pixels clipped to 0..255).
    feature_loss: float32[B] ||phi(x) - phi0||^2 / ||phi0||^2 reached (at the last iterate).
    start_loss: float32[B] the same at the random start.
    objective: float32[T, B] the whole objective per iteration.
  """

  images: np.ndarray
  feature_loss: np.ndarray
  start_loss: np.ndarray
  objective: np.ndarray


def layer_names(spec: model_lib.ModelSpec) -> tuple[str, ...]:
  """The layers `layer_features` can read, input to output: convN (after ReLU; the small backbone's), fcN (after
  ReLU), 'point'. Other backbones (jembed/backbones/) do not record their layers yet: their fc layers and point."""
  convs = len(spec.widths) if spec.backbone == "small" else 0
  return tuple(f"conv{i + 1}" for i in range(convs)) + tuple(f"fc{i + 6}" for i in range(len(spec.hidden))) + (POINT,)


def check_layers(spec: model_lib.ModelSpec, layers: list[str]) -> tuple[str, ...]:
  """`layers` as a tuple, or ValueError naming the unknown one and the known ones."""
  known = layer_names(spec)
  for layer in layers:
    if layer not in known:
      raise ValueError(f"--layers: unknown layer {layer!r}; this network has {', '.join(known)}")
  return tuple(layers)


def layer_depth(spec: model_lib.ModelSpec, layer: str) -> str:
  """'shallow' (the first half of the convolutions, conv1-2 of CaffeNet), 'middle' (the other convolutions) or
  'deep' (fully connected layers and the point)."""
  convs = [name for name in layer_names(spec) if name.startswith("conv")]
  if layer not in convs:
    return "deep"
  return "shallow" if convs.index(layer) < max(1, len(convs) // 2) else "middle"


def for_layer(settings: Settings, spec: model_lib.ModelSpec, layer: str) -> Settings:
  """`settings` for `layer`: the TV weight of its depth filled in (when None), and no jitter at shallow layers,
  whose features are exact to the pixel (a shift there only blurs the reconstruction)."""
  depth = layer_depth(spec, layer)
  tv_weight = TV_WEIGHTS[depth] if settings.tv_weight is None else settings.tv_weight
  return dataclasses.replace(settings, tv_weight=tv_weight, jitter=0 if depth == "shallow" else settings.jitter)


def to_pixels(x: jax.Array) -> jax.Array:
  """Unit range -> pixel values 0..255 (float, unclipped: the optimiser sees the true gradient)."""
  return 127.5 * (x + 1.0)


def to_unit(pixels: jax.Array) -> jax.Array:
  """Pixel values 0..255 -> the unit range [-1, 1]."""
  return jnp.asarray(pixels, jnp.float32) / 127.5 - 1.0


def layer_features(params: embed.Params, pixels: jax.Array, layer: str) -> jax.Array:
  """One layer's activations, flattened: float32[B, H, W, 3] pixel values (0..255) -> float32[B, F].

  The network stretches other sizes to its own, as for uint8 images; floats are not clipped, so gradients reach
  every pixel. 'point' is the network's point for the image itself, before `spec.mirror_average` (an inversion
  matches one image's features, and the mirror-averaged point is mirror-symmetric: both an image and its mirror
  would match it).
  """
  out, state = model_lib.EmbeddingNet(params.spec).apply(
      params.variables, pixels, train=False, mutable=["intermediates"]
  )
  if layer == POINT:
    return out[POINT]
  recorded = {}

  def collect(tree):
    for key, value in tree.items():
      if key == "layers":
        recorded.update(value)
      elif isinstance(value, dict):
        collect(value)

  collect(state["intermediates"])
  if layer not in recorded:
    raise ValueError(f"unknown layer {layer!r}; this network has {', '.join(layer_names(params.spec))}")
  return recorded[layer].reshape(pixels.shape[0], -1)


def regulariser(x: jax.Array, settings: Settings) -> jax.Array:
  """alpha_weight * R_alpha + tv_weight * R_TV of each image: float[B, H, W, C] (unit range) -> float[B].

  Differences past the last row and column are zero (the image is edge-padded), as M&V's code pads.
  """
  h, w = x.shape[1:3]
  r_alpha = jnp.sum(jnp.abs(x) ** settings.alpha, axis=(1, 2, 3)) / (h * w)
  dx = jnp.pad(x[:, :, 1:] - x[:, :, :-1], ((0, 0), (0, 0), (0, 1), (0, 0)))
  dy = jnp.pad(x[:, 1:] - x[:, :-1], ((0, 0), (0, 1), (0, 0), (0, 0)))
  sq = dx * dx + dy * dy
  # beta < 2 is not differentiable where neighbours are equal (always true at the padded edge): a tiny floor.
  tv = sq if settings.beta == 2.0 else (sq + 1e-8) ** (settings.beta / 2)
  r_tv = jnp.sum(tv, axis=(1, 2, 3)) / (h * w * TYPICAL_VARIATION**settings.beta)
  return settings.alpha_weight * r_alpha + settings.tv_weight * r_tv


def feature_loss(params: embed.Params, x: jax.Array, targets: jax.Array, layer: str) -> jax.Array:
  """||phi(x) - phi0||^2 / ||phi0||^2 per image: x float32[B, H, W, 3] (unit range), targets float32[B, F] -> [B]."""
  phi = layer_features(params, to_pixels(x), layer)
  return jnp.sum((phi - targets) ** 2, axis=-1) / jnp.maximum(jnp.sum(targets**2, axis=-1), 1e-12)


def objective(params: embed.Params, x: jax.Array, targets: jax.Array, layer: str, settings: Settings) -> jax.Array:
  """float32[B]: the feature loss plus the regulariser, per image."""
  return feature_loss(params, x, targets, layer) + regulariser(x, settings)


def start_images(rng: jax.Array, batch: int, size: int, settings: Settings) -> jax.Array:
  """float32[B, size, size, 3]: Gaussian noise of RMS `init_rms` (unit range), the same for every call with `rng`."""
  return settings.init_rms * jax.random.normal(rng, (batch, size, size, 3), jnp.float32)


@functools.partial(jax.jit, static_argnames=("layer", "settings"))
def _solve(
    params: embed.Params, targets: jax.Array, x0: jax.Array, rng: jax.Array, layer: str, settings: Settings
) -> tuple[jax.Array, jax.Array]:
  """Momentum SGD on the summed objective (the images are independent: no layer mixes examples)."""

  def total(x, shift):
    return jnp.sum(feature_loss(params, jnp.roll(x, shift, axis=(1, 2)), targets, layer) + regulariser(x, settings))

  grad = jax.grad(total)
  per_image = grad(x0, jnp.zeros(2, jnp.int32))
  # Each image's own step size: its first step moves its largest pixel by `learning_rate`.
  lr0 = settings.learning_rate / jnp.maximum(jnp.max(jnp.abs(per_image), axis=(1, 2, 3), keepdims=True), 1e-12)
  cuts = jnp.asarray([int(round(c * settings.iterations)) for c in settings.cuts] or [settings.iterations + 1])

  def step(carry, t):
    x, v = carry
    passed = jnp.sum(t >= cuts)
    lr = lr0 * 0.1**passed
    v = jnp.where(jnp.any(t == cuts), 0.0, v)  # momentum reset at each cut
    shift = jax.random.randint(jax.random.fold_in(rng, t), (2,), -settings.jitter, settings.jitter + 1)
    g = grad(x, shift)
    v = settings.momentum * v - lr * g
    x = x + v
    return (x, v), objective(params, x, targets, layer, settings)

  (x, _), curve = jax.lax.scan(step, (x0, jnp.zeros_like(x0)), jnp.arange(settings.iterations))
  return x, curve


def invert(
    params: embed.Params,
    targets: np.ndarray,
    layer: str,
    settings: Settings = Settings(),
    seed: int = 0,
    size: int | None = None,
) -> Inversion:
  """Images whose `layer` features are `targets`.

  Args:
    params: a trained network (`embed.load(workdir).params`).
    targets: float32[B, F] features of `layer` (from `layer_features`, or any point of the embedding for 'point').
    layer: one of `layer_names(params.spec)`.
    settings: the objective and the solver.
    seed: the random start's seed; the same seed gives the same images. Every target starts from the same noise
      image, so two inversions differ only through their targets (which is what comparing them should measure).
    size: the square size to reconstruct at (default: the network's input size).

  Returns:
    An `Inversion`.
  """
  targets = jnp.asarray(targets, jnp.float32)
  settings = for_layer(settings, params.spec, layer)
  size = int(size or params.spec.image_size)
  start_rng, jitter_rng = jax.random.split(jax.random.key(seed))
  x0 = jnp.broadcast_to(start_images(start_rng, 1, size, settings), (len(targets), size, size, 3))
  start = feature_loss(params, x0, targets, layer)
  x, curve = _solve(params, targets, x0, jitter_rng, layer, settings)
  reached = feature_loss(params, x, targets, layer)
  images = np.asarray(jnp.clip(jnp.round(to_pixels(x)), 0, 255).astype(jnp.uint8))
  return Inversion(
      images=images, feature_loss=np.asarray(reached), start_loss=np.asarray(start), objective=np.asarray(curve)
  )
