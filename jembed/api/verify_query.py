"""Verification of a user's photos (`launch.query --verify`, the web page's option): `verify.py`, coarse to fine.

  coarse: the joint embedding's K nearest shapes (or, with `config.verify.shortlist_hog`, those nearest by the joint
          embedding fused with HoG-NN) at the run's pose grid (`verify_grid.grid_cache`, made once per run)
  fine:   the coarse ranking's first R candidates (`config.verify.refine`, 5) rendered at the 3 x 3 neighbourhood of
          their best coarse pose (`verify.refine_views`), R render calls of 9 views each, scored like the grid
  fused:  `verify.verify_candidates` over the coarse and fine hypotheses together, with the weights the evaluation
          chose on the run's validation images (`W/verify/verify_weights.json`), else `config.verify`'s, else
          `verify.DEFAULT_WEIGHTS`

The refined pose is the best hypothesis of the re-ranked first shape.
"""

import dataclasses
import json
import os

from absl import logging
import numpy as np

from jembed.api import embed
from jembed.api import verify
from jembed.api import verify_deep
from jembed.api import verify_grid
from jembed.embedding import hog_nn
from jembed.render import base
from jembed.shapes import manifest
from jembed.shapes import sources
from jembed.workdir import paths


@dataclasses.dataclass(frozen=True)
class Verified:
  """One photo's verified shortlist.

  Attributes:
    rows: int[K] the candidates (rows of the run's shapes), best first.
    scores: float32[K] their fused scores (lower is better), in that order.
    pose: (azimuth, elevation, tilt) in degrees: the refined pose of rows[0].
    hypotheses: how many poses each candidate was scored at (coarse + fine).
  """

  rows: np.ndarray
  scores: np.ndarray
  pose: tuple[float, float, float]
  hypotheses: int


def run_weights(workdir: str, settings: verify.Settings) -> np.ndarray:
  """float32[4] the fused score's (w_hog, w_chamfer, w_prior, w_deep) for `workdir`: each as `settings` sets it, else
  as the evaluation chose it on the run's validation images (`W/verify/verify_weights.json`), else
  `verify.DEFAULT_WEIGHTS`'s; w_deep is 0 when the deep comparison is off."""
  saved = saved_weights(workdir) or {}
  chosen_with = saved.get("key", {}).get("backbone", "")
  if saved and chosen_with != settings.backbone:
    logging.warning(
        "%s: verification's weights were chosen with config.verify.backbone=%r, and this query runs with %r: pass "
        "the config the run was evaluated with",
        workdir,
        chosen_with,
        settings.backbone,
    )
  three = settings.weights or tuple(saved.get("weights", verify.DEFAULT_WEIGHTS))[:3]
  deep = settings.w_deep if settings.w_deep >= 0 else saved.get("w_deep", verify.DEFAULT_WEIGHTS[3])
  return settings.full_weights((*three, deep))


def run_settings(workdir: str, **fields) -> verify.Settings:
  """The settings a query of `workdir` verifies with: the defaults and `fields`, plus the deep comparison the run's
  evaluation chose its weights with (`config.verify.backbone`, its weights file and crop size, and the shortlist's
  `shortlist_hog`, as saved in `W/verify/verify_weights.json`), so that the weights read back fit the comparisons
  made."""
  key = (saved_weights(workdir) or {}).get("key", {})
  deep = {name: key[name] for name in ("backbone", "backbone_weights", "deep_size", "shortlist_hog") if name in key}
  return dataclasses.replace(verify.Settings(), **{**deep, **fields})


def saved_weights(workdir: str) -> dict | None:
  """`W/verify/verify_weights.json` as the evaluation wrote it ({'key', 'weights', 'validation'}), None if absent."""
  path = paths.verify_dir(workdir, paths.VERIFY_WEIGHTS)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


_MESHES: dict[tuple[str, str], object] = {}  # (workdir, shape id) -> normalized mesh, kept for the next photos
_MAX_MESHES = 512


def _meshes(workdir: str, ids: list[str]) -> dict:
  """The candidates' normalized meshes, loaded once per process (a shape that no longer loads is left out)."""
  missing = [i for i in ids if (workdir, i) not in _MESHES]
  if missing:
    if len(_MESHES) + len(missing) > _MAX_MESHES:
      _MESHES.clear()
    refs, up_axis, front = manifest.listed_shapes(workdir, missing)
    _MESHES.update({(workdir, shape.id): shape for shape in sources.iter_shapes(refs, up_axis, front)})
  return {i: _MESHES[(workdir, i)] for i in ids if (workdir, i) in _MESHES}


_PER_HYPOTHESIS = ("angles", "hog", "chamfer", "prior", "deep")  # the entries of `h` with one value per hypothesis


def _fine(renderer: base.Renderer, shape, coarse_pose: np.ndarray, settings: verify.Settings):
  """A candidate's fine hypotheses: (float32[9, 3] angles, float32[9, F] HoG, float32[9, P] edges), one render call."""
  views = verify.refine_views(float(coarse_pose[0]), float(coarse_pose[1]), 180.0 / settings.azimuths, 5.0)
  gray, alpha = verify.render_crops(renderer, shape.vertices, shape.faces, views, settings.size)
  feats, edges = verify.view_features(gray, alpha)
  return np.stack([views.azimuth, views.elevation, views.tilt], 1), np.asarray(feats), np.asarray(edges)


def add_fine(
    workdir: str,
    model: embed.TrainedModel,
    renderer: base.Renderer,
    h: dict,
    photo_hog: np.ndarray,
    photo_dt: np.ndarray,
    weights,
    settings: verify.Settings,
    refine: int,
) -> dict:
  """The fine step: the first `refine` candidates of the coarse fused ranking, each rendered at the 3 x 3
  neighbourhood of its best coarse pose (one render call of 9 views each) and scored like the grid.

  Args:
    h: the coarse hypotheses {'candidates': int[Q, K], 'joint_k': float32[Q, K], 'hog', 'chamfer', 'prior', 'deep':
      float32[Q, K, H], 'angles': float32[Q, K, H, 3]}.
    photo_hog, photo_dt: the photos' features (`verify.photo_features`).
    refine: candidates refined per photo; the others' 9 fine hypotheses repeat their best coarse one.

  Returns:
    `h` with H + 9 hypotheses per candidate (the prior recomputed by the caller's `head` is not needed: the fine
    hypotheses take their coarse centre's prior and deep comparison).
  """
  weights = np.asarray(weights, np.float32)
  fused, best = (
      np.asarray(x)
      for x in verify.verify_candidates(h["joint_k"], h["hog"], h["chamfer"], weights, h["prior"], h["deep"])
  )
  q_n, k_n = h["candidates"].shape
  rows, cols = np.arange(q_n)[:, None], np.arange(k_n)[None, :]
  b = best[rows, cols]
  # Every candidate's 9 fine hypotheses start as copies of its best coarse one (the refined ones are overwritten).
  extra = {key: np.repeat(h[key][rows, cols, b][:, :, None], 9, axis=2) for key in _PER_HYPOTHESIS}
  chosen = np.argsort(fused, axis=1, kind="stable")[:, : min(refine, k_n)]
  meshes = _meshes(
      workdir, sorted({str(model.shape_ids[c]) for c in np.take_along_axis(h["candidates"], chosen, 1).ravel()})
  )
  for q, j in zip(np.repeat(np.arange(q_n), chosen.shape[1]), chosen.ravel()):
    shape = meshes.get(str(model.shape_ids[h["candidates"][q, j]]))
    if shape is None:  # no longer loads: its fine hypotheses repeat the coarse best one
      continue
    extra["angles"][q, j], feats, edges = _fine(renderer, shape, h["angles"][q, j, best[q, j]], settings)
    extra["hog"][q, j] = np.linalg.norm(feats - photo_hog[q], axis=1)
    extra["chamfer"][q, j] = edges @ photo_dt[q]
  return dict(h, **{key: np.concatenate([h[key], extra[key].astype(h[key].dtype)], axis=2) for key in extra})


_HOG_VIEWS: dict[tuple, tuple] = {}  # the run's LFD-view HoG pyramids on the device, kept for the next photos


def _hog_nn(workdir: str, model: embed.TrainedModel, images: np.ndarray) -> np.ndarray:
  """float32[Q, N] the photos' HoG-NN distances to the run's shapes (`embedding.hog_nn`), for the shortlist."""
  memo = (os.path.abspath(workdir), hash(tuple(map(str, model.shape_ids))))
  views = verify_grid.memoized(
      _HOG_VIEWS, memo, lambda: hog_nn.resident_views(hog_nn.hog_view_features(workdir, model.shape_ids))
  )
  return hog_nn.hog_nn_distances(hog_nn.at_photo_size(images), views, len(model.shape_ids))


def verify_photos(
    workdir: str,
    model: embed.TrainedModel,
    images: np.ndarray,
    points: np.ndarray,
    head: np.ndarray | None,
    renderer: base.Renderer,
    settings: verify.Settings = verify.Settings(),
    hog_images: np.ndarray | None = None,
) -> list[Verified]:
  """Verifies each photo's shortlist, coarse to fine (`settings.refine` candidates refined).

  Args:
    workdir: the trained run; model: its `TrainedModel`.
    images: uint8[Q, S, S, 3] the photos as the network saw them (stretched); points: float32[Q, D] their points.
    head: float[Q, 3] the viewpoint head's poses, or None (no head: no prior).
    renderer: the run's renderer.
    settings: K, the grid, the fine step and the weights (`config.verify`).
    hog_images: uint8[Q, s, s, 3] the photos for HoG-NN in the shortlist (`settings.shortlist_hog`), stretched to
      `hog_nn.PHOTO_SIZE` as the evaluation's are; None: `images` (stretched again when needed).
  """
  grid = verify_grid.grid_cache(workdir, model.shape_ids, renderer, settings)
  joint = model.shape_index.distances(np.asarray(points, np.float32))
  if settings.shortlist_hog > 0:
    photos = images if hog_images is None else hog_images
    joint = verify.shortlist_scores(joint, _hog_nn(workdir, model, photos), settings.shortlist_hog)
  k = min(settings.k, joint.shape[1])
  candidates = np.argsort(joint, axis=1, kind="stable")[:, :k].astype(np.int32)
  photo_hog, photo_dt = (np.asarray(x) for x in verify.photo_features(verify.photo_crops(images, settings.size)))
  hog_d, chamfer = (
      np.asarray(x) for x in verify.hypothesis_distances(photo_hog, photo_dt, *verify_grid.on_device(grid), candidates)
  )
  angles = grid.angles[candidates]  # [Q, K, H, 3]
  h = dict(
      candidates=candidates,
      joint_k=np.take_along_axis(joint, candidates, axis=1),
      hog=hog_d,
      chamfer=chamfer,
      angles=angles,
      prior=verify.head_prior(angles, head),
      deep=verify_deep.hypotheses(workdir, model, renderer, images, candidates, settings),
  )
  weights = run_weights(workdir, settings)
  if settings.refine:
    h = add_fine(workdir, model, renderer, h, photo_hog, photo_dt, weights, settings, settings.refine)
  fused, best = verify.verify_candidates(h["joint_k"], h["hog"], h["chamfer"], weights, h["prior"], h["deep"])
  fused, best = np.asarray(fused), np.asarray(best)
  angles = h["angles"]
  out = []
  for q in range(len(candidates)):
    order = np.argsort(fused[q], kind="stable")
    pose = angles[q, order[0], best[q, order[0]]]
    out.append(Verified(candidates[q, order], fused[q, order], tuple(float(a) for a in pose), angles.shape[2]))
  return out
