"""What a person looks at after an evaluation: a table like the paper's, the curves, and retrieval galleries.

workdir/eval/results.md       one row per (set, method)
workdir/eval/pr_curves.png    image->image precision-recall, one panel per set
workdir/eval/topk_curves.png  image->shape top-K accuracy, one panel per set
workdir/eval/retrievals.png   query | its 5 nearest shapes (joint embedding), the true shape framed in green
"""

import os

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import ml_collections  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from PIL import Image  # pylint: disable=wrong-import-position
from PIL import ImageDraw  # pylint: disable=wrong-import-position

from jembed.evaluation import evaluate  # pylint: disable=wrong-import-position
from jembed.evaluation import methods  # pylint: disable=wrong-import-position
from jembed.render import thumbnails
from jembed.utils import viz  # pylint: disable=wrong-import-position
from jembed.workdir import files  # pylint: disable=wrong-import-position
from jembed.workdir import paths

_COLUMNS = (
    ("top1", "top-1"),
    ("top5", "top-5"),
    ("top10", "top-10"),
    ("category_top1", "category top-1"),
    ("pr_auc", "PR-AUC"),
    ("median_rank_first", "median first"),
    ("median_rank_last", "median last"),
)


def _cell(value, key: str) -> str:
  """A table cell: shares to 3 decimals, ranks as they are (a median rank of 1 reads '1', not '1.000')."""
  if value is None:
    return "–"
  if key.startswith("median_rank") or not isinstance(value, float):
    return f"{value:g}"
  return f"{value:.3f}"


def _rows(results: dict, metric: str):
  """(set, method, scores) of every entry that has `metric`, in results order (`_meta` skipped)."""
  for set_name, by_method in results.items():
    if set_name.startswith("_"):
      continue
    for method, scores in by_method.items():
      if metric in scores:
        yield set_name, method, scores


def results_table(results: dict) -> str:
  """The retrieval results as a Markdown table: one row per (set, method), the paper's metrics as columns (fused
  queries are one per shape, so their shape->image and image->image columns are empty).

  Args:
    results: {set: {method: {metric: value}}}, as `EvalResult.scores()` or results.json (its `_meta` is skipped).
  """
  head = "| set | method | " + " | ".join(title for _, title in _COLUMNS) + " | queries |"
  lines = [head, "|" + "---|" * (len(_COLUMNS) + 3)]
  for set_name, method, scores in _rows(results, "top1"):
    cells = [_cell(scores.get(key), key) for key, _ in _COLUMNS]
    lines.append(
        f"| {set_name} | {methods.label(method)} | " + " | ".join(cells) + f" | {scores.get('n_queries', '')} |"
    )
  if len(lines) == 2:  # only sets labelled with categories (`category_table`)
    return "(no set with ground-truth shapes)"
  return "\n".join(lines)


def viewpoint_table(results: dict) -> str:
  """Render for CNN's viewpoint metrics as a Markdown table: one row per (set, estimator), Acc_π/6 and MedErr
  averaged over the categories, then per category; '' when no set has viewpoint rows."""
  rows = list(_rows(results, "acc_pi6"))
  if not rows:
    return ""
  categories = sorted({c for _, _, scores in rows for c in scores.get("per_category", {})})
  head = (
      "| set | estimator | Acc_π/6 | MedErr (°) | "
      + " | ".join(f"{c} Acc / MedErr" for c in categories)
      + " | images |"
  )
  lines = [head, "|" + "---|" * (len(categories) + 5)]
  for set_name, method, scores in rows:
    per = scores.get("per_category", {})
    cells = [f"{per[c]['acc_pi6']:.2f} / {per[c]['med_err']:.0f}" if c in per else "–" for c in categories]
    lines.append(
        f"| {set_name} | {methods.label(method)} | {scores['acc_pi6']:.3f} | {scores['med_err']:.1f} | "
        + " | ".join(cells)
        + f" | {scores.get('n_queries', '')} |"
    )
  return "\n".join(lines)


def category_table(results: dict) -> str:
  """The sets that know only their photos' categories: category top-1 / top-5 per method and the commonest
  confusions; '' when there is none."""
  rows = [(s, m, v) for s, m, v in _rows(results, "category_top1") if "top1" not in v and "confusion" in v]
  if not rows:
    return ""
  lines = ["| set | method | category top-1 | category top-5 | nearest shape's category (photos) | queries |"]
  lines.append("|---|---|---|---|---|---|")
  for set_name, method, scores in rows:
    counts: dict[str, int] = {}
    for row in scores["confusion"].values():
      for category, count in row.items():
        counts[category] = counts.get(category, 0) + count
    shown = ", ".join(f"{c} {n}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1])[:6])
    lines.append(
        f"| {set_name} | {methods.label(method)} | {scores['category_top1']:.3f} | "
        f"{scores['category_top5']:.3f} | {shown} | {scores['n_queries']} |"
    )
  return "\n".join(lines)


def write_markdown(results: dict, meta: dict, path: str) -> str:
  """results.md: the tables and what each column means (`meta` from `EvalResult.meta`)."""
  text = (
      f"# jembed evaluation\n\nCheckpoint step {meta.get('step')}, {meta.get('n_shapes')} shapes; ranks are "
      f"among all of them.\n\n{results_table(results)}\n\n"
      "- top-K: share of query images whose true shape is among the K nearest shapes (image->shape).\n"
      "- category top-1: the nearest shape has the query's category.\n"
      f"- PR-AUC: {meta.get('pr_auc', evaluate.PR_AUC_DEFINITION)}.\n"
      "- median first / last: for each shape, the rank of its best and of its worst image among all the set's "
      "images (shape->image), median over shapes.\n"
  )
  if "fused" in meta:
    text += f"- {meta['fused']}; compare with the joint embedding's single images of the same set.\n"
  by_category = category_table(results)
  if by_category:
    text += (
        f"\n## Photos labelled with a category only\n\n{by_category}\n\n"
        "- category top-1 / top-5: the nearest shape / one of the 5 nearest shapes has the photo's category; the "
        "confusion (per true category) is in results.json.\n"
    )
  views = viewpoint_table(results)
  if views:
    text += (
        f"\n## Viewpoint (Render for CNN's metrics)\n\n{views}\n\n"
        f"- {meta.get('viewpoint', '')}.\n"
        "- nearest LFD view: the angles of the single nearest of all shapes' 20 LFD views (tilt 0); category's "
        "most frequent view: the training distribution's top azimuth and elevation bins of the image's true "
        "category (tilt 0).\n"
    )
  files.write_text(path, text)
  return path


def _panel_grid(n: int):
  fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8), squeeze=False)
  return fig, axes[0]


def write_curves(curves_path: str, results: dict, out_dir: str) -> tuple[str, str]:
  """pr_curves.png and topk_curves.png from curves.npz; returns their paths."""
  sets = [s for s in results if not s.startswith("_")]
  with np.load(curves_path) as f:
    curves = {k: f[k] for k in f.files}
  written = []
  for kind, xlabel, ylabel in (("precision", "recall", "precision"), ("topk", "K", "top-K accuracy")):
    fig, axes = _panel_grid(len(sets))
    for ax, set_name in zip(axes, sets):
      for method in results[set_name]:
        y = curves.get(f"{set_name}/{method}/{kind}")
        if y is None:
          continue
        x = curves["recall"] if kind == "precision" else np.arange(1, len(y) + 1)
        score = results[set_name][method].get("pr_auc" if kind == "precision" else "top1")
        ax.plot(x, y, label=f"{methods.label(method)} ({score:.3f})")
      ax.set(title=set_name, xlabel=xlabel, ylabel=ylabel, ylim=(0, 1.02))
      if kind == "topk":
        ax.set_xscale("log")
      ax.grid(alpha=0.3)
      ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out_dir, paths.PR_CURVES if kind == "precision" else paths.TOPK_CURVES)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
  return tuple(written)


def _framed(image: np.ndarray, color: str, width: int = 4) -> np.ndarray:
  tile = Image.fromarray(image).convert("RGB")
  ImageDraw.Draw(tile).rectangle([0, 0, tile.width - 1, tile.height - 1], outline=color, width=width)
  return np.asarray(tile)


def write_retrievals(
    config: ml_collections.ConfigDict,
    workdir: str,
    result: "evaluate.EvalResult",
    path: str,
    per_set: int = 8,
    thumb: int = 96,
    method: str = "joint",
) -> str:
  """retrievals.png: for `per_set` queries of each set, the query and its 5 nearest shapes (true one framed green).

  Queries are spread evenly over each set, so every category shows up.
  """
  model = result.model
  report = {
      name: dict(image_set=entry.image_set, top=entry.nearest[method])
      for name, entry in result.sets.items()
      if method in entry.nearest
  }
  picks = {}
  for set_name, entry in report.items():
    n = len(entry["image_set"])
    picks[set_name] = np.unique(np.linspace(0, n - 1, min(per_set, n)).round().astype(int))
  needed = {
      str(model.shape_ids[j])
      for name, rows in picks.items()
      for i in rows
      for j in list(report[name]["top"][i]) + [report[name]["image_set"].shape_index[i]]
      if j >= 0  # -1: a photo labelled with its category only
  }
  thumbs = thumbnails.workdir_thumbnails(workdir, sorted(needed), thumb, config.render.backend)
  blank = np.full((thumb, thumb, 3), 255, np.uint8)
  rows = []
  for set_name, rows_idx in picks.items():
    image_set, top = report[set_name]["image_set"], report[set_name]["top"]
    for i in rows_idx:
      truth = int(image_set.shape_index[i])
      tiles = [image_set.images[i]]
      for j in top[i]:
        tile = thumbs.get(str(model.shape_ids[j]), blank)
        tiles.append(_framed(tile, "#1a9b3c") if j == truth else tile)
      rank = "top-5" if truth in top[i] else "missed"
      if truth < 0:  # only the category is known
        rank = str(image_set.categories[i])[:10]
      elif truth not in top[i]:  # show what it should have found, framed red, after the five
        tiles.append(_framed(thumbs.get(str(model.shape_ids[truth]), blank), "#c0392b"))
      rows.append((f"{set_name.replace('synthetic_', '')[:16]}: {rank}", tiles))
  header = (
      f"query | 5 nearest shapes by {methods.label(method)} (green frame: the true shape; red, after them: "
      "the true shape when it was missed)"
  )
  viz.image_grid(rows, thumb=thumb, label_width=130, header=header).save(path)
  return path


def write_report(config: ml_collections.ConfigDict, workdir: str, result: "evaluate.EvalResult") -> dict[str, str]:
  """All the files above from `evaluate.evaluate`'s result; {what: path}."""
  out_dir = paths.eval_dir(workdir)
  scores = result.scores()
  outputs = {
      "results": os.path.join(out_dir, paths.RESULTS),
      "results table": write_markdown(scores, result.meta, os.path.join(out_dir, paths.RESULTS_TABLE)),
  }
  outputs["precision-recall curves"], outputs["top-K curves"] = write_curves(
      os.path.join(out_dir, paths.CURVES), scores, out_dir
  )
  outputs["retrievals"] = write_retrievals(
      config, workdir, result, os.path.join(out_dir, paths.RETRIEVALS), int(config.eval.gallery_queries)
  )
  return outputs
