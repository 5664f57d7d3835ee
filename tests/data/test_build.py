"""The TFDS dataset: building on the catalog and on real meshes, determinism over workers and Apache Beam, labels,
splits, reading back in a fresh process without our code, atomic interrupted builds, skipped background files."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds
import trimesh

from configs import tiny
from jembed.data import build
from jembed.data import naming
from jembed.data import splits
from jembed.data import tfds_builder
from jembed.evaluation import image_sets
from jembed.render import backend
from jembed.render import camera
from jembed.render import shading
from jembed.shapes import sources

from conftest import run_launcher

REPO = pathlib.Path(__file__).resolve().parents[2]


def _config(**data):
  """tiny.py with one shape per category (6 shapes), 2 images of 32 px each."""
  config = tiny.get_config()
  config.shapes.limit = 1
  config.data.image_size = 32
  config.data.sample_sheet = 4
  for key, value in data.items():
    config.data[key] = value
  return config


def _examples(dataset_dir, split=None):
  """{(shape_id, image_index): example with PNG bytes} of one split or all."""
  builder = tfds.builder_from_directory(dataset_dir)
  out = {}
  for name in ([split] if split else list(builder.info.splits)):
    source = builder.as_data_source(split=name, decoders={"image": tfds.decode.SkipDecoding()})
    for i in range(len(source)):
      example = dict(source[i], split=name)
      out[(example["shape_id"].decode(), int(example["image_index"]))] = example
  return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The tiny catalog dataset built once, in this process."""
  workdir = tmp_path_factory.mktemp("reference")
  config = _config()
  result = build.build_dataset(config, str(workdir), workers=1)
  return config, workdir, result


def test_builds_the_catalog(reference):
  config, workdir, result = reference
  assert result.dataset_dir == naming.dataset_dir(config, str(workdir))
  assert result.num_examples == {"train": 10, "validation": 1, "test": 1}  # 12 images, 90/5/5, at least 1 each
  assert result.images_rendered == 12
  examples = _examples(result.dataset_dir)
  assert len(examples) == 12 and {k[1] for k in examples} == {0, 1}
  assert {e["shape_id"].decode().split("/")[0] for e in examples.values()} == {
      "airplane",
      "car",
      "chair",
      "lamp",
      "sofa",
      "table",
  }
  info = tfds.builder_from_directory(result.dataset_dir).info
  assert info.features["image"].shape == (32, 32, 3) and info.file_format.value == "array_record"
  names = info.features["category"].names
  for (shape_id, _), e in examples.items():
    assert names[e["category"]] == shape_id.split("/")[0]
    assert Image.open(__import__("io").BytesIO(e["image"])).format == "PNG"
    assert 0 <= e["azimuth"] < 360 and -90 <= e["elevation"] <= 90 and e["distance"] == 3.0
  meta = json.loads((pathlib.Path(result.dataset_dir) / "metadata.json").read_text())
  assert meta["shape_ids"] == [r.id for r in sources.list_shapes(config.shapes)]
  assert meta["skipped_shapes"] == [] and meta["settings"] == json.loads(json.dumps(naming.content_settings(config)))
  sheet = Image.open(workdir / "dataset_samples.png")
  assert sheet.size[0] > 6 * 128
  summary = json.loads((workdir / "dataset.json").read_text())
  assert summary["splits"] == result.num_examples and summary["name"] == naming.tfds_name(config)
  assert not (workdir / "dataset_cache").exists() or not any((workdir / "dataset_cache").iterdir())


def test_identical_over_workers(reference, tmp_path):
  """Two spawned rendering workers: the same bytes as one."""
  config, _, result = reference
  other = build.build_dataset(config, str(tmp_path), workers=2)
  assert other.images_rendered == 12
  ours, theirs = _examples(other.dataset_dir), _examples(result.dataset_dir)
  assert ours.keys() == theirs.keys()
  for key, example in ours.items():
    assert example["image"] == theirs[key]["image"], key
    for field in ("azimuth", "elevation", "tilt", "clutter", "background", "split", "shape_index"):
      assert example[field] == theirs[key][field], (key, field)


@pytest.mark.slow
def test_beam_build_reads_back_as_the_single_host_build(reference, tmp_path):
  """launch.build_dataset --beam_runner=DirectRunner, then a fresh process reads both datasets through
  tfds.data_source: every split holds the same examples, in the same order, and metadata.json is the same."""
  pytest.importorskip("apache_beam", reason="Apache Beam is the optional 'beam' extra: pip install -e '.[beam]'")
  config, workdir, _ = reference
  beam_workdir = tmp_path / "beam"
  flags = [
      "--config=configs/tiny.py",
      "--config.shapes.limit=1",
      "--config.data.image_size=32",
      "--config.data.sample_sheet=4",
      f"--workdir={beam_workdir}",
      "--beam_runner=DirectRunner",
  ]
  out = run_launcher("build_dataset", *flags)
  assert out.returncode == 0, out.stderr[-3000:]
  script = textwrap.dedent(f"""
      import json, sys
      import tensorflow_datasets as tfds
      def read(data_dir):
        ds = tfds.data_source({naming.tfds_name(config)!r}, data_dir=data_dir, download=False,
                              decoders={{"image": tfds.decode.SkipDecoding()}})
        plain = lambda v: v.decode("latin1") if isinstance(v, bytes) else getattr(v, "item", lambda: v)()
        return {{split: [{{k: plain(v) for k, v in source[i].items()}} for i in range(len(source))]
                for split, source in ds.items()}}
      single, beam = read({naming.data_dir(str(workdir))!r}), read({naming.data_dir(str(beam_workdir))!r})
      assert not [m for m in sys.modules if m.startswith("jembed")]
      print(json.dumps(dict(sizes={{k: len(v) for k, v in beam.items()}}, same=single == beam,
                            same_sets={{k: sorted(map(str, v)) == sorted(map(str, single.get(k, []))) for k, v in
                                        beam.items()}}, tensorflow="tensorflow" in sys.modules)))
      """)
  read = subprocess.run([sys.executable, "-c", script], cwd="/", capture_output=True, text=True, timeout=120)
  assert read.returncode == 0, read.stderr[-2000:]
  result = json.loads(read.stdout.strip().splitlines()[-1])
  assert result["sizes"] == {"train": 10, "validation": 1, "test": 1}
  assert result["same_sets"] == {"train": True, "validation": True, "test": True}
  assert result["same"] and not result["tensorflow"]
  single_dir, beam_dir = naming.dataset_dir(config, str(workdir)), naming.dataset_dir(config, str(beam_workdir))
  assert (pathlib.Path(beam_dir) / "metadata.json").read_text() == (
      pathlib.Path(single_dir) / "metadata.json"
  ).read_text()


def test_reads_back_in_a_fresh_process_without_our_code(reference):
  config, workdir, _ = reference
  script = textwrap.dedent(f"""
      import json, sys
      import tensorflow_datasets as tfds
      ds = tfds.data_source({naming.tfds_name(config)!r}, data_dir={naming.data_dir(str(workdir))!r}, download=False)
      example = ds["train"][0]
      assert not [m for m in sys.modules if m.startswith("jembed")]
      print(json.dumps(dict(sizes={{k: len(v) for k, v in ds.items()}}, shape=list(example["image"].shape),
                            id=example["shape_id"].decode(), tensorflow="tensorflow" in sys.modules)))
      """)
  out = subprocess.run([sys.executable, "-c", script], cwd="/", capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["sizes"] == {"train": 10, "validation": 1, "test": 1}
  assert result["shape"] == [32, 32, 3] and "/" in result["id"] and not result["tensorflow"]


def test_interrupted_build_is_not_complete_and_a_rerun_completes(reference, tmp_path):
  """SIGKILL while TFDS writes the validation split; then the launcher, as a user reruns it."""
  config, _, result = reference
  workdir = tmp_path / "wd"
  script = textwrap.dedent(f"""
      import os, signal
      from configs import tiny
      from jembed.data import build, tfds_builder
      config = tiny.get_config()
      config.shapes.limit = 1
      config.data.image_size = 32
      config.data.sample_sheet = 4
      original = tfds_builder.JembedImages._generate_examples
      def dying(self, split_index, assignment):
        for i, item in enumerate(original(self, split_index, assignment)):
          if split_index == 1:
            os.kill(os.getpid(), signal.SIGKILL)
          yield item
      tfds_builder.JembedImages._generate_examples = dying
      build.build_dataset(config, {str(workdir)!r}, workers=1)
      """)
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  killed = subprocess.run(
      [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
  )
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  config_dir = pathlib.Path(naming.dataset_dir(config, str(workdir))).parent
  assert [p.name for p in config_dir.iterdir() if p.is_dir()][0].startswith("incomplete.")
  assert not pathlib.Path(naming.dataset_dir(config, str(workdir))).exists()
  with pytest.raises(Exception):
    tfds.data_source(naming.tfds_name(config), data_dir=naming.data_dir(str(workdir)), download=False)
  rerun = subprocess.run(
      [
          sys.executable,
          "-m",
          "launch.build_dataset",
          "--config=configs/tiny.py",
          f"--workdir={workdir}",
          "--config.shapes.limit=1",
          "--config.data.image_size=32",
          "--config.data.sample_sheet=4",
      ],
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "0 images rendered" in rerun.stdout  # resumed from the render cache
  assert [p.name for p in config_dir.iterdir() if p.is_dir()] == [naming.DATASET_VERSION]  # leftovers removed
  ours, theirs = _examples(naming.dataset_dir(config, str(workdir))), _examples(result.dataset_dir)
  assert {k: v["image"] for k, v in ours.items()} == {k: v["image"] for k, v in theirs.items()}


def _silhouette_iou(example, shape, renderer, settings, azimuth):
  """IoU of the example's non-background pixels and the renderer's own silhouette at the labels (tight crop),
  over the pixels that are clearly inside or outside the silhouette."""
  image = np.asarray(Image.open(__import__("io").BytesIO(example["image"])), np.int32)
  gray = int(example["background"].decode().split(":")[1])
  value = round(float(shading.display(0.48)) * 255)  # the object's uniform value (ambient 1, no lamps, gray albedo)
  mask = np.abs(image - gray).max(-1) > abs(value - gray) / 2
  views = camera.Views.make(azimuth, example["elevation"], example["tilt"], example["distance"])
  alpha = renderer.render(shape.vertices, shape.faces, views, size=settings.render_size).alpha[0]
  rows, cols = np.nonzero(alpha)
  crop = alpha[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
  coverage = np.asarray(Image.fromarray(crop).resize(mask.shape[::-1], Image.BOX)) / 255.0
  sure = (coverage < 0.2) | (coverage > 0.8)  # edge pixels (partial coverage after the stretch) are not counted
  expected = coverage > 0.5
  return (mask & expected & sure).sum() / max(((mask | expected) & sure).sum(), 1)


@pytest.mark.slow
def test_labels_match_the_renderers_own_view(tmp_path):
  """Flat gray backgrounds, tight crops, uniform shading: each image's silhouette is the embree render at its labels."""
  config = _config(
      clutter_ratio=0.0,
      truncation=0.0,
      albedo="gray",
      max_lamps=0,
      ambient=(1.0, 1.0),
      images_per_shape=3,
      image_size=48,
  )
  result = build.build_dataset(config, str(tmp_path), workers=1)
  shapes = {s.id: s for s in sources.load_shapes(config.shapes)[0]}
  renderer = backend.get_renderer("embree")  # the other backend is the oracle
  settings = tfds_builder.synthesis.SynthesisSettings.from_config(config.data)
  right, wrong = [], []
  for (shape_id, _), example in sorted(_examples(result.dataset_dir).items()):
    gray = int(example["background"].decode().split(":")[1])
    if abs(gray - round(float(shading.display(0.48)) * 255)) < 40:  # object and background too alike to segment
      continue
    shape = shapes[shape_id]
    iou = _silhouette_iou(example, shape, renderer, settings, example["azimuth"])
    others = [_silhouette_iou(example, shape, renderer, settings, example["azimuth"] + d) for d in (45, 90, 180)]
    assert iou > 0.9 and iou >= max(others) - 0.02, (shape_id, iou, others)  # a lamp is round: ties are fine
    right.append(iou)
    wrong.append(np.mean(others))
  assert len(right) >= 8 and np.mean(right) > np.mean(wrong) + 0.15, (right, wrong)


@pytest.mark.slow
def test_split_by_shape_is_disjoint_and_bad_backgrounds_are_reported(tmp_path):
  folder = tmp_path / "bg"
  folder.mkdir()
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(folder / "photo.jpg")
  Image.fromarray(rng.integers(0, 256, (90, 120), dtype=np.uint8)).save(folder / "gray.png")
  (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
  config = _config(split_by="shape", split_fractions=(0.5, 0.25, 0.25), backgrounds=str(folder))
  config.shapes.limit = 2
  result = build.build_dataset(config, str(tmp_path / "wd"), workers=1)
  by_split = {}
  for (shape_id, _), example in _examples(result.dataset_dir).items():
    by_split.setdefault(example["split"], set()).add(shape_id)
  assert sum(map(len, by_split.values())) == 12 and len(set.union(*by_split.values())) == 12  # disjoint
  assert {k: len(v) for k, v in by_split.items()} == {"train": 6, "validation": 3, "test": 3}
  assert len({s.split("/")[0] for s in by_split["train"]}) == 6  # stratified: every category trains
  # The evaluation of a split-by-shape run tests on exactly the shapes this dataset kept out of training.
  refs = sources.list_shapes(config.shapes)
  ids, categories = np.array([r.id for r in refs]), np.array([r.category for r in refs])
  assert set(ids[image_sets.held_out_shapes(config, ids, categories)]) == by_split["test"]
  assert image_sets.held_out_shapes(_config(), ids, categories) is None  # split by image: every shape
  skipped = json.loads((tmp_path / "wd" / "dataset.json").read_text())["skipped_backgrounds"]
  assert sorted(pathlib.Path(p).name for p, _ in skipped) == ["broken.jpg", "gray.png"]
  backgrounds_used = {e["background"].decode() for e in _examples(result.dataset_dir).values()}
  assert backgrounds_used <= {"photo.jpg"} | {f"gray:{v}" for v in range(256)}


def test_split_counts_and_image_split():
  assert splits.split_counts(100, (0.9, 0.05, 0.05)) == [90, 5, 5]
  assert splits.split_counts(12, (0.9, 0.05, 0.05)) == [10, 1, 1]
  assert splits.split_counts(10, (0.9, 0.1, 0.0)) == [9, 1, 0]
  a = splits.assign([f"c/{i}" for i in range(20)], ["c"] * 20, 5, (0.8, 0.1, 0.1), "image", seed=0)
  assert a.shape == (20, 5) and np.bincount(a.ravel()).tolist() == [80, 10, 10]
  np.testing.assert_array_equal(
      a, splits.assign([f"c/{i}" for i in range(20)], ["c"] * 20, 5, (0.8, 0.1, 0.1), "image", seed=0)
  )
  with pytest.raises(ValueError, match="split_by"):
    splits.assign(["a"], ["c"], 1, (1, 0, 0), "category")


def test_broken_meshes_are_skipped_and_reported(tmp_path):
  folder = tmp_path / "meshes" / "box"
  folder.mkdir(parents=True)
  trimesh.creation.box((1.0, 0.5, 0.3)).export(folder / "good.obj")
  (folder / "broken.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
  config = _config()
  config.shapes.update(source="folder", root=str(tmp_path / "meshes"), limit=0)
  result = build.build_dataset(config, str(tmp_path / "wd"), workers=1)
  assert {k[0] for k in _examples(result.dataset_dir)} == {"box/good"}
  summary = json.loads((tmp_path / "wd" / "dataset.json").read_text())
  assert [shape_id for shape_id, _ in summary["skipped_shapes"]] == ["box/broken"]


@pytest.mark.slow
def test_real_meshes_objectnet3d(shared_data, tmp_path):
  config = _config()
  config.shapes.update(
      source="folder",
      root=str(shared_data / "objectnet3d_cad"),
      categories=("chair", "aeroplane"),
      up_axis="z",
      front="-y",
  )
  result = build.build_dataset(config, str(tmp_path), workers=1)
  examples = _examples(result.dataset_dir)
  assert sum(result.num_examples.values()) == 4 and len(examples) == 4
  assert {k[0] for k in examples} == {"aeroplane/01", "chair/01"}
  planes = [e for k, e in examples.items() if k[0].startswith("aeroplane")]
  assert all(-90 <= e["elevation"] <= 90 for e in planes)


@pytest.mark.slow
def test_real_meshes_shapenet(shared_data, tmp_path):
  config = _config()
  config.shapes.update(source="shapenet", root=str(shared_data / "shapenet_samples" / "ShapeNetCore.v1"))
  result = build.build_dataset(config, str(tmp_path), workers=1)
  ids = {k[0] for k in _examples(result.dataset_dir)}
  assert {i.split("/")[0] for i in ids} == {"02691156", "03001627"}
  assert (tmp_path / "dataset_samples.png").exists()
