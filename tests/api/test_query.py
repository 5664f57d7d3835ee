"""launch/query.py as a user runs it: ranked shapes and a gallery for a good photo, one clear line for each mistake."""

import os
import re
import subprocess

import numpy as np
from PIL import Image
import pytest

from jembed.api import query
from jembed.utils import images

from conftest import run_launcher


def _query(*flags) -> subprocess.CompletedProcess:
  return run_launcher("query", *flags, timeout=300)


@pytest.fixture(scope="module")
def photo(tiny_run, tmp_path_factory) -> str:
  """A test image of the run (a cluttered render of a known shape) saved as a user's JPEG."""
  workdir, _, _ = tiny_run
  with np.load(workdir / "eval" / "sets" / "synthetic.npz") as f:
    image, label = f["synthetic_clutter"][0], str(f["labels"][0])
  path = tmp_path_factory.mktemp("photos") / "my chair.jpg"
  Image.fromarray(image).resize((300, 240)).save(path, quality=92)  # any size and aspect: stretched like training
  return str(path), label.split(" ")[0]


def test_query_prints_ranked_shapes_and_writes_a_gallery(tiny_run, photo):
  workdir, _, _ = tiny_run
  path, _ = photo
  result = _query(f"--workdir={workdir}", f"--image={path}", "--top_k=4")
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.splitlines()
  assert lines[0] == f"{path}:"
  assert re.fullmatch(r"  pose: azimuth \d+°, elevation [+-]\d+°, tilt [+-]\d+°", lines[1]), lines[1]
  ranks = [line.split() for line in lines[2:6]]
  assert [int(r[0]) for r in ranks] == [1, 2, 3, 4]
  distances = [float(r[-1]) for r in ranks]
  assert distances == sorted(distances)
  gallery = lines[6].split("gallery: ")[1]
  # the photo, the posed top-1 over it and alone, and 4 shapes side by side
  assert Image.open(gallery).size[0] > 7 * 160


def test_query_matches_the_api(tiny_run, photo):
  """The printed ranking is the exact top-k of the embedded photo against every shape point (brute force)."""
  import jax  # pylint: disable=g-import-not-at-top

  import jembed  # pylint: disable=g-import-not-at-top

  workdir, _, _ = tiny_run
  path, _ = photo
  result = query.query(str(workdir), [path], top_k=5)
  model = jembed.load(str(workdir))
  image = images.read_photo(path, model.params.spec.image_size)
  point = np.asarray(jax.jit(jembed.embed_images)(model.params, image[None]))[0]
  d = np.linalg.norm(model.shape_points - point, axis=1)
  order = np.argsort(d, kind="stable")[:5]
  assert [m.shape_id for m in result.matches[0]] == list(model.shape_ids[order])
  np.testing.assert_allclose([m.distance for m in result.matches[0]], d[order], rtol=1e-4, atol=1e-5)
  angles = jax.device_get(jembed.predict_viewpoint(model.params, image[None]))
  (pose,) = result.poses
  assert pose.azimuth == pytest.approx(float(angles["azimuth"][0]))
  assert pose.elevation % 360 == pytest.approx(float(angles["elevation"][0]))
  assert pose.tilt % 360 == pytest.approx(float(angles["tilt"][0]))
  assert result.fused is None


def test_verified_query_prints_the_refined_pose_and_the_verified_ranking(tiny_run, photo):
  """--verify: the head's pose, the refined pose (on the run's pose grid, or half a step off it), then the verified
  ranking by fused score (ascending), and the gallery; the API's ranking is a reordering of the joint shortlist."""
  workdir, _, _ = tiny_run
  path, _ = photo
  result = _query(f"--workdir={workdir}", f"--image={path}", "--top_k=4", "--verify")
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.splitlines()
  found = re.fullmatch(r"  refined pose \(verified\): azimuth (\d+)°, elevation ([+-]\d+)°, tilt \+0°", lines[2])
  assert found, lines[2]
  assert lines[3].startswith("  verified ranking")
  scores = [float(line.split()[-1]) for line in lines[4:8]]
  assert scores == sorted(scores)
  assert os.path.exists(lines[8].split("gallery: ")[1])
  api = query.query(str(workdir), [path], top_k=4, verify=True)
  assert [m.shape_id for m in api.matches[0]] == [line.split()[1] for line in lines[4:8]]
  joint = query.query(str(workdir), [path], top_k=18)  # the tiny run's 18 shapes: all of them are candidates
  assert {m.shape_id for m in api.matches[0]} <= {m.shape_id for m in joint.matches[0]}
  assert len({m.shape_id for m in api.matches[0]}) == 4
  (refined,) = api.refined
  assert refined.azimuth % 7.5 == 0 and abs(refined.azimuth - float(found.group(1))) <= 0.5


def test_fused_query_prints_one_ranking_of_all_photos(tiny_run, photo, tmp_path):
  """--images=DIR fuses the folder's photos: one line per photo, then the fused ranking headed with them, which is
  `fusion.fused_distances` of their points (brute force on the API's points), and a gallery of photos and shapes."""
  import jax  # pylint: disable=g-import-not-at-top

  import jembed  # pylint: disable=g-import-not-at-top
  from jembed.api import fusion  # pylint: disable=g-import-not-at-top

  workdir, _, _ = tiny_run
  with np.load(workdir / "eval" / "sets" / "synthetic.npz") as f:
    for j in range(3):
      Image.fromarray(f["synthetic_clean"][j]).save(tmp_path / f"result_{j}.png")
  (tmp_path / "notes.txt").write_text("not a photo: skipped by extension")
  result = _query(f"--workdir={workdir}", f"--images={tmp_path}", "--top_k=3", f"--out_dir={tmp_path}/out")
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.splitlines()
  assert all(f"result_{j}.png: pose azimuth" in lines[j] for j in range(3)), lines[:3]
  assert lines[3] == f"fused ranking of 3 photos ({fusion.DEFAULT}): result_0.png, result_1.png, result_2.png"
  model = jembed.load(str(workdir))
  photos = np.stack(
      [images.read_photo(str(tmp_path / f"result_{j}.png"), model.params.spec.image_size) for j in range(3)]
  )
  points = np.asarray(jax.jit(jembed.embed_images)(model.params, photos))
  scores = fusion.fused_distances(points, model.shape_points)  # itself checked against brute force in test_fusion
  order = np.argsort(scores, kind="stable")[:3]
  assert [line.split()[1] for line in lines[4:7]] == list(model.shape_ids[order])
  assert lines[7] == f"  gallery: {tmp_path}/out/fused.png"
  assert Image.open(f"{tmp_path}/out/fused.png").size[1] > 2 * 160  # photos above, shapes below


def test_query_errors_name_the_problem(tiny_run, tmp_path):
  workdir, _, _ = tiny_run
  text = tmp_path / "notes.jpg"
  text.write_text("not an image")
  for flags, expected in [
      ((f"--workdir={workdir}", f"--image={tmp_path}/missing.jpg"), f"{tmp_path}/missing.jpg' does not exist"),
      ((f"--workdir={workdir}", f"--image={text}"), f"{text}' is not a readable image"),
      ((f"--workdir={workdir}", f"--images={tmp_path}/nowhere"), "is not a folder"),
      ((f"--workdir={workdir}",), "give photos with --image=PATH (repeatable) or --images=FOLDER"),
      ((f"--workdir={tmp_path}/nowhere", f"--image={text}"), "does not exist: run `python -m launch.demo"),
      ((f"--workdir={tmp_path}", f"--image={text}"), "has no shape embedding: run `python -m launch.embed_shapes"),
  ]:
    result = _query(*flags)
    assert result.returncode != 0
    assert expected in result.stderr.splitlines()[-1], (flags, result.stderr[-500:])
    assert "Traceback" not in result.stderr


def test_query_without_training_says_to_train(tiny_run, tmp_path):
  workdir, _, _ = tiny_run
  os.symlink(workdir / "shape_embedding.npz", tmp_path / "shape_embedding.npz")
  with pytest.raises(FileNotFoundError, match="has no trained network: run `python -m launch.build_dataset`"):
    query.check_workdir(str(tmp_path))
