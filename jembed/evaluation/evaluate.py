"""The paper's evaluation (reference §4) of a trained run, for the joint embedding and its baselines on the same images.

  test sets (image_sets.py)  ->  per method (methods.py): image x shape and image x image distances  ->  protocols

Methods are the registry `methods.METHODS` (`joint`, `hog_nn`, `pixels`, ...); `chance` is what a random ranking
scores in expectation (image->shape and category accuracy only).

Protocols, on every set:
  * image->shape: 1-based rank of the true shape among all N shapes; top-1/5/10 and the top-K curve (K <= 250).
  * shape->image: for each shape with images in the set, the rank of its best and its worst image among all the set's
    images; the medians over shapes (the paper: 1 and 5 on ExactMatchChairs).
  * image->image: the paper's precision-recall curve (`metrics.pr_curve_paper`: every image ranked, the query itself
    included and relevant, relevant = same shape, precision interpolated at 500 recall points) and its trapezoid
    area `pr_auc` (at most 0.998).
  * `category_top1`: the nearest shape has the query's category.
  * sets that know only each photo's category (`ImageSet.category_only`, a folder's `<file> <category>` lines):
    `category_top1` / `category_top5` (the nearest shape / one of the 5 nearest has the photo's category) and
    `confusion` ({true category: {nearest shape's category: photos}}), per method (`category_protocols`).
  * fused image->shape (`fused:<how>`, with `joint`): each shape's test images pooled into one query
    (`jembed.api.fusion`: mean of points, of distances, of ranks), top-1/5/10 of the true shape, one query per shape;
    compare with `joint` on the same images.
  * viewpoint (`viewpoint:<estimator>`, sets with true views): Render for CNN's Acc_π/6 and MedErr (`viewpoint.py`)
    of the network's viewpoint head, of the nearest LFD view's angles (HoG-NN, raw pixels) and of the category's
    most frequent view, per category and averaged over the categories.

`evaluate` returns an `EvalResult` and writes `workdir/eval/`: results.json (set -> method -> metric, plus `_meta`)
and curves.npz (the curves, for plots); `report.py` draws the pictures from the same `EvalResult`.
"""

import dataclasses
import os
import time
from typing import Any

from absl import logging
import ml_collections
import numpy as np

from jembed.api import embed
from jembed.api import fusion
from jembed.evaluation import image_sets
from jembed.evaluation import methods as methods_lib
from jembed.evaluation import metrics
from jembed.evaluation import shape_encoder_method  # registers the `shape_encoder` method
from jembed.evaluation import verify_method  # registers `joint+verify` and its refined pose
from jembed.evaluation import viewpoint
from jembed.workdir import files
from jembed.workdir import paths

# The default rows; any name of `methods.METHODS` may be asked for.
METHODS = ("joint", verify_method.NAME, "hog_nn", "pixels")
TOP_KS = (1, 5, 10)
MAX_K = 250  # the paper's top-K curve runs to K = 250
GALLERY_K = 5  # nearest shapes kept per query for the retrieval gallery
PR_AUC_DEFINITION = (
    "image->image: every image of the set ranked by distance, the query itself included and counted "
    "relevant, relevant = same shape; per query precision interpolated at recall 0.001:0.002:0.999, "
    "averaged over queries, area by the trapezoid rule (at most 0.998), as the paper's "
    "get_pr_curve_all.m"
)
VIEWPOINT_DEFINITION = (
    "viewpoint: the geodesic angle between the predicted and the true camera rotation (Render "
    "for CNN's ||logm(R_pred^T R_true)||_F / sqrt(2)); acc_pi6 = share below 30 degrees, med_err "
    "= median in degrees; both averaged over the categories (each category in per_category)"
)
FUSION_DEFINITION = (
    "fused: the test images of each shape fused into one query (points: the mean of their points; "
    "distances: the mean of their distances; ranks: the mean of their ranks), ranked among all "
    "shapes, one query per shape"
)
for _how, _text in (("points", "mean of points"), ("distances", "mean of distances"), ("ranks", "mean of ranks")):
  methods_lib.add_label(f"fused:{_how}", f"joint, images fused: {_text}")


@dataclasses.dataclass(frozen=True)
class SetResult:
  """Every method on one set of test images.

  Attributes:
    image_set: the images and their true shapes.
    scores: {method: {metric: value}}, the `chance` row included.
    curves: {method: {'topk': float32[K], 'precision': float32[500]}}.
    nearest: {method: int[Q, 5]} each query's nearest shapes (indices into the model's shapes), for galleries.
  """

  image_set: image_sets.ImageSet
  scores: dict[str, dict[str, float]]
  curves: dict[str, dict[str, np.ndarray]]
  nearest: dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class EvalResult:
  """The whole evaluation: `sets` by name, `meta` (step, sizes, definitions) and the model it measured."""

  sets: dict[str, SetResult]
  meta: dict
  model: embed.TrainedModel

  def scores(self) -> dict[str, dict[str, dict[str, float]]]:
    """{set: {method: {metric: value}}}: results.json without `_meta`."""
    return {name: entry.scores for name, entry in self.sets.items()}

  def to_json(self) -> dict:
    """What results.json holds (its schema: set -> method -> metric, plus `_meta`)."""
    return dict(self.scores(), _meta=self.meta)

  def flat_curves(self) -> dict[str, np.ndarray]:
    """{'<set>/<method>/<curve>': array}: what curves.npz holds besides `recall`."""
    return {
        f"{name}/{method}/{kind}": value
        for name, entry in self.sets.items()
        for method, curves in entry.curves.items()
        for kind, value in curves.items()
    }

  def save(self, out_dir: str) -> dict[str, str]:
    """Writes results.json and curves.npz atomically; {what: path}."""
    os.makedirs(out_dir, exist_ok=True)
    written = {"results": os.path.join(out_dir, paths.RESULTS), "curves": os.path.join(out_dir, paths.CURVES)}
    files.write_json(written["results"], self.to_json(), indent=1)
    files.save_npz(written["curves"], recall=metrics.PR_RECALL_GRID.astype(np.float32), **self.flat_curves())
    return written


def protocols(
    image_shape: np.ndarray, image_image: np.ndarray, shape_index: np.ndarray, shape_categories: np.ndarray
) -> tuple[dict, dict]:
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
  result.update(
      category_top1=float(np.mean(shape_categories[nearest] == shape_categories[shape_index])),
      pr_auc=float(metrics.pr_auc_paper(metrics.PR_RECALL_GRID, precision)),
      median_rank_first=float(first),
      median_rank_last=float(last),
      n_queries=int(q),
      n_shapes=int(n),
  )
  return result, {"topk": np.asarray(curve, np.float32), "precision": np.asarray(precision, np.float32)}


def category_protocols(image_shape: np.ndarray, true_categories: np.ndarray, shape_categories: np.ndarray) -> dict:
  """Scores of a set that knows only its photos' categories.

  Args:
    image_shape: float32[Q, N] query-to-shape distances.
    true_categories: str[Q].
    shape_categories: str[N].

  Returns:
    {'category_top1', 'category_top5', 'confusion': {true: {predicted: count}}, 'n_queries', 'n_shapes'}.
  """
  q, n = image_shape.shape
  order = np.argsort(image_shape, axis=1, kind="stable")[:, : min(5, n)]
  nearest = shape_categories[order]  # [Q, 5]
  hit = nearest == np.asarray(true_categories)[:, None]
  confusion: dict[str, dict[str, int]] = {}
  for truth, predicted in zip(true_categories, nearest[:, 0]):
    row = confusion.setdefault(str(truth), {})
    row[str(predicted)] = row.get(str(predicted), 0) + 1
  return dict(
      category_top1=float(np.mean(hit[:, 0])),
      category_top5=float(np.mean(hit.any(1))),
      confusion={t: dict(sorted(row.items(), key=lambda kv: -kv[1])) for t, row in sorted(confusion.items())},
      n_queries=int(q),
      n_shapes=int(n),
  )


def chance(shape_index: np.ndarray, shape_categories: np.ndarray) -> dict:
  """Expected scores of a uniformly random shape ranking: top-k = k / N; category = the chance that a random shape
  has the query's category."""
  n = len(shape_categories)
  names, counts = np.unique(shape_categories, return_counts=True)
  share = dict(zip(names, counts / n))
  result = {f"top{k}": min(k / n, 1.0) for k in TOP_KS}
  result.update(
      category_top1=float(np.mean([share[c] for c in shape_categories[shape_index]])),
      n_queries=int(len(shape_index)),
      n_shapes=int(n),
  )
  return result


def fused_scores(
    points: np.ndarray, shape_index: np.ndarray, shape_points: Any, shape_categories: np.ndarray
) -> dict[str, dict]:
  """{'fused:<how>': scores} for every `fusion.FUSIONS`: the images of each shape fused into one query.

  Args:
    points: float32[Q, D] the set's image points; shape_index: int[Q] their shapes (the groups fused).
    shape_points: the shapes' resident `index.ShapeIndex` (`TrainedModel.shape_index`) or float32[N, D];
    shape_categories: str[N].
  """
  out = {}
  for how in fusion.FUSIONS:
    shapes, fused = fusion.fused_groups(points, shape_index, shape_points, how)
    curve = metrics.topk_accuracy(metrics.ranks(fused, shapes), TOP_KS)
    nearest = np.argmin(fused, axis=1)
    out[f"fused:{how}"] = dict(
        {f"top{k}": float(v) for k, v in zip(TOP_KS, curve)},
        category_top1=float(np.mean(shape_categories[nearest] == shape_categories[shapes])),
        n_queries=int(len(shapes)),
        n_shapes=int(len(shape_points)),
        images_per_query=float(len(points) / len(shapes)),
    )
  return out


def evaluate_set(image_set: image_sets.ImageSet, method_names, context: methods_lib.Context) -> SetResult:
  """Every method's distances and protocols on one set, then its fused and viewpoint rows."""
  categories = np.asarray(context.model.shape_categories).astype(str)
  scores, curves, nearest = {}, {}, {}
  if image_set.category_only:
    for name in method_names:
      image_shape, _ = methods_lib.get(name).distances(image_set.images, context)
      scores[name] = category_protocols(image_shape, image_set.categories, categories)
      nearest[name] = np.argsort(image_shape, axis=1, kind="stable")[:, :GALLERY_K]
      logging.info("%s %s: %s", image_set.name, name, scores[name])
    names, counts = np.unique(categories, return_counts=True)
    share = dict(zip(names, counts / len(categories)))
    scores["chance"] = dict(
        category_top1=float(np.mean([share.get(c, 0.0) for c in image_set.categories])),
        n_queries=len(image_set),
        n_shapes=len(categories),
    )
    return SetResult(image_set, scores, curves, nearest)
  for name in method_names:
    image_shape, image_image = methods_lib.get(name).distances(image_set.images, context)
    scores[name], curves[name] = protocols(image_shape, image_image, image_set.shape_index, categories)
    nearest[name] = np.argsort(image_shape, axis=1, kind="stable")[:, :GALLERY_K]
    logging.info("%s %s: %s", image_set.name, name, {k: round(v, 4) for k, v in scores[name].items()})
  scores["chance"] = chance(image_set.shape_index, categories)
  if "joint" in method_names and len(np.unique(image_set.shape_index)) < len(image_set):
    points, _ = context.network_outputs(image_set.images)
    scores.update(fused_scores(points, image_set.shape_index, context.model.shape_index, categories))
  if image_set.views is not None:
    scores.update(
        viewpoint.viewpoint_rows(
            image_set.images, image_set.views, categories[image_set.shape_index], method_names, context
        )
    )
  return SetResult(image_set, scores, curves, nearest)


def default_methods(workdir: str) -> tuple[str, ...]:
  """`METHODS`, and the shape encoder's rows when the workdir has a trained shape encoder."""
  encoder = (shape_encoder_method.NAME, shape_encoder_method.PLACED_NAME)
  return METHODS + (encoder if shape_encoder_method.available(workdir) else ())


def evaluate(config: ml_collections.ConfigDict, workdir: str, *, methods=None) -> EvalResult:
  """Runs every protocol on every set of `config.eval` and writes `workdir/eval/results.json` and `curves.npz`.

  `methods` default: `default_methods(workdir)`."""
  start = time.time()
  methods = default_methods(workdir) if methods is None else tuple(methods)
  methods = methods + tuple(m for m in methods_lib.compared_runs(config) if m not in methods)
  for name in methods:
    methods_lib.get(name)  # an unknown name fails before any work
  model = embed.load(workdir)
  context = methods_lib.Context(config, workdir, model)
  sets = []
  if "synthetic" in tuple(config.eval.sets):
    sets += image_sets.synthetic_sets(config, workdir, model.shape_ids, np.asarray(model.shape_categories))
  sets += image_sets.photo_sets_of(config, workdir, model.shape_ids)
  if not sets:
    raise ValueError("nothing to evaluate: config.eval.sets has no 'synthetic' and config.eval.photo_set is empty")
  by_name = {image_set.name: evaluate_set(image_set, methods, context) for image_set in sets}
  meta = dict(
      step=model.step,
      n_shapes=len(model.shape_ids),
      seconds=round(time.time() - start, 1),
      synthetic_shapes=(
          "the held-out test shapes (split_by='shape')"
          if config.data.split_by == "shape"
          else "all shapes, new views (split_by='image')"
      ),
      pr_auc=PR_AUC_DEFINITION,
      ranks="1-based; ties broken by the lower index",
      viewpoint=VIEWPOINT_DEFINITION,
      fused=FUSION_DEFINITION,
  )
  result = EvalResult(by_name, meta, model)
  result.save(paths.eval_dir(workdir))
  return result
