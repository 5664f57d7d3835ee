"""New shapes placed by a trained shape encoder: surface clouds -> one forward pass -> points in the joint space.

The out-of-sample alternative to `shape_embedding.add_shapes`, which needs each new shape's 20 LFD renders, its
203,760-D HoG descriptor and its distances to every embedded shape (N x M) before a Sammon fit: here a new shape costs
one cloud of surface samples and one forward pass, whatever N is. The encoder was anchored to the Sammon points
(`config.shape_encoder.anchor`), so its points land in the space of the base run's shape points and images.
"""

import os
import time

from absl import logging
import ml_collections
import numpy as np

from jembed.api import embed
from jembed.embedding import shape_embedding
from jembed.shapes import point_clouds
from jembed.shapes import sources
from jembed.training import joint
from jembed.training import point_encoder
from jembed.workdir import paths
from jembed.workdir import records


def add_shapes(config: ml_collections.ConfigDict, workdir: str, base_workdir: str) -> records.ShapeEmbedding:
  """Places the shapes of `config.shapes` with `base_workdir`'s shape encoder; writes `workdir/shape_embedding.npz`.

  The clouds are sampled as the encoder's training clouds were (its run's points, normals and seed), cached in
  `workdir/point_clouds/`. The result's stress is NaN: no LFD-HoG distance was computed.

  Raises:
    FileNotFoundError: `base_workdir` has no trained shape encoder.
    ValueError: no usable shape in the source.
  """
  trained = embed.load_shape_encoder(base_workdir)
  os.makedirs(workdir, exist_ok=True)
  start = time.time()
  settings = trained.clouds
  clouds = point_clouds.sample_collection(
      sources.list_shapes(config.shapes),
      config.shapes.up_axis,
      config.shapes.front,
      paths.point_clouds(workdir),
      count=settings["points"],
      seed=settings["seed"],
      normals=settings["normals"],
  )
  shape_embedding.write_skipped(workdir, clouds.skipped)
  if not len(clouds.ids):
    raise ValueError(f"no usable shapes in {config.shapes.source!r} source to add")
  sampled = time.time()
  points = joint.encode_clouds(
      point_encoder.PointEncoder(trained.shape.spec), trained.shape.variables, joint.stacked_clouds(clouds, clouds.ids)
  )
  added = records.ShapeEmbedding(
      ids=np.asarray(clouds.ids),
      categories=np.asarray(clouds.categories),
      points=points.astype(np.float32),
      stress=float("nan"),
      stress_curve=np.zeros(0, np.float32),
  )
  added.save(paths.shape_embedding(workdir))
  logging.info(
      "placed %d new shapes into %s with its shape encoder (step %d): sampling %.1f s, encoding %.1f s",
      len(clouds.ids),
      base_workdir,
      trained.step,
      sampled - start,
      time.time() - sampled,
  )
  return added
