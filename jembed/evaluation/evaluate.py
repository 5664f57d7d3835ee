"""The paper's evaluation (reference §4) of a trained run, for the joint embedding and its baselines on the same images.

  test sets (image_sets.py)  ->  per method: image x shape and image x image distances  ->  the paper's protocols

Methods (one distance matrix each, so every protocol treats them alike):
  * `joint`: the trained CNN's image points against the shape points (and against each other);
  * `hog_nn`, `pixels`: the baselines of `baselines.py` (nearest LFD view of each shape);
  * `shape_encoder`: when the workdir has a trained shape encoder, the joint run's image points against the encoder's
    points of the shapes' surface clouds (`shape_encoder_method.py`);
  * `chance`: what a random ranking scores in expectation (image->shape and category accuracy only).

Protocols, on every set:
  * image->shape: 1-based rank of the true shape among all N shapes; top-1/5/10 and the top-K curve (K <= 250).
  * shape->image: for each shape with images in the set, the rank of its best and its worst image among all the set's
    images; the medians over shapes (the paper: 1 and 5 on ExactMatchChairs).
  * image->image: the paper's precision-recall curve (`metrics.pr_curve_paper`: every image ranked, the query itself
    included and relevant, relevant = same shape, precision interpolated at 500 recall points) and its trapezoid
    area `pr_auc` (at most 0.998).
  * photo sets also give `category_top1`: the nearest shape has the query's category.

Everything lands in `workdir/eval/`: results.json (set -> method -> metric), curves.npz (the curves, for plots) and
the pictures of `eval_report.py`.
"""

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
from jembed.evaluation import shape_encoder_method
from jembed import retrieval

METHODS = ("joint", "hog_nn", "pixels")
TOP_KS = (1, 5, 10)
MAX_K = 250  # the paper's top-K curve runs to K = 250
PR_AUC_DEFINITION = ("image->image: every image of the set ranked by distance, the query itself included and counted "
                     "relevant, relevant = same shape; per query precision interpolated at recall 0.001:0.002:0.999, "
                     "averaged over queries, area by the trapezoid rule (at most 0.998), as the paper's "
                     "get_pr_curve_all.m")


_embed_images = jax.jit(embed.embed_images)  # one wrapper, so its compiled programs are reused across sets


def embed_all(params: embed.Params, images: np.ndarray, batch: int = 128) -> np.ndarray:
  """uint8[Q, S, S, 3] -> float32[Q, D], in fixed-size padded batches (one compiled program)."""
  out = []
  for lo in range(0, len(images), batch):
    chunk = images[lo:lo + batch]
    padded = np.zeros((batch,) + chunk.shape[1:], np.uint8)
    padded[:len(chunk)] = chunk
    out.append(np.asarray(_embed_images(params, padded))[:len(chunk)])
  return np.concatenate(out).astype(np.float32)


def method_distances(method: str, images: np.ndarray, context: dict) -> tuple[np.ndarray, np.ndarray]:
  """(float32[Q, N] image x shape, float32[Q, Q] image x image) distances of one method on one set's images."""
  if method == "joint":
    points = embed_all(context["model"].params, images)
    return retrieval.pairwise_l2(points, context["model"].shape_points), retrieval.pairwise_l2(points, points)
  if method == shape_encoder_method.NAME:
    return shape_encoder_method.distances(images, context, embed_all)
  if method == "hog_nn":
    features, views = baselines.hog_features(images), context["hog_views"]()
  elif method == "pixels":
    features, views = baselines.pixel_features(images), context["pixel_views"]()
  else:
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
  image_shape = baselines.nearest_view(features, views, len(views) // len(context["model"].shape_ids))
  return image_shape, retrieval.pairwise_l2(features, features)


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


def evaluate(config: ml_collections.ConfigDict, workdir: str, *, methods=None) -> dict:
  """Runs every protocol on every set of `config.eval` and writes `workdir/eval/results.json` and `curves.npz`.

  Returns:
    {set: {method: {metric: value}}}, as in results.json; plus the sets, distances and top-5 lists the report draws
    under the key '_for_report' (not written to results.json).
  """
  start = time.time()
  if methods is None:
    methods = METHODS + ((shape_encoder_method.NAME,) if shape_encoder_method.available(workdir) else ())
  model = embed.load(workdir)
  # The shapes' view features are read (or rendered) once, and only for the baselines asked for.
  context = dict(model=model,
                 hog_views=functools.cache(lambda: baselines.hog_view_features(workdir, model.shape_ids)),
                 pixel_views=functools.cache(lambda: baselines.pixel_view_features(config, workdir, model.shape_ids)),
                 **shape_encoder_method.make_context(workdir))
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
    results[image_set.name] = {}
    for method in methods:
      image_shape, image_image = method_distances(method, image_set.images, context)
      scores, curve = protocols(image_shape, image_image, image_set.shape_index, categories)
      results[image_set.name][method] = scores
      curves.update({f"{image_set.name}/{method}/{k}": v for k, v in curve.items()})
      if method == "joint":
        report[image_set.name] = dict(image_set=image_set, top=np.argsort(image_shape, axis=1, kind="stable")[:, :5])
      logging.info("%s %s: %s", image_set.name, method, {k: round(v, 4) for k, v in scores.items()})
    results[image_set.name]["chance"] = chance(image_set.shape_index, categories)
  out_dir = os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  meta = dict(step=model.step, n_shapes=len(model.shape_ids), seconds=round(time.time() - start, 1),
              synthetic_shapes=("the held-out test shapes (split_by='shape')" if config.data.split_by == "shape"
                                else "all shapes, new views (split_by='image')"),
              pr_auc=PR_AUC_DEFINITION, ranks="1-based; ties broken by the lower index")
  files.write_json(os.path.join(out_dir, "results.json"), dict(results, _meta=meta), indent=1)
  files.save_npz(os.path.join(out_dir, "curves.npz"), recall=metrics.PR_RECALL_GRID.astype(np.float32), **curves)
  return dict(results, _meta=meta, _for_report=dict(report, model=model))

