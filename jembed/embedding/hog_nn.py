"""HoG-NN: a photo's distance to a shape as the nearest of the shape's 20 LFD views in HoG (the paper's baseline,
reference §4.4), from the descriptors the shape stage already computed.

The query side is computed as the shape side's views are: gray, `imresize` to 120 x 120, the three-level HoG
pyramid (`embedding/hog.py`, 10,188-D); the shape side is `workdir/lfd/descriptors.npy`. The paper's baseline used one
60 x 60 level against 100 views; this one reuses the 20 views and the three levels the shape embedding was built
from, so it costs no rendering. The evaluation's `hog_nn` row and verification's shortlist (`config.verify.
shortlist_hog`, `api.verify.shortlist_scores`) both read it from here.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jembed.embedding import descriptors
from jembed.embedding import distances
from jembed.embedding import hog
from jembed.embedding import hog_input
from jembed.utils import resample

# The side a photo is stretched to before its HoG pyramid when HoG-NN feeds verification's shortlist, in the
# evaluation (whose photo sets are read at config.data.image_size, 128 by default) and in a query alike.
PHOTO_SIZE = 128


def hog_features(images: np.ndarray, batch: int = 256) -> np.ndarray:
  """Query images -> their HoG pyramids, computed as the shape side's views are (gray, `imresize` to 120, pyramid).

  Args:
    images: uint8[Q, H, W, 3].
    batch: images per jitted call (the last one is padded, so one compiled shape serves every call).

  Returns:
    float32[Q, 10188].
  """
  gray = hog_input.rgb2gray(images)
  out = np.empty((len(gray), hog.PYRAMID_DIM), np.float32)
  batch = min(batch, 1 << max(0, len(gray) - 1).bit_length())  # a single photo is not padded to 256
  for lo in range(0, len(gray), batch):
    chunk = np.zeros((batch, hog_input.HOG_SIZE, hog_input.HOG_SIZE), np.float32)
    part = [hog_input.hog_input(g) for g in gray[lo : lo + batch]]
    chunk[: len(part)] = part
    out[lo : lo + len(part)] = np.asarray(hog.hog_pyramid(chunk))[: len(part)]
  return out


def nearest_view(query: np.ndarray, views: np.ndarray, n_views: int) -> tuple[np.ndarray, np.ndarray]:
  """float32[Q, F] queries x float32[N * n_views, F] views (each shape's views adjacent) -> (float32[Q, N], the
  minimum over each shape's views; int64[Q], the index of each query's nearest view among all N * n_views, whose
  angles are a viewpoint estimate: `evaluation.viewpoint.nearest_lfd_views`)."""
  d = distances.cross_distances(query, views, refine_rtol=0.0)
  return d.reshape(len(query), -1, n_views).min(axis=-1), np.argmin(d, axis=1)


def hog_view_features(workdir: str, shape_ids: np.ndarray) -> np.ndarray:
  """float32[N * 20, 10188] the LFD views' HoG pyramids of `shape_ids`, in that order (a memory map when possible).

  Raises:
    ValueError: a shape of the embedding has no descriptor (the embedding and the LFD cache disagree).
  """
  desc = descriptors.load_descriptors(workdir)
  row = {s: i for i, s in enumerate(desc.ids)}
  missing = [str(s) for s in shape_ids if str(s) not in row]
  if missing:
    raise ValueError(
        f"{len(missing)} embedded shapes have no LFD descriptor in {workdir}/lfd (e.g. {missing[0]}): "
        f"rerun launch/embed_shapes.py"
    )
  order = np.asarray([row[str(s)] for s in shape_ids])
  features = desc.features if np.array_equal(order, np.arange(len(desc.ids))) else desc.features[order]
  return features.reshape(-1, hog.PYRAMID_DIM)


def at_photo_size(images: np.ndarray) -> np.ndarray:
  """uint8[Q, H, W, 3] -> uint8[Q, PHOTO_SIZE, PHOTO_SIZE, 3] (stretched as the training crops are; unchanged when
  already that size)."""
  if images.shape[1:3] == (PHOTO_SIZE, PHOTO_SIZE):
    return images
  return np.stack([resample.stretch(im, PHOTO_SIZE) for im in images])


def resident_views(views: np.ndarray) -> tuple[jax.Array, jax.Array]:
  """`hog_view_features` held on the device for query after query: (float32[V, F] the views, float32[V] their
  squared norms). A query then reads no file: streaming IKEA's 4,500 x 10,188 views from the memory map took 0.6 s a
  photo, the resident product 3 ms."""
  views = jax.device_put(np.asarray(views, np.float32))
  return views, jnp.sum(views * views, axis=1)


@functools.partial(jax.jit, static_argnames=("n_views",))
def _nearest_resident(query: jax.Array, views: jax.Array, sq: jax.Array, n_views: int) -> jax.Array:
  # Contracted as stored: `query @ views.T` made XLA:CPU copy the transposed views on every call (70 ms, not 3).
  dots = jnp.einsum("qf,vf->qv", query, views, precision="highest")
  d2 = jnp.sum(query * query, axis=1)[:, None] + sq[None] - 2.0 * dots
  d = jnp.sqrt(jnp.maximum(d2, 0.0))
  return jnp.min(d.reshape(query.shape[0], -1, n_views), axis=-1)


def hog_nn_distances(images: np.ndarray, resident: tuple[jax.Array, jax.Array], n_shapes: int) -> np.ndarray:
  """float32[Q, N] HoG-NN distances of uint8[Q, H, W, 3] images to the N shapes whose views are `resident`
  (`resident_views`): `nearest_view`'s distances, as one jitted product."""
  views, sq = resident
  return np.asarray(_nearest_resident(hog_features(images), views, sq, views.shape[0] // n_shapes))
