"""The public API: a trained run's network as pure functions any JAX code can jit, vmap or grad through.

  import jax, numpy as np, PIL.Image, jembed
  model = jembed.load("/tmp/jembed")  # the trained network and the shape points of a workdir
  images = np.asarray(PIL.Image.open("photo.jpg").convert("RGB"))[None]  # uint8[1, H, W, 3], any size
  points = jax.jit(jembed.embed_images)(model.params, images)  # float32[1, D], in the shapes' space
  print(model.shape_ids[np.argmin(((points[:, None] - model.shape_points) ** 2).sum(-1), axis=1)])

With a trained shape encoder (`config.shape_encoder`), the shape side is a function too:

  joint = jembed.load_shape_encoder("/tmp/jembed")      # both networks of the joint run
  points = jax.jit(jembed.embed_shapes)(joint.shape, clouds)  # float32[B, P, 3] surface samples -> float32[B, D]
  images = jax.jit(jembed.embed_images)(joint.image, photos)  # in the same space

`Params` carries the architecture (`ModelSpec`) as static pytree data, so `embed_images(params, images)` needs
nothing else: no globals, no hidden state, one compiled program per architecture and image shape.
"""

import dataclasses
import functools
import os

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jembed.api import index
from jembed.training import checkpoints
from jembed.training import joint
from jembed.training import model as model_lib
from jembed.training import point_encoder
from jembed.workdir import files
from jembed.workdir import records
from jembed.workdir import stage_checks


@flax.struct.dataclass
class Params:
  """A trained network: its variables (a pytree of arrays) and its architecture (static, hashable).

  Attributes:
    variables: {'params': ...}, what `EmbeddingNet(spec).apply` takes.
    spec: the architecture; part of the pytree's structure, so jit specializes on it.
  """

  variables: dict
  spec: model_lib.ModelSpec = flax.struct.field(pytree_node=False)


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """What `load` returns.

  Attributes:
    params: the network (pass to `embed_images`, `predict_viewpoint`, `predict_category`).
    shape_points: float32[N, D], the shapes' embedding points (row = shape).
    shape_ids: str[N] the shapes' ids.
    shape_categories: str[N] each shape's category.
    categories: the category head's class names (the dataset's sorted categories).
    step: the training step of the checkpoint.
  """

  params: Params
  shape_points: np.ndarray
  shape_ids: np.ndarray
  shape_categories: np.ndarray
  categories: tuple[str, ...]
  step: int

  @functools.cached_property
  def shape_index(self) -> index.ShapeIndex:
    """The shape points on the devices, for exact nearest-shape search (`index.ShapeIndex`); made on first use."""
    return index.ShapeIndex(self.shape_points)


def load(workdir: str, step: int | None = None) -> TrainedModel:
  """The network of a training run (latest checkpoint, or `step`) and the shape embedding of its workdir.

  The variables are placed on the first local device; `jax.device_put` them elsewhere as needed.

  Raises:
    FileNotFoundError: no checkpoint or no shape_embedding.npz in `workdir`.
    provenance.Mismatch: shape_embedding.npz is not the one the network was trained on.
  """
  ckpts = checkpoints.Checkpoints(workdir, read_only=True)
  try:
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def restore(at):
      meta = ckpts.restore_meta(at)
      spec = model_lib.ModelSpec.from_dict(meta["model"])
      abstract = jax.eval_shape(lambda: model_lib.init_params(spec, jax.random.key(0)))
      variables = ckpts.restore_params(at, checkpoints.abstract_like(abstract, device))
      # Training never saves a non-finite state, so NaN/inf here is damage (a step from before the digests).
      if not all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(variables)):
        raise files.DamagedFile(f"checkpoint step {at} in {ckpts.directory} holds NaN/inf parameters")
      return meta, spec, variables

    # The newest intact checkpoint (damaged newer ones are skipped with a warning), or exactly `step`.
    _, (meta, spec, variables) = ckpts.newest_intact(restore, None if step is None else [step])
  finally:
    ckpts.close()
  embedding = records.load_shape_embedding(workdir)  # read once: the points checked are the points returned
  stage_checks.check_network_inputs(workdir, embedding.fingerprint())
  return TrainedModel(
      params=Params(variables=variables, spec=spec),
      shape_points=np.asarray(embedding.points, np.float32),
      shape_ids=embedding.ids,
      shape_categories=embedding.categories,
      categories=tuple(meta.get("categories", ())),
      step=int(meta["step"]),
  )


def _forward(params: Params, images: jax.Array, *, point: bool = True) -> tuple[dict[str, jax.Array], tuple[int, ...]]:
  """The network on images [..., H, W, 3] (any leading dims, none included); outputs flattened to [B, ...].

  With `spec.mirror_average` and `point` the batch and its mirror images run as one batch of 2B and 'point' is the
  mean of the two halves' points; the other outputs are the images' own. `point=False` (only the heads are read)
  skips the mirror images.
  """
  images = jnp.asarray(images)
  if images.ndim < 3 or images.shape[-1] != 3:
    raise ValueError(f"images must be [..., H, W, 3], got shape {images.shape}")
  lead = images.shape[:-3]
  flat = images.reshape((-1,) + images.shape[-3:])
  if flat.dtype != jnp.uint8:  # floats in [0, 255], e.g. after the caller's own resizing
    flat = jnp.clip(flat, 0, 255)
  net = model_lib.EmbeddingNet(params.spec)
  if not (params.spec.mirror_average and point):
    return net.apply(params.variables, flat, train=False), lead
  both = net.apply(params.variables, jnp.concatenate([flat, flat[:, :, ::-1]]), train=False)
  b = flat.shape[0]
  outputs = {k: v[:b] if v.ndim else v for k, v in both.items()}
  outputs["point"] = 0.5 * (both["point"][:b] + both["point"][b:])
  return outputs, lead


def embed_images(params: Params, images: jax.Array) -> jax.Array:
  """Images -> their embedding points, in the space of the shape points.

  Args:
    params: `load(workdir).params`.
    images: uint8[..., H, W, 3] RGB (any leading dims; a single [H, W, 3] image works, so this vmaps); any H, W
      (stretched to the network's size).

  Returns:
    float32[..., D]; with `params.spec.mirror_average` (the default config's), the mean of the image's point and
    its mirror image's.
  """
  outputs, lead = _forward(params, images)
  return outputs["point"].reshape(lead + outputs["point"].shape[-1:])


def predict_viewpoint(params: Params, images: jax.Array) -> dict[str, jax.Array]:
  """Images -> {'azimuth', 'elevation', 'tilt'}: float32[...] degrees in [0, 360), each head's most likely bin.

  Elevation and tilt come back mod 360, as Render for CNN's labels (-10 degrees reads 350).

  Raises:
    ValueError: the network was trained without `config.model.viewpoint_head`.
  """
  _check_viewpoint_head(params)
  outputs, lead = _forward(params, images, point=False)
  return _angles(params, outputs, lead)


def embed_with_viewpoint(params: Params, images: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """`embed_images` and `predict_viewpoint` from one forward pass: (float32[..., D], {'azimuth', 'elevation',
  'tilt'}: float32[...] degrees in [0, 360)).

  Raises:
    ValueError: the network was trained without `config.model.viewpoint_head`.
  """
  _check_viewpoint_head(params)
  outputs, lead = _forward(params, images)
  return outputs["point"].reshape(lead + outputs["point"].shape[-1:]), _angles(params, outputs, lead)


def _check_viewpoint_head(params: Params) -> None:
  if not params.spec.viewpoint_bins:
    raise ValueError("this network has no viewpoint head (train with --config.model.viewpoint_head=True)")


def _angles(params: Params, outputs: dict[str, jax.Array], lead: tuple[int, ...]) -> dict[str, jax.Array]:
  """Each view head's most likely bin, in degrees, shaped `lead`."""
  width = 360.0 / params.spec.viewpoint_bins
  return {
      angle: (jnp.argmax(outputs[angle], axis=-1).astype(jnp.float32) * width).reshape(lead)
      for angle in model_lib.VIEW_ANGLES
  }


def predict_category(params: Params, images: jax.Array) -> jax.Array:
  """Images -> int32[...] index into `TrainedModel.categories`.

  Raises:
    ValueError: the network was trained without `config.model.category_head`.
  """
  if not params.spec.num_categories:
    raise ValueError("this network has no category head (train with --config.model.category_head=True)")
  outputs, lead = _forward(params, images, point=False)
  return jnp.argmax(outputs["category"], axis=-1).astype(jnp.int32).reshape(lead)


@flax.struct.dataclass
class ShapeParams:
  """A trained shape encoder: its variables and its architecture (static, hashable), like `Params`."""

  variables: dict
  spec: point_encoder.EncoderSpec = flax.struct.field(pytree_node=False)


@dataclasses.dataclass(frozen=True)
class TrainedJoint:
  """What `load_shape_encoder` returns.

  Attributes:
    image: the jointly trained image network (pass to `embed_images`).
    shape: the shape encoder (pass to `embed_shapes`).
    clouds: how its input clouds were sampled: {'points': P, 'normals': bool, 'seed': int}
      (`jembed.shapes.point_clouds.sample_surface` with `shape_seed(seed, id)`).
    shape_points, shape_ids, shape_categories: the workdir's Sammon embedding (the anchors of the encoder).
    step: the joint run's checkpoint step.
  """

  image: Params
  shape: ShapeParams
  clouds: dict
  shape_points: np.ndarray
  shape_ids: np.ndarray
  shape_categories: np.ndarray
  step: int


def load_shape_encoder(workdir: str, step: int | None = None) -> TrainedJoint:
  """Both networks of a workdir's joint run (`workdir/shape_encoder/`, latest checkpoint or `step`).

  Raises:
    FileNotFoundError: the workdir has no trained shape encoder (the message says how to train one).
  """
  ckpt_dir = joint.run_dir(workdir)
  if not os.path.isdir(checkpoints.directory(ckpt_dir)):
    raise FileNotFoundError(
        f"no trained shape encoder in {workdir!r}: run launch/train.py with "
        "--config.shape_encoder.enabled=True on it"
    )
  ckpts = checkpoints.Checkpoints(ckpt_dir, read_only=True)
  try:
    meta = ckpts.restore_meta(step)
    spec = model_lib.ModelSpec.from_dict(meta["model"])
    encoder_spec = point_encoder.EncoderSpec.from_dict(meta["encoder"])
    features = meta["clouds"]["points"]
    abstract = jax.eval_shape(
        lambda: {
            "image": model_lib.init_params(spec, jax.random.key(0)),
            "shape": point_encoder.init_params(encoder_spec, jax.random.key(0), features),
        }
    )
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    variables = ckpts.restore_params(meta["step"], checkpoints.abstract_like(abstract, device))
  finally:
    ckpts.close()
  embedding = records.load_shape_embedding(workdir)
  return TrainedJoint(
      image=Params(variables["image"], spec),
      shape=ShapeParams(variables["shape"], encoder_spec),
      clouds=dict(meta["clouds"]),
      shape_points=np.asarray(embedding.points, np.float32),
      shape_ids=embedding.ids,
      shape_categories=embedding.categories,
      step=int(meta["step"]),
  )


def embed_shapes(params: ShapeParams, points: jax.Array, features: jax.Array | None = None) -> jax.Array:
  """Point clouds -> their points in the joint space (no distances to other shapes: one forward pass).

  Args:
    params: `load_shape_encoder(workdir).shape`.
    points: float32[..., P, 3] surface samples of normalized meshes (+Y up, front +X, unit bounding sphere; any
      leading dims, none included). Any P >= the encoder's patches and nsample; it was trained on the P of its run.
    features: float32[..., P, F] per-point features when the encoder takes them (normals).

  Returns:
    float32[..., D].
  """
  points = jnp.asarray(points, jnp.float32)
  if points.ndim < 2 or points.shape[-1] != 3:
    raise ValueError(f"points must be [..., P, 3], got shape {points.shape}")
  lead = points.shape[:-2]
  flat = points.reshape((-1,) + points.shape[-2:])
  if features is not None:
    features = jnp.asarray(features, jnp.float32).reshape(flat.shape[:2] + (-1,))
  out = point_encoder.PointEncoder(params.spec).apply(params.variables, flat, features)
  return out.reshape(lead + out.shape[-1:])
