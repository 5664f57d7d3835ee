"""Render for CNN's viewpoint metrics (reference §6) on the synthetic test sets, and the estimators they compare.

Metrics (`compute_vp_acc_mederror.m`): the geodesic distance between the predicted and the true camera rotation,
Δ = ‖logm(R_predᵀ R_true)‖_F / √2, the angle of the rotation that takes one camera onto the other;
`acc_pi6` = share of images with Δ < π/6 (30°), `med_err` = median Δ in degrees. Render for CNN reports both per
class and averaged over the classes; so do we (the per-category means are the headline numbers).

R here is the camera's own world-to-camera rotation (`render.camera.camera_frames`), so Δ is the physical angle
between the two cameras. It equals Render for CNN's `angle2dcm(az, el, θ)` formula when θ is their tilt label, which
is the renderer's tilt negated (R4CNN commit 5e5fba3 stores (-t) mod 360 to match PASCAL3D): tests check both against
scipy's `Rotation`.

Estimators (the registry `ESTIMATORS`; each: test images -> float[Q, 3] azimuth, elevation, tilt in degrees; a
row `viewpoint:<name>` of every set with true views):
  * `joint`: the network's viewpoint head (`jembed.embed_with_viewpoint`: the same forward pass as the point);
  * `hog_nn`: the angles of the single nearest LFD view among all shapes' 20 views (HoG pyramids, as the `hog_nn`
    retrieval baseline); tilt 0, elevation the category's LFD elevation;
  * `category_mode`: the most frequent view of the image's true category under the training view distribution (the
    histograms' top azimuth and elevation bins, tilt 0): what knowing only the category buys.
"""

import dataclasses
from typing import Callable

import numpy as np

from jembed.data import viewpoints
from jembed.evaluation import methods
from jembed.render import camera
from jembed.render import lfd

ACC_THRESHOLD_DEG = 30.0  # π/6


def camera_rotations(azimuth, elevation, tilt) -> np.ndarray:
  """float64[N, 3, 3] world-to-camera rotations of the views (degrees in, any of them mod 360)."""
  views = camera.Views.make(azimuth, elevation, tilt, 1.0)
  return camera.camera_frames(views)[0]


def geodesic_error(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
  """Angle in degrees of the rotation between two cameras, per row.

  Args:
    predicted, truth: float[N, 3] (azimuth, elevation, tilt) in degrees.

  Returns:
    float64[N] in [0, 180].
  """
  predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
  if predicted.shape != truth.shape or predicted.ndim != 2 or predicted.shape[1] != 3:
    raise ValueError(
        f"expected two [N, 3] arrays of (azimuth, elevation, tilt), got {predicted.shape} and " f"{truth.shape}"
    )
  r = np.einsum("nji,njk->nik", camera_rotations(*predicted.T), camera_rotations(*truth.T))  # R_predᵀ R_true
  # Δ from its cosine (the trace) and its sine (the skew part) together: arccos alone loses half its digits near
  # 0 and 180 degrees, atan2 of both none.
  cos = (np.trace(r, axis1=1, axis2=2) - 1.0) / 2.0
  sin = 0.5 * np.linalg.norm(
      np.stack([r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], axis=1), axis=1
  )
  return np.degrees(np.arctan2(sin, cos))


def _scores(errors: np.ndarray) -> dict:
  return dict(
      acc_pi6=float(np.mean(errors < ACC_THRESHOLD_DEG)), med_err=float(np.median(errors)), n_queries=int(len(errors))
  )


def viewpoint_scores(errors: np.ndarray, categories: np.ndarray) -> dict:
  """Acc_π/6 and MedErr per category and averaged over the categories (Render for CNN's class mean).

  Args:
    errors: float[Q] geodesic errors in degrees.
    categories: str[Q] each image's category.

  Returns:
    {'acc_pi6', 'med_err' (class means), 'acc_pi6_all', 'med_err_all' (over all images), 'n_queries',
     'per_category': {category: {'acc_pi6', 'med_err', 'n_queries'}}}.
  """
  errors, categories = np.asarray(errors, np.float64), np.asarray(categories).astype(str)
  per = {str(c): _scores(errors[categories == c]) for c in np.unique(categories)}
  overall = _scores(errors)
  return dict(
      acc_pi6=float(np.mean([s["acc_pi6"] for s in per.values()])),
      med_err=float(np.mean([s["med_err"] for s in per.values()])),
      acc_pi6_all=overall["acc_pi6"],
      med_err_all=overall["med_err"],
      n_queries=overall["n_queries"],
      per_category=per,
  )


def modal_view(distribution: viewpoints.ViewDistribution) -> tuple[float, float, float]:
  """(azimuth, elevation, tilt) of the most frequent view: the centres of the heaviest azimuth (22.5°) and elevation
  (10°) bins, tilt 0. A view file's samples are binned the same way first."""
  if isinstance(distribution, viewpoints.HistogramViews):
    az_w, el_w = np.asarray(distribution.azimuth_weights), np.asarray(distribution.elevation_weights)
  else:
    az, el = distribution.samples[:, 0], distribution.samples[:, 1]
    az_bin = np.round(np.mod(az, 360.0) / viewpoints.AZIMUTH_BIN).astype(int) % 16
    el_bin = np.clip(np.round((el + 85.0) / viewpoints.ELEVATION_BIN).astype(int), 0, 17)
    az_w, el_w = np.bincount(az_bin, minlength=16), np.bincount(el_bin, minlength=18)
  return (
      viewpoints.AZIMUTH_BIN * float(np.argmax(az_w)),
      viewpoints.ELEVATION_BIN * float(np.argmax(el_w)) - 85.0,
      0.0,
  )


def category_mode_views(categories: np.ndarray, views_dir: str = "") -> np.ndarray:
  """float64[Q, 3] each image's category's `modal_view` (the distributions the dataset was drawn from)."""
  modes = {c: modal_view(viewpoints.distribution_for(c, views_dir)) for c in np.unique(np.asarray(categories))}
  return np.asarray([modes[c] for c in np.asarray(categories)], np.float64)


def nearest_lfd_views(nearest: np.ndarray, shape_categories: np.ndarray, n_views: int = 20) -> np.ndarray:
  """float64[Q, 3] the angles of each image's nearest LFD view.

  Args:
    nearest: int[Q] index of the nearest view among all N x `n_views` views (each shape's views adjacent, in
      `lfd.lfd_views` order, as `hog_nn.hog_view_features` stacks them).
    shape_categories: str[N] each shape's category (its LFD views depend on it).
  """
  nearest = np.asarray(nearest)
  out = np.empty((len(nearest), 3), np.float64)
  for i, (shape, view) in enumerate(zip(*np.divmod(nearest, n_views))):
    views = lfd.lfd_views(str(shape_categories[shape]))
    out[i] = views.azimuth[view], views.elevation[view], views.tilt[view]
  return out


@dataclasses.dataclass(frozen=True)
class Estimator:
  """A viewpoint estimator: `estimate(images uint8[Q, S, S, 3], image categories str[Q], context)` -> float[Q, 3]
  (azimuth, elevation, tilt in degrees), or None when it cannot (a network without the head). `method`: the
  retrieval method it belongs to (it runs only when that method does), or '' for one that stands alone."""

  name: str
  label: str
  estimate: Callable
  method: str = ""


ESTIMATORS: dict[str, Estimator] = {}


def register(name: str, label: str, method: str = ""):
  """Decorator: adds an estimator; its rows are `viewpoint:<name>`, labelled `label` in results.md."""

  def wrap(fn):
    ESTIMATORS[name] = Estimator(name, label, fn, method)
    methods.add_label(f"viewpoint:{name}", label)
    return fn

  return wrap


@register("joint", "viewpoint head (joint network)", method="joint")
def head(images: np.ndarray, categories: np.ndarray, context: methods.Context) -> np.ndarray | None:
  del categories
  _, angles = context.network_outputs(images)
  if angles is None:
    return None
  return np.stack([angles[a] for a in ("azimuth", "elevation", "tilt")], axis=1)


def _nearest(kind: str, images: np.ndarray, context: methods.Context) -> np.ndarray:
  _, _, nearest = context.nearest_view(kind, images)
  return nearest_lfd_views(nearest, np.asarray(context.model.shape_categories))


@register("hog_nn", "nearest LFD view (HoG-NN)", method="hog_nn")
def hog_nn(images: np.ndarray, categories: np.ndarray, context: methods.Context) -> np.ndarray:
  del categories
  return _nearest("hog_nn", images, context)


@register("pixels", "nearest LFD view (raw pixels)", method="pixels")
def pixels(images: np.ndarray, categories: np.ndarray, context: methods.Context) -> np.ndarray:
  del categories
  return _nearest("pixels", images, context)


@register("category_mode", "category's most frequent view")
def category_mode(images: np.ndarray, categories: np.ndarray, context: methods.Context) -> np.ndarray:
  del images
  return category_mode_views(categories, context.config.data.views_dir)


def viewpoint_rows(
    images: np.ndarray, truth: np.ndarray, categories: np.ndarray, method_names, context: methods.Context
) -> dict[str, dict]:
  """{'viewpoint:<name>': `viewpoint_scores`} of every estimator that applies: those of the methods evaluated and
  the stand-alone ones.

  Args:
    images: uint8[Q, S, S, 3]; truth: float[Q, 3] their true views; categories: str[Q] their categories.
    method_names: the retrieval methods of this evaluation.
  """
  rows = {}
  for est in ESTIMATORS.values():
    if est.method and est.method not in method_names:
      continue
    views = est.estimate(images, categories, context)
    if views is not None:
      rows[f"viewpoint:{est.name}"] = viewpoint_scores(geodesic_error(views, truth), categories)
  return rows
