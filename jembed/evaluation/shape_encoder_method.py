"""The `shape_encoder` evaluation method: images and shapes both placed by the networks of the joint run.

The image side is the jointly trained image network (`embed_images` of `workdir/shape_encoder/`), the shape side is the
shape encoder's point of every shape's surface cloud (`embed_shapes`): image->shape distances are between the two,
image->image between the image points. No Sammon point enters, so on a run split by shape (`split_by='shape'`) the
held-out shapes are placed by the encoder alone, from clouds it never trained on.

`joint_encoder_placed` pairs the regression network's image points (the `joint` row's) with the encoder's shape
points: the encoder as the paper's out-of-sample map, the way `embed_shapes --into` uses it.
"""

import numpy as np

from jembed.api import embed
from jembed.api import retrieval
from jembed.evaluation import methods
from jembed.shapes import point_clouds
from jembed.training import joint
from jembed.training import point_encoder

NAME = "shape_encoder"
PLACED_NAME = "joint_encoder_placed"


def available(workdir: str) -> bool:
  """Whether `workdir` has a trained shape encoder (then its row is added to the table)."""
  return joint.latest_meta(workdir) is not None


def encode_workdir_shapes(workdir: str, trained: embed.TrainedJoint) -> np.ndarray:
  """float32[N, D]: the encoder's point of each of the workdir's embedded shapes (its Sammon rows' order)."""
  settings = trained.clouds
  clouds = point_clouds.workdir_clouds(
      workdir, count=settings["points"], seed=settings["seed"], normals=settings["normals"]
  )
  encoder = point_encoder.PointEncoder(trained.shape.spec)
  return joint.encode_clouds(encoder, trained.shape.variables, joint.stacked_clouds(clouds, trained.shape_ids))


def _loaded(context: methods.Context) -> tuple[embed.TrainedJoint, np.ndarray]:
  """The joint run and its points of all N shapes, loaded once per evaluation (kept on the context)."""
  if not hasattr(context, "shape_encoder_run"):
    trained = embed.load_shape_encoder(context.workdir)
    context.shape_encoder_run = (trained, encode_workdir_shapes(context.workdir, trained))
  return context.shape_encoder_run


@methods.register(NAME, "image <-> point-cloud encoder")
def shape_encoder(images: np.ndarray, context: methods.Context) -> methods.Distances:
  """(float32[Q, N] image x shape, float32[Q, Q] image x image) of the joint run on one set's images."""
  trained, shape_points = _loaded(context)
  points = methods.embed_all(trained.image, images)
  return retrieval.pairwise_l2(points, shape_points), retrieval.pairwise_l2(points, points)


@methods.register(PLACED_NAME, "joint embedding, shapes placed by the encoder")
def joint_encoder_placed(images: np.ndarray, context: methods.Context) -> methods.Distances:
  """The regression network's image points against the encoder's shape points: the encoder as the paper's
  out-of-sample map (it was anchored to the Sammon points the network regresses to)."""
  _, shape_points = _loaded(context)
  points = methods.embed_all(context.model.params, images)
  return retrieval.pairwise_l2(points, shape_points), retrieval.pairwise_l2(points, points)
