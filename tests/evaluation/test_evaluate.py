"""The evaluation on a finished tiny run: its test sets, its baselines (checked on the shapes' own views) and the
protocols on hand-made distances."""

import copy
import itertools
import json
import shutil

import numpy as np
from PIL import Image
import pytest

from configs import tiny
from jembed.data import backgrounds
from jembed.data import pipeline
from jembed.data import synthesis
from jembed.data import viewpoints
from jembed.embedding import hog_nn
from jembed.evaluation import baselines
from jembed.evaluation import evaluate
from jembed.evaluation import image_sets
from jembed.evaluation import methods
from jembed.evaluation import report
from jembed.render import backend
from jembed.render import camera
from jembed.render import lfd
from jembed.shapes import sources
from jembed.utils import viz
from jembed.workdir import records


@pytest.fixture(scope="module")
def run(tiny_run):
  workdir, _, _ = tiny_run
  embedding = records.ShapeEmbedding.load(str(workdir / "shape_embedding.npz"))
  return tiny.get_config(), str(workdir), embedding


def test_results_json_is_set_method_metric(run):
  _, workdir, embedding = run
  results = json.loads(open(f"{workdir}/eval/results.json").read())
  n = len(embedding.ids)
  assert set(results) == {"synthetic_clean", "synthetic_clutter", "_meta"}
  for name in ("synthetic_clean", "synthetic_clutter"):
    assert set(results[name]) == {
        "joint",
        "joint+verify",
        "hog_nn",
        "pixels",
        "chance",
        "fused:points",
        "fused:distances",
        "fused:ranks",
        "viewpoint:joint",
        "viewpoint:hog_nn",
        "viewpoint:pixels",
        "viewpoint:category_mode",
        "viewpoint:verify",
    }
    for how in ("points", "distances", "ranks"):
      scores = results[name][f"fused:{how}"]
      assert scores["n_queries"] == n and scores["images_per_query"] == 2  # one query per shape, its 2 images
      assert 0 <= scores["top1"] <= scores["top5"] <= scores["top10"] <= 1
    for method in ("joint", "hog_nn", "pixels", "category_mode", "verify"):
      scores = results[name][f"viewpoint:{method}"]
      assert scores["n_queries"] == n * 2 and 0 <= scores["acc_pi6"] <= 1 and 0 <= scores["med_err"] <= 180
      assert set(scores["per_category"]) == {"airplane", "car", "chair", "lamp", "sofa", "table"}
    for method in ("joint", "joint+verify", "hog_nn", "pixels"):
      scores = results[name][method]
      assert scores["n_queries"] == n * 2 and scores["n_shapes"] == n
      assert 0 <= scores["top1"] <= scores["top5"] <= scores["top10"] <= 1
      assert 0 < scores["pr_auc"] <= 0.998
      assert 1 <= scores["median_rank_first"] <= scores["median_rank_last"] <= n * 2
    assert results[name]["chance"]["top1"] == pytest.approx(1 / n)
    assert results[name]["chance"]["category_top1"] == pytest.approx(1 / 6)  # 6 categories of 3 shapes
  assert "query itself" in results["_meta"]["pr_auc"]


def test_clean_and_clutter_twins_differ_only_in_background():
  """A disk rendered once, finished twice: identical where opaque, white vs cluttered where transparent."""
  size = 40
  yy, xx = np.mgrid[:size, :size]
  alpha = np.where((yy - 19.5) ** 2 + (xx - 19.5) ** 2 <= 18**2, 255, 0).astype(np.uint8)
  rgba = np.dstack([np.full((size, size, 3), 90, np.uint8), alpha])
  settings = synthesis.SynthesisSettings(image_size=36, render_size=size, truncation=0.0)  # no jitter, no stretch
  params = synthesis.sample_params(np.random.default_rng(1), viewpoints.paper_distribution("chair"), settings)
  clutter = backgrounds.Backgrounds(None, clutter_ratio=1.0)
  clean, cluttered = image_sets.finish_twins(rgba, params, np.random.default_rng(2), clutter, settings)
  box = alpha[2:38, 2:38]  # the tight box of the disk
  assert clean.shape == cluttered.shape == (36, 36, 3)
  np.testing.assert_array_equal(clean[box == 255], cluttered[box == 255])
  assert np.all(clean[box == 0] == 255)
  assert np.mean(cluttered[box == 0] != 255) > 0.5


def test_synthetic_sets_pair_up(run):
  config, workdir, embedding = run
  clean, clutter = image_sets.synthetic_sets(config, workdir, embedding.ids)  # cached by the demo
  np.testing.assert_array_equal(clean.shape_index, clutter.shape_index)
  np.testing.assert_array_equal(np.sort(np.unique(clean.shape_index)), np.arange(len(embedding.ids)))
  assert clean.images.shape == clutter.images.shape == (len(embedding.ids) * 2, 48, 48, 3)
  # The corners of a tight crop are mostly background: white in one set, not in the other.
  corners = (slice(None), [0, 0, -1, -1], [0, -1, 0, -1])
  assert (clean.images[corners] == 255).all(-1).mean() > (clutter.images[corners] == 255).all(-1).mean() + 0.3


def test_synthetic_sets_keep_each_image_s_true_view(run):
  config, workdir, embedding = run
  clean, clutter = image_sets.synthetic_sets(config, workdir, embedding.ids)
  np.testing.assert_array_equal(clean.views, clutter.views)
  assert clean.views.shape == (len(clean), 3)
  label_angles = np.array([[float(label.split(" ")[1][2:]), float(label.split(" ")[2][2:])] for label in clean.labels])
  np.testing.assert_allclose(label_angles, clean.views[:, :2], atol=0.5)  # the labels print them rounded
  assert np.abs(clean.views[:, 2]).max() < 60  # tilts: a few degrees (N(0, 3) or N(0, 10) by category)


def test_test_views_were_never_in_the_dataset(run):
  config, workdir, embedding = run
  clean, _ = image_sets.synthetic_sets(config, workdir, embedding.ids)
  train_views = set()
  for split in ("train", "validation", "test"):
    try:
      source = pipeline.data_source(config, workdir, split)
    except (KeyError, ValueError):
      continue
    for i in range(len(source)):
      ex = source[i]
      train_views.add(
          (
              str(ex["shape_id"].decode() if isinstance(ex["shape_id"], bytes) else ex["shape_id"]),
              round(float(ex["azimuth"])),
          )
      )
  assert train_views
  test_views = {(label.split(" ")[0], int(label.split(" ")[1][2:])) for label in clean.labels}
  assert len(test_views & train_views) <= 1  # new draws; a 1-degree coincidence at most


def _own_views(config, workdir, embedding, view: int) -> tuple[np.ndarray, np.ndarray]:
  """Each shape's LFD view `view`, rendered as the shape stage did, tightly cropped on white: uint8[N, S, S, 3]."""
  renderer = backend.get_renderer(config.render.backend)
  refs = [r for r in sources.list_shapes(config.shapes) if r.id in set(embedding.ids)]
  images, rows = [], []
  for shape in sources.iter_shapes(refs, config.shapes.up_axis, config.shapes.front):
    views = lfd.lfd_views(shape.category)
    one = camera.Views.make(
        views.azimuth[view : view + 1], views.elevation[view : view + 1], 0.0, views.distance[view : view + 1]
    )
    rgba = renderer.render(
        shape.vertices, shape.faces, one, size=config.render.size, antialias=config.render.antialias
    ).rgba[0]
    ys, xs = np.nonzero(rgba[..., 3])
    crop = viz.on_white(rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    images.append(np.asarray(Image.fromarray(crop).resize((96, 96), Image.LANCZOS)))
    rows.append(list(embedding.ids).index(shape.id))
  return np.stack(images), np.asarray(rows)


def test_baselines_find_a_shape_from_its_own_view(run):
  """An independent check of both baselines: a shape's own LFD view is nearest to that shape."""
  config, workdir, embedding = run
  images, rows = _own_views(config, workdir, embedding, view=3)
  hog_d, hog_view = hog_nn.nearest_view(
      hog_nn.hog_features(images), hog_nn.hog_view_features(workdir, embedding.ids), 20
  )
  assert np.mean(np.argmin(hog_d, axis=1) == rows) >= 0.9
  assert np.mean(hog_view == rows * 20 + 3) >= 0.9  # and the winning view is the one rendered
  pix_d, _ = hog_nn.nearest_view(
      baselines.pixel_features(images), baselines.pixel_view_features(config, workdir, embedding.ids), 20
  )
  assert np.mean(np.argmin(pix_d, axis=1) == rows) >= 0.9
  assert hog_d.shape == pix_d.shape == (len(rows), len(embedding.ids))


def test_protocols_on_hand_made_distances():
  categories = np.array(["a", "a", "b"])
  shape_index = np.array([0, 0, 1, 2])  # 4 images of 3 shapes
  perfect = np.where(np.arange(3)[None, :] == shape_index[:, None], 0.0, 1.0)
  same = shape_index[:, None] == shape_index[None, :]
  image_image = np.where(same, 0.0, 1.0) + np.eye(4) * 0.0
  scores, curves = evaluate.protocols(perfect, image_image, shape_index, categories)
  assert scores["top1"] == scores["category_top1"] == 1.0
  assert scores["median_rank_first"] == 1.0
  # Shape 0 owns images 0 and 1 (ranks 1, 2), shapes 1 and 2 one image each (rank 1): medians 1 and 1.
  assert scores["median_rank_last"] == 1.0
  assert scores["pr_auc"] == pytest.approx(0.998)
  assert curves["topk"].shape == (3,) and curves["precision"].shape == (500,)
  # Reversed: the true shape is always the farthest -> rank 3 of 3.
  worst = 1.0 - perfect
  scores, _ = evaluate.protocols(worst, image_image, shape_index, categories)
  assert scores["top1"] == 0.0 and scores["top5"] == 1.0
  # Nearest (first of the ties): images 0, 1 -> shape 1 ('a', right), 2 -> shape 0 ('a', right), 3 -> 0 (wrong).
  assert scores["category_top1"] == pytest.approx(0.75)


def test_chance():
  scores = evaluate.chance(np.array([0, 1, 2, 2]), np.array(["a", "a", "b", "c"]))
  assert scores["top1"] == pytest.approx(1 / 4)
  assert scores["category_top1"] == pytest.approx((0.5 + 0.5 + 0.25 + 0.25) / 4)


def test_another_trained_run_is_a_row_on_the_same_images(run, tmp_path):
  """`config.eval.compare_runs`: a run on the same shapes becomes the row `joint_<name>`; the same network there
  scores exactly what `joint` scores here."""
  config, workdir, _ = run
  copy = tmp_path / "copy"
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("results.json", "curves.npz"))
  config = config.copy_and_resolve_references()
  config.eval.compare_runs = f"again={workdir}"
  result = evaluate.evaluate(config, str(copy), methods=("joint",))
  for entry in result.sets.values():
    # (rows with ':' are the viewpoint and fused-query rows, which every evaluation adds)
    assert {k for k in entry.scores if ":" not in k} == {"joint", "joint_again", "chance"}
    assert entry.scores["joint_again"] == entry.scores["joint"]
  assert methods.label("joint_again") == "joint embedding (again)"
  assert {k for k in json.loads((copy / "eval" / "results.json").read_text())["synthetic_clean"] if ":" not in k} == {
      "joint",
      "joint_again",
      "chance",
  }
  config.eval.compare_runs = "again"
  with pytest.raises(ValueError, match="compare_runs: 'again' is not name=workdir"):
    evaluate.evaluate(config, str(copy), methods=("joint",))


def test_results_table_writes_shares_to_three_decimals_and_ranks_as_they_are():
  """A perfect method: top-1 1.000 (a share), median ranks 1 and 3 (ranks, not shares, even at 1)."""
  scores = dict(
      top1=1.0,
      top5=1.0,
      top10=1.0,
      category_top1=0.5,
      pr_auc=0.998,
      median_rank_first=1.0,
      median_rank_last=3.0,
      n_queries=6,
  )
  row = report.results_table({"synthetic_clean": {"joint": scores}}).splitlines()[2]
  assert row == "| synthetic_clean | joint embedding | 1.000 | 1.000 | 1.000 | 0.500 | 0.998 | 1 | 3 | 6 |", row


def test_verify_weights_are_chosen_on_validation_images_that_are_not_test_images(run):
  """`joint+verify`'s weights come from the run's own synthetic validation images: new views (never a test image),
  both twins; the choice is one of the grid's and is written where launch.query reads it."""
  from jembed.evaluation import verify_method  # pylint: disable=g-import-not-at-top

  config, workdir, embedding = run
  val = image_sets.validation_set(config, workdir, embedding.ids)
  tests = image_sets.synthetic_sets(config, workdir, embedding.ids, np.asarray(embedding.categories))
  assert val.name == "synthetic_validation" and len(val) == 2 * len(embedding.ids)
  test_labels = set(tests[0].labels)
  assert not test_labels & set(val.labels)  # other views of the same shapes
  test_pixels = {im.tobytes() for s in tests for im in s.images}
  assert not any(im.tobytes() in test_pixels for im in val.images)
  saved = json.loads(open(f"{workdir}/verify/verify_weights.json").read())
  assert tuple(saved["weights"]) in set(itertools.product(*verify_method.WEIGHT_GRID.values()))
  assert saved["validation"]["images"] == len(val)


def test_category_protocols_on_hand_made_distances():
  shape_categories = np.array(["chair", "chair", "sofa", "table", "lamp", "car"])
  # query 0: nearest a chair; query 1: nearest a sofa, a chair 2nd; query 2 (a sofa photo): chairs only in the top 5
  distances = np.array(
      [
          [0.1, 0.5, 0.2, 0.3, 0.4, 0.9],
          [0.2, 0.9, 0.1, 0.8, 0.7, 0.6],
          [0.1, 0.2, 0.9, 0.3, 0.4, 0.5],
      ],
      np.float32,
  )
  truth = np.array(["chair", "chair", "sofa"])
  scores = evaluate.category_protocols(distances, truth, shape_categories)
  assert scores["category_top1"] == pytest.approx(1 / 3)
  assert scores["category_top5"] == pytest.approx(2 / 3)  # the sofa is 6th for query 2
  assert scores["confusion"] == {"chair": {"chair": 1, "sofa": 1}, "sofa": {"chair": 1}}
  assert scores["n_queries"] == 3 and scores["n_shapes"] == 6
  table = report.category_table({"photos": {"joint": scores}})
  assert "| photos | joint embedding | 0.333 | 0.667 | chair 2, sofa 1 | 3 |" in table


def test_query_verifies_the_shortlist_the_evaluation_verifies(run):
  """With HoG-NN in the shortlist (`config.verify.shortlist_hog`), `launch.query`'s verification
  (`verify_query.verify_photos`, which computes HoG-NN itself) cuts the same K candidates from the same images as the
  evaluation's row does, and they are not the joint embedding's K nearest alone."""
  from jembed.api import embed  # pylint: disable=g-import-not-at-top
  from jembed.api import verify  # pylint: disable=g-import-not-at-top
  from jembed.api import verify_query  # pylint: disable=g-import-not-at-top
  from jembed.evaluation import verify_method  # pylint: disable=g-import-not-at-top

  config, workdir, embedding = run
  config = copy.deepcopy(config)
  config.verify.update(shortlist_hog=2.0, k=5, refine=0)
  model = embed.load(workdir)
  context = methods.Context(config, workdir, model)
  images = image_sets.synthetic_sets(config, workdir, embedding.ids, np.asarray(embedding.categories))[1].images[:12]
  h = verify_method.hypotheses(images, context)
  points, _ = context.network_outputs(images)
  settings = verify.Settings.from_config(config)
  checked = verify_query.verify_photos(workdir, model, images, points, None, backend.get_renderer("auto"), settings)
  for q, v in enumerate(checked):
    assert set(v.rows.tolist()) == set(h["candidates"][q].tolist())
  joint_only = np.argsort(model.shape_index.distances(points), axis=1, kind="stable")[:, :5]
  assert any(set(a) != set(b) for a, b in zip(joint_only.tolist(), h["candidates"].tolist()))
