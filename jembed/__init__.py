"""jembed: joint embeddings of 3D shapes and images (Li, Su et al., SIGGRAPH Asia 2015) in JAX.

The public API (see `jembed.api.embed`): `load(workdir)`, `embed_images(params, images)`, `predict_viewpoint`,
`embed_with_viewpoint` (both from one forward pass), `predict_category`, `Params`, `TrainedModel`; with a trained
shape encoder `load_shape_encoder(workdir)`, `embed_shapes(params, points)`, `ShapeParams`, `TrainedJoint`. They are
imported on first use, so the shape and data stages that import `jembed.<module>` do not pay for flax and orbax.
"""

_API = (
    "load",
    "embed_images",
    "predict_viewpoint",
    "embed_with_viewpoint",
    "predict_category",
    "Params",
    "TrainedModel",
    "load_shape_encoder",
    "embed_shapes",
    "ShapeParams",
    "TrainedJoint",
)
__all__ = list(_API)


def __getattr__(name: str):
  if name in _API:
    from jembed.api import embed  # pylint: disable=g-import-not-at-top

    return getattr(embed, name)
  raise AttributeError(f"module 'jembed' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_API))
