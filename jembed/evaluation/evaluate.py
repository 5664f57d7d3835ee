"""The paper's evaluation (reference §4) of a trained run, for the joint embedding and its baselines on the same images.

  test sets (image_sets.py)  ->  per method: image x shape and image x image distances  ->  the paper's protocols

Methods (one distance matrix each, so every protocol treats them alike):
  * `joint`: the trained CNN's image points against the shape points (and against each other);
  * `hog_nn`, `pixels`: the baselines of `baselines.py` (nearest LFD view of each shape);
  * `chance`: what a random ranking scores in expectation (image->shape and category accuracy only).

Protocols, on every set:
  * image->shape: 1-based rank of the true shape among all N shapes; top-1/5/10 and the top-K curve (K <= 250).
  * shape->image: for each shape with images in the set, the rank of its best and its worst image among all the set's
    images; the medians over shapes (the paper: 1 and 5 on ExactMatchChairs).
  * image->image: the paper's precision-recall curve (`metrics.pr_curve_paper`: every image ranked, the query itself
    included and relevant, relevant = same shape, precision interpolated at 500 recall points) and its trapezoid
    area `pr_auc` (at most 0.998).
  * photo sets also give `category_top1`: the nearest shape has the query's category.
  * fused image->shape (`fused:<how>`): each shape's test images pooled into one query (`jembed.fusion`: mean of
    points, mean of distances, mean of ranks), top-1/5/10 of the true shape; compare with `joint` on the same images.
  * viewpoint (`viewpoint:<method>`, sets with true views): Render for CNN's Acc_π/6 and MedErr (`viewpoint.py`)
    of the network's viewpoint head, of the nearest LFD view's angles (HoG-NN, raw pixels) and of the category's most
    frequent view, per category and averaged over the categories.

Everything lands in `workdir/eval/`: results.json (set -> method -> metric), curves.npz (the curves, for plots) and
the pictures of `eval_report.py`.
"""

import dataclasses
import functools
import os
import time

from absl import logging
import jax
import ml_collections
import numpy as np

from jembed.evaluation import baselines
from jembed import embed
from jembed.evaluation import image_sets
from jembed import files
from jembed.evaluation import metrics
from jembed.evaluation import viewpoint
from jembed import fusion
from jembed import retrieval

METHODS = ("joint", "hog_nn", "pixels")
TOP_KS = (1, 5, 10)
MAX_K = 250  # the paper's top-K curve runs to K = 250
PR_AUC_DEFINITION = ("image->image: every image of the set ranked by distance, the query itself included and counted "
                     "relevant, relevant = same shape; per query precision interpolated at recall 0.001:0.002:0.999, "
                     "averaged over queries, area by the trapezoid rule (at most 0.998), as the paper's "
                     "get_pr_curve_all.m")
VIEWPOINT_DEFINITION = ("viewpoint: geodesic angle between the predicted and the true camera rotation (Render for "
                        "CNN's ||logm(R_pred^T R_true)||_F / sqrt(2)); acc_pi6 = share below 30 degrees, med_err = "
                        "median in degrees; both averaged over the categories (per category in per_category)")
FUSION_DEFINITION = ("fused:<how>: the test images of each shape fused into one query (points: mean of the points; "
                     "distances: mean of the distances; ranks: mean of the ranks), ranks among all shapes; one query "
                     "per shape")


# One wrapper each, so their compiled programs are reused across sets.
_embed_images = jax.jit(embed.embed_images)
_predict_viewpoint = jax.jit(embed.predict_viewpoint)


def run_batched(fn, params: embed.Params, images: np.ndarray, batch: int = 128):
  """`fn(params, uint8[batch, S, S, 3])` over all Q images in fixed-size padded batches (one compiled program);
  the outputs (an array or a dict of arrays, leading dim = batch) concatenated to Q rows, as numpy."""
  out = []
  for lo in range(0, len(images), batch):
    chunk = images[lo:lo + batch]
    padded = np.zeros((batch,) + chunk.shape[1:], np.uint8)
    padded[:len(chunk)] = chunk
    out.append(jax.tree.map(lambda x, n=len(chunk): np.asarray(x)[:n], fn(params, padded)))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *out)


def embed_all(params: embed.Params, images: np.ndarray, batch: int = 128) -> np.ndarray:
  """uint8[Q, S, S, 3] -> float32[Q, D]."""
  return run_batched(_embed_images, params, images, batch).astype(np.float32)


def predict_views(params: embed.Params, images: np.ndarray, batch: int = 128) -> np.ndarray:
  """uint8[Q, S, S, 3] -> float32[Q, 3] (azimuth, elevation, tilt) degrees from the viewpoint head."""
  angles = run_batched(_predict_viewpoint, params, images, batch)
  return np.stack([angles[a] for a in ("azimuth", "elevation", "tilt")], axis=1).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class MethodOutput:
  """What one method gives on one set's Q images.

  Attributes:
    image_shape: float32[Q, N] image x shape distances.
    image_image: float32[Q, Q] image x image distances.
    points: float32[Q, D] the images' points in the joint space (the joint method), for fused queries.
    views: float[Q, 3] its viewpoint estimate (azimuth, elevation, tilt in degrees), when it has one.
  """
  image_shape: np.ndarray
  image_image: np.ndarray
  points: np.ndarray | None = None
  views: np.ndarray | None = None


def method_outputs(method: str, images: np.ndarray, context: dict) -> MethodOutput:
  """One method's distances (and points, viewpoints) on one set's images uint8[Q, S, S, 3]."""
  model = context["model"]
  if method == "joint":
    points = embed_all(model.params, images)
    views = predict_views(model.params, images) if model.params.spec.viewpoint_bins else None
    return MethodOutput(retrieval.pairwise_l2(points, model.shape_points), retrieval.pairwise_l2(points, points),
                        points, views)
  if method == "hog_nn":
    features, views = baselines.hog_features(images), context["hog_views"]()
  elif method == "pixels":
    features, views = baselines.pixel_features(images), context["pixel_views"]()
  else:
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
  n_views = len(views) // len(model.shape_ids)
  image_shape, nearest = baselines.nearest_view(features, views, n_views)
  angles = viewpoint.nearest_lfd_views(nearest, np.asarray(model.shape_categories), n_views)
  return MethodOutput(image_shape, retrieval.pairwise_l2(features, features), views=angles)


def protocols(image_shape: np.ndarray, image_image: np.ndarray, shape_index: np.ndarray,
              shape_categories: np.ndarray) -> tuple[dict, dict]:
  """The paper's protocols on one method's distances.

  Args:
    image_shape: float32[Q, N] query-to-shape distances.
    image_image: float32[Q, Q] query-to-query distances.
    shape_index: int[Q] each query's true shape.
    shape_categories: str[N].

  Returns:
    (scalar metrics, curves): {'top1', 'top5', 'top10', 'category_top1', 'pr_auc', 'median_rank_first',
    'median_rank_last', 'n_queries', 'n_shapes'} and {'topk': float[K], 'precision': float[500]}.
  """
  q, n = image_shape.shape
  ranks = metrics.ranks(image_shape, shape_index)
  curve = metrics.topk_accuracy(ranks, np.arange(1, min(MAX_K, n) + 1))
  first, last = metrics.median_first_last(image_shape.T, shape_index)
  _, precision = metrics.pr_curve_paper(image_image, shape_index)  # at metrics.PR_RECALL_GRID
  nearest = np.argmin(image_shape, axis=1)
  result = {f"top{k}": float(curve[k - 1]) if k <= n else 1.0 for k in TOP_KS}
  result.update(category_top1=float(np.mean(shape_categories[nearest] == shape_categories[shape_index])),
                pr_auc=float(metrics.pr_auc_paper(metrics.PR_RECALL_GRID, precision)), median_rank_first=float(first),
                median_rank_last=float(last), n_queries=int(q), n_shapes=int(n))
  return result, {"topk": np.asarray(curve, np.float32), "precision": np.asarray(precision, np.float32)}


def chance(shape_index: np.ndarray, shape_categories: np.ndarray) -> dict:
  """Expected scores of a uniformly random shape ranking: top-k = k / N; category = the chance that a random shape
  has the query's category."""
  n = len(shape_categories)
  names, counts = np.unique(shape_categories, return_counts=True)
  share = dict(zip(names, counts / n))
  result = {f"top{k}": min(k / n, 1.0) for k in TOP_KS}
  result.update(category_top1=float(np.mean([share[c] for c in shape_categories[shape_index]])),
                n_queries=int(len(shape_index)), n_shapes=int(n))
  return result


def fused_scores(points: np.ndarray, shape_index: np.ndarray, shape_points: np.ndarray,
                 shape_categories: np.ndarray) -> dict[str, dict]:
  """{'fused:<how>': scores} for every `fusion.FUSIONS`: the images of each shape fused into one query.

  Args:
    points: float32[Q, D] the set's image points; shape_index: int[Q] their shapes (the groups fused).
    shape_points: float32[N, D]; shape_categories: str[N].
  """
  out = {}
  for how in fusion.FUSIONS:
    shapes, fused = fusion.fused_groups(points, shape_index, shape_points, how)
    curve = metrics.topk_accuracy(metrics.ranks(fused, shapes), TOP_KS)
    nearest = np.argmin(fused, axis=1)
    out[f"fused:{how}"] = dict({f"top{k}": float(v) for k, v in zip(TOP_KS, curve)},
                               category_top1=float(np.mean(shape_categories[nearest] == shape_categories[shapes])),
                               n_queries=int(len(shapes)), n_shapes=int(len(shape_points)),
                               images_per_query=float(len(points) / len(shapes)))
  return out


def viewpoint_rows(outputs: dict[str, MethodOutput], truth: np.ndarray, categories: np.ndarray,
                   views_dir: str = "") -> dict[str, dict]:
  """{'viewpoint:<method>': `viewpoint.viewpoint_scores`} for each method with a viewpoint estimate, and the
  category's most frequent view.

  Args:
    outputs: the set's method outputs.
    truth: float[Q, 3] the true views; categories: str[Q] the images' categories.
    views_dir: `config.data.views_dir` (the training view distribution, for the modal view).
  """
  estimates = {m: out.views for m, out in outputs.items() if out.views is not None}
  estimates["category_mode"] = viewpoint.category_mode_views(categories, views_dir)
  return {f"viewpoint:{m}": viewpoint.viewpoint_scores(viewpoint.geodesic_error(views, truth), categories)
          for m, views in estimates.items()}


def evaluate(config: ml_collections.ConfigDict, workdir: str, *, methods=METHODS) -> dict:
  """Runs every protocol on every set of `config.eval` and writes `workdir/eval/results.json` and `curves.npz`.

  Returns:
    {set: {method: {metric: value}}}, as in results.json; plus the sets, distances and top-5 lists the report draws
    under the key '_for_report' (not written to results.json).
  """
  start = time.time()
  model = embed.load(workdir)
  # The shapes' view features are read (or rendered) once, and only for the baselines asked for.
  context = dict(model=model,
                 hog_views=functools.cache(lambda: baselines.hog_view_features(workdir, model.shape_ids)),
                 pixel_views=functools.cache(lambda: baselines.pixel_view_features(config, workdir, model.shape_ids)))
  sets = []
  if "synthetic" in tuple(config.eval.sets):
    sets += image_sets.synthetic_sets(config, workdir, model.shape_ids, np.asarray(model.shape_categories))
  photos = image_sets.photo_set(config, workdir, model.shape_ids)
  if photos is not None:
    sets.append(photos)
  if not sets:
    raise ValueError("nothing to evaluate: config.eval.sets has no 'synthetic' and config.eval.photo_set is empty")
  results, curves, report = {}, {}, {}
  categories = np.asarray(model.shape_categories).astype(str)
  for image_set in sets:
    results[image_set.name], outputs = {}, {}
    for method in methods:
      outputs[method] = out = method_outputs(method, image_set.images, context)
      scores, curve = protocols(out.image_shape, out.image_image, image_set.shape_index, categories)
      results[image_set.name][method] = scores
      curves.update({f"{image_set.name}/{method}/{k}": v for k, v in curve.items()})
      if method == "joint":
        report[image_set.name] = dict(image_set=image_set,
                                      top=np.argsort(out.image_shape, axis=1, kind="stable")[:, :5])
      logging.info("%s %s: %s", image_set.name, method, {k: round(v, 4) for k, v in scores.items()})
    results[image_set.name]["chance"] = chance(image_set.shape_index, categories)
    if "joint" in outputs and len(np.unique(image_set.shape_index)) < len(image_set):
      results[image_set.name].update(fused_scores(outputs["joint"].points, image_set.shape_index,
                                                  model.shape_points, categories))
    if image_set.views is not None:
      results[image_set.name].update(viewpoint_rows(outputs, image_set.views, categories[image_set.shape_index],
                                                    config.data.views_dir))
  out_dir = os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  meta = dict(step=model.step, n_shapes=len(model.shape_ids), seconds=round(time.time() - start, 1),
              synthetic_shapes=("the held-out test shapes (split_by='shape')" if config.data.split_by == "shape"
                                else "all shapes, new views (split_by='image')"),
              pr_auc=PR_AUC_DEFINITION, ranks="1-based; ties broken by the lower index",
              viewpoint=VIEWPOINT_DEFINITION, fused=FUSION_DEFINITION)
  files.write_json(os.path.join(out_dir, "results.json"), dict(results, _meta=meta), indent=1)
  files.save_npz(os.path.join(out_dir, "curves.npz"), recall=metrics.PR_RECALL_GRID.astype(np.float32), **curves)
  return dict(results, _meta=meta, _for_report=dict(report, model=model))

