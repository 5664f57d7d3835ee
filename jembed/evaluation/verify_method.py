"""The evaluation's `joint+verify` row and its refined pose (`viewpoint:verify`): `jembed.api.verify` on every set.

For each image the joint embedding's `config.verify.k` nearest shapes (or those of the joint embedding fused with
HoG-NN: `config.verify.shortlist_hog`, `verify.shortlist_scores`) are verified against the run's pose-grid cache
(`verify_grid.grid_cache`), the coarse ranking's first `config.verify.refine` are rendered again around their best grid
pose (`verify_query.add_fine`, as `launch.query --verify` does), and all are re-ranked by the fused score; the shapes
past the K keep the shortlist's order behind them. Image x image distances are the joint embedding's
(verification ranks shapes, not images).

The weights (w_hog, w_chamfer, w_prior) are `config.verify`'s when all are set; otherwise they are chosen once per
run, on the grid's hypotheses (the fine step would cost each of the 64 trials its renders), on its own synthetic
validation images (`image_sets.validation_set`: new views, white and cluttered, never a test image or a photo), by
the mean of top-1 and of the refined pose's Acc_π/6 over a small grid (`WEIGHT_GRID`), and written to
`W/verify/verify_weights.json`, which `launch.query --verify` reads. With the deep comparison on
(`config.verify.backbone`, `jembed.api.verify_deep`), its weight w_deep is chosen the same way from `W_DEEP_GRID`
beside each of the others (unless set), and the file records the backbone so that the query compares the same way.
"""

import itertools
import os

from absl import logging
import numpy as np

from jembed.api import retrieval
from jembed.api import verify
from jembed.api import verify_deep
from jembed.api import verify_grid
from jembed.api import verify_query
from jembed.embedding import hog_nn
from jembed.evaluation import image_sets
from jembed.evaluation import methods
from jembed.evaluation import viewpoint
from jembed.render import backend
from jembed.workdir import files
from jembed.workdir import paths

NAME = "joint+verify"
WEIGHT_GRID = dict(w_hog=(0.5, 1.0, 2.0, 4.0), w_chamfer=(0.0, 0.25, 0.5, 1.0), w_prior=(0.0, 0.5, 1.0, 2.0))
W_DEEP_GRID = (0.5, 1.0, 2.0, 4.0, 8.0)  # w_deep's choices, with each of the grid's (config.verify.backbone set)
_BEHIND = 1e3  # added to the joint distance of shapes past the K, so every verified candidate ranks before them


def _renderer(context: methods.Context):
  if "verify_renderer" not in context.cache:
    context.cache["verify_renderer"] = backend.get_renderer(context.config.render.backend)
  return context.cache["verify_renderer"]


def _grid(context: methods.Context):
  if "verify_grid" not in context.cache:
    settings = verify.Settings.from_config(context.config)
    grid = verify_grid.grid_cache(context.workdir, context.model.shape_ids, _renderer(context), settings)
    context.cache["verify_grid"] = (grid, *verify_grid.on_device(grid))
  return context.cache["verify_grid"]


def hypotheses(images: np.ndarray, context: methods.Context) -> dict:
  """What the weights do not change, once per set of images: {'candidates': int[Q, K], 'joint': float32[Q, N] (the
  shortlist's scores: `verify.shortlist_scores`),
  'hog', 'chamfer', 'prior', 'deep': float32[Q, K, H] (deep: zeros when `config.verify.backbone` is off),
  'angles': float32[Q, K, H, 3]}."""
  key = ("verify", methods.images_key(images))
  if key not in context.cache:
    settings = verify.Settings.from_config(context.config)
    grid, view_hog, view_edges = _grid(context)
    points, angles = context.network_outputs(images)
    joint = context.model.shape_index.distances(points)
    if settings.shortlist_hog > 0:  # the shortlist, and the joint term, from the joint embedding and HoG-NN
      hog_d = context.nearest_view("hog_nn", hog_nn.at_photo_size(images))[1]
      joint = verify.shortlist_scores(joint, hog_d, settings.shortlist_hog)
    candidates = np.argsort(joint, axis=1, kind="stable")[:, : min(settings.k, joint.shape[1])].astype(np.int32)
    photo_hog, photo_dt = verify.photo_features(verify.photo_crops(images, settings.size))
    hog_d, chamfer = verify.hypothesis_distances(photo_hog, photo_dt, view_hog, view_edges, candidates)
    head = None if angles is None else np.stack([angles[a] for a in ("azimuth", "elevation", "tilt")], axis=1)
    hyp_angles = grid.angles[candidates]
    context.cache[key] = dict(
        candidates=candidates,
        joint=joint,
        joint_k=np.take_along_axis(joint, candidates, axis=1),
        photo_hog=np.asarray(photo_hog),
        photo_dt=np.asarray(photo_dt),
        hog=np.asarray(hog_d),
        chamfer=np.asarray(chamfer),
        prior=verify.head_prior(hyp_angles, head),
        deep=verify_deep.hypotheses(context.workdir, context.model, _renderer(context), images, candidates, settings),
        angles=hyp_angles,
    )
  return context.cache[key]


def rerank(h: dict, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(float32[Q, N] image x shape distances, int[Q, K] the re-ranked candidates, float32[Q, 3] the refined pose) by
  weights float[4] (w_hog, w_chamfer, w_prior, w_deep)."""
  weights = np.asarray(weights, np.float32)
  fused, best = verify.verify_candidates(h["joint_k"], h["hog"], h["chamfer"], weights, h["prior"], h["deep"])
  fused, best = np.asarray(fused), np.asarray(best)
  order = np.argsort(fused, axis=1, kind="stable")
  rows = np.arange(len(fused))
  distances = h["joint"] + _BEHIND
  distances[rows[:, None], h["candidates"]] = fused
  top = order[:, 0]
  pose = h["angles"][rows, top, best[rows, top]]
  return distances.astype(np.float32), np.take_along_axis(h["candidates"], order, axis=1), pose


def _weights_key(context: methods.Context) -> dict:
  settings = verify.Settings.from_config(context.config)
  key = dict(step=int(context.model.step), k=settings.k, grid=verify_grid.grid_key(settings))
  if settings.shortlist_hog > 0:  # other candidates, and another joint term: chosen again
    key.update(shortlist_hog=settings.shortlist_hog)
  if settings.backbone:  # the others are chosen beside the deep comparison
    key.update(
        backbone=settings.backbone,
        backbone_weights=settings.backbone_weights,
        deep_size=settings.deep_size,
        w_deep=settings.w_deep,
    )
  return key


def _candidate_weights(settings: verify.Settings, has_prior: bool) -> list[tuple[float, float, float, float]]:
  """The (w_hog, w_chamfer, w_prior, w_deep) the choice tries: the grid where not set (the three together, w_deep
  alone; the grid's w_prior only 0 without a viewpoint head), w_deep 0 when the deep comparison is off."""
  if settings.weights is not None:
    three = [settings.weights]
  else:
    three = [w for w in itertools.product(*WEIGHT_GRID.values()) if has_prior or not w[2]]
  deep = (0.0,) if not settings.backbone else (settings.w_deep,) if settings.w_deep >= 0 else W_DEEP_GRID
  return [(*w, d) for w in three for d in deep]


def choose_weights(context: methods.Context) -> tuple[float, float, float, float]:
  """The fused score's (w_hog, w_chamfer, w_prior, w_deep): `config.verify`'s where set, the rest chosen on the
  run's synthetic validation images (cached in the run's `W/verify/verify_weights.json`)."""
  settings = verify.Settings.from_config(context.config)
  candidates = _candidate_weights(settings, has_prior=True)
  if len(candidates) == 1:
    return candidates[0]
  if "verify_weights" in context.cache:
    return context.cache["verify_weights"]
  path = paths.verify_dir(context.workdir, paths.VERIFY_WEIGHTS)
  key = _weights_key(context)
  saved = verify_query.saved_weights(context.workdir)
  if saved and saved.get("key") == key:
    context.cache["verify_weights"] = (*saved["weights"], saved.get("w_deep", 0.0))
    return context.cache["verify_weights"]
  val = image_sets.validation_set(context.config, context.workdir, context.model.shape_ids)
  h = hypotheses(val.images, context)
  categories = np.asarray(context.model.shape_categories).astype(str)[val.shape_index]
  table = []
  for weights in _candidate_weights(settings, has_prior=h["prior"].max() > 0):
    _, ranked, pose = rerank(h, weights)
    top1 = float(np.mean(ranked[:, 0] == val.shape_index))
    acc = viewpoint.viewpoint_scores(viewpoint.geodesic_error(pose, val.views), categories)["acc_pi6"]
    table.append(((top1 + acc) / 2, top1, acc, weights))
  score, top1, acc, weights = max(table, key=lambda row: row[0])
  logging.info(
      "verify: weights %s chosen on %d validation images (top-1 %.3f, Acc_pi/6 %.3f)", weights, len(val), top1, acc
  )
  os.makedirs(os.path.dirname(path), exist_ok=True)
  record = dict(key=key, weights=list(weights[:3]))
  if settings.backbone:
    record["w_deep"] = weights[3]
  record["validation"] = dict(images=len(val), top1=top1, acc_pi6=acc, score=score)
  files.write_json(path, record, indent=1)
  context.cache["verify_weights"] = tuple(weights)
  return context.cache["verify_weights"]


def verified(images: np.ndarray, context: methods.Context) -> tuple[np.ndarray, np.ndarray]:
  """(float32[Q, N] image x shape distances of `joint+verify`, float32[Q, 3] the refined poses)."""
  key = ("verified", methods.images_key(images))
  if key not in context.cache:
    settings, weights = verify.Settings.from_config(context.config), choose_weights(context)
    h = hypotheses(images, context)
    if settings.refine:  # the fine step around the best grid poses of the coarse ranking's first candidates
      h = verify_query.add_fine(
          context.workdir,
          context.model,
          _renderer(context),
          h,
          h["photo_hog"],
          h["photo_dt"],
          weights,
          settings,
          settings.refine,
      )
    distances, _, pose = rerank(h, weights)
    context.cache[key] = (distances, pose)
  return context.cache[key]


@methods.register(NAME, "joint + verification by rendering")
def joint_verify(images: np.ndarray, context: methods.Context) -> methods.Distances:
  points, _ = context.network_outputs(images)
  return verified(images, context)[0], retrieval.pairwise_l2(points, points)


@viewpoint.register("verify", "refined pose (joint + verification)", method=NAME)
def refined_pose(images: np.ndarray, categories: np.ndarray, context: methods.Context) -> np.ndarray:
  del categories
  return verified(images, context)[1]
