"""The browser demo (jembed/apps/serve/, launch/serve.py): its answers against launch/query.py and brute force, bad
uploads, a served page in a real browser (headless Chromium: ranking, 3D viewer, no request leaving the machine), and 20
concurrent uploads."""

import concurrent.futures
import io
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image
import pytest

pytest.importorskip("gradio", reason='the serve extra is not installed (pip install -e ".[serve]")')

from jembed.apps.serve import app  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.apps.serve import pictures  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.apps.serve import session  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.render import camera  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = pathlib.Path(os.environ.get("JEMBED_TEST_OUTPUTS", tempfile.gettempdir())) / "jembed_serve"


@pytest.fixture(scope="module")
def demo(tiny_run):
  return session.Demo(str(tiny_run[0]))


@pytest.fixture(scope="module")
def photo_path(demo, tmp_path_factory) -> pathlib.Path:
  """A photo file: one of the run's cluttered test images, upscaled to 200 x 150 (not the network's size or shape)."""
  i = int(np.flatnonzero(demo.eval_images.sets == "synthetic_clutter")[3])
  path = tmp_path_factory.mktemp("photos") / "chair photo.jpg"
  Image.fromarray(demo.eval_images.images[i]).resize((200, 150), Image.BICUBIC).save(path, quality=95)
  return path


def _launch_query(workdir, photo, top_k) -> list[tuple[str, str, float]]:
  """(id, category, distance) rows printed by `python -m launch.query` for one photo."""
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "launch.query",
          f"--workdir={workdir}",
          f"--image={photo}",
          f"--top_k={top_k}",
          f"--out_dir={photo.parent}",
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=300,
      env={**os.environ, "PYTHONPATH": str(REPO)},
  )
  assert result.returncode == 0, result.stderr[-2000:]
  return [
      (m[2], m[3], float(m[4]))
      for m in re.finditer(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+([0-9.]+)$", result.stdout, re.MULTILINE)
  ]


def test_upload_ranks_as_launch_query(demo, tiny_run, photo_path):
  expected = _launch_query(tiny_run[0], photo_path, 6)
  status, rows, shapes, glb, *_ = app.search_upload(demo, {"path": str(photo_path), "orig_name": "x.jpg"}, 6)
  assert len(expected) == 6 and status.startswith("Nearest shape")
  assert [(r[1], r[2]) for r in rows] == [(e[0], e[1]) for e in expected]
  np.testing.assert_allclose([r[3] for r in rows], [e[2] for e in expected], atol=2e-4)  # printed with 4 decimals
  assert [r[0] for r in rows] == list(range(1, 7)) and len(shapes) == 6 and glb.endswith(".glb")


def test_the_verify_option_answers_as_launch_query_verify(demo, tiny_run, photo_path):
  """The page's 'verify by rendering' option: the verified ranking and refined pose of `query.query(verify=True)`,
  the overlay drawn at the refined pose; a batch with and without it answers each as alone."""
  from jembed.api import query  # pylint: disable=g-import-not-at-top

  payload = {"path": str(photo_path), "orig_name": "x.jpg"}
  status, rows, _, _, overlay, *_ = app.search_upload(demo, payload, 4, True)
  expected = query.query(str(tiny_run[0]), [str(photo_path)], top_k=4, verify=True)
  assert status.startswith("Verified by rendering") and overlay.endswith(".png")
  assert [r[1] for r in rows] == [m.shape_id for m in expected.matches[0]]
  assert f"azimuth {expected.refined[0].azimuth:.0f}°" in status
  plain, verified = app.search_uploads(demo, [payload, payload], [4, 4], [False, True])[1]
  assert plain == app.search_upload(demo, payload, 4)[1] and verified == rows


def test_batched_uploads_answer_as_each_alone(demo, photo_path, tmp_path):
  """Concurrent uploads go through one forward pass and one search (`search_uploads`); each answer is the one the
  upload gets alone, and a bad upload among them gets its message without failing the others."""
  payloads = []
  for i in range(3):
    path = tmp_path / f"u{i}.png"
    Image.fromarray(np.roll(np.asarray(Image.open(photo_path)), 11 * i, axis=1)).save(path)
    payloads.append({"path": str(path), "orig_name": path.name})
  bad = tmp_path / "bad.png"
  bad.write_bytes(b"not a photo")
  payloads.insert(1, {"path": str(bad), "orig_name": "bad.png"})
  columns = app.search_uploads(demo, payloads, [4, 5, 3, 6])
  assert len(columns) == 7 and all(len(c) == 4 for c in columns)
  answers = list(zip(*columns))
  assert "Cannot use this upload" in answers[1][0] and answers[1][1] is None
  for got, payload, k in zip([answers[0], answers[2], answers[3]], [payloads[0], payloads[2], payloads[3]], [4, 3, 6]):
    alone = app.search_upload(demo, payload, k)
    assert got[0].split(",")[0] == alone[0].split(",")[0]  # the nearest shape (the status line)
    assert [r[:3] for r in got[1]] == [r[:3] for r in alone[1]] and len(got[1]) == k  # the ranking
    np.testing.assert_allclose([r[3] for r in got[1]], [r[3] for r in alone[1]], atol=2e-4)
    assert [c for _, c in got[6]] == [c for _, c in alone[6]]  # the nearest evaluation images


def test_clicking_a_thumbnail_shows_that_shape(demo):
  import pandas as pd  # pylint: disable=g-import-not-at-top  (Gradio's Dataframe value)

  ids = [str(s) for s in demo.model.shape_ids[:3]]
  table = pd.DataFrame(
      [[r + 1, s, "x", 0.5] for r, s in enumerate(ids)], columns=["rank", "id", "category", "distance"]
  )
  select = app._select_shape(demo)  # pylint: disable=protected-access
  assert select(table, app.gr.SelectData(None, {"index": 2, "value": None})) == demo.shape_glb(ids[2])
  assert select(table.values.tolist(), app.gr.SelectData(None, {"index": 0, "value": None})) == demo.shape_glb(ids[0])
  assert select(table.iloc[:0], app.gr.SelectData(None, {"index": 0, "value": None})) is None


def test_thumbnails_are_rendered_once_per_workdir(demo, monkeypatch):
  """A server that starts again on the workdir hands out the kept files: no mesh loaded or rendered, same pixels."""
  ids = [str(s) for s in demo.model.shape_ids[:3]]
  first = [np.asarray(Image.open(p)) for p in demo.thumbnails(ids)]
  kept = pictures.thumbnail_folder(demo.workdir, 128)
  assert sorted(os.listdir(kept))[:3] and all(os.path.exists(os.path.join(kept, f"{i}.png")) for i in range(3))
  assert first[0].shape == (128, 128, 3) and first[0].std() > 5  # a shape on white, not a blank tile

  def no_render(*args, **kwargs):
    raise AssertionError(f"rendered again: {args[1]}")

  monkeypatch.setattr(session.thumbnails, "workdir_thumbnails", no_render)
  monkeypatch.setattr(demo, "_thumbs", {})  # as a new server: nothing in memory
  again = demo.thumbnails(ids)
  assert all(os.path.dirname(p) != kept for p in again)  # served from the server's own folder
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, np.asarray(Image.open(b)))


def test_shape_and_image_neighbours_are_brute_force(demo):
  points = demo.eval_images.points
  shape_id = str(demo.model.shape_ids[2])
  d = np.linalg.norm(points - demo.model.shape_points[2], axis=1)
  hits = demo.shape_images(shape_id, k=5)
  assert [i for i, _ in hits] == np.argsort(d, kind="stable")[:5].tolist()
  np.testing.assert_allclose([x for _, x in hits], np.sort(d)[:5], rtol=1e-4, atol=1e-5)
  d = np.linalg.norm(points - points[7], axis=1)
  d[7] = np.inf  # an image is not its own neighbour
  assert [i for i, _ in demo.image_images(7, k=4)] == np.argsort(d, kind="stable")[:4].tolist()


def test_glb_is_the_normalized_mesh(demo):
  import trimesh  # pylint: disable=g-import-not-at-top

  shape_id = str(demo.model.shape_ids[0])
  shape = demo.mesh(shape_id)
  loaded = trimesh.load(demo.shape_glb(shape_id), force="mesh")
  assert len(loaded.faces) == len(shape.faces)
  np.testing.assert_allclose(loaded.bounds, [shape.vertices.min(0), shape.vertices.max(0)], atol=1e-6)


def test_a_shapes_own_point_lands_on_it_on_the_map(demo):
  the_map = demo.shape_map()
  assert len(the_map.rows) == len(demo.model.shape_ids)
  k = 4
  xy = pictures.place_on_map(the_map, demo.model, demo.model.shape_points[the_map.rows[k]])
  np.testing.assert_allclose(xy, the_map.xy[k], atol=1e-5)  # distance 0 to it: placed on it (out_of_sample)
  picture = demo.map_picture(demo.model.shape_points[0], [str(demo.model.shape_ids[0])])
  assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.std() > 10


def test_pose_overlay_covers_the_renders_silhouette(demo):
  """Oracle: the renderer's own image of the shape at that pose, cropped to its box, is what the page draws."""
  shape_id = str(demo.model.shape_ids[1])
  shape = demo.mesh(shape_id)
  rgba = demo.renderer.render(shape.vertices, shape.faces, camera.Views.make(60.0, 20.0), size=256, antialias=2).rgba[0]
  ys, xs = np.nonzero(rgba[..., 3])
  crop = Image.fromarray(rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
  alpha = np.asarray(crop.resize((400, 300), Image.BILINEAR))[..., 3]
  photo = Image.fromarray(np.full((300, 400, 3), 255, np.uint8))
  out = demo.pose_picture(photo, shape_id, dict(azimuth=60.0, elevation=20.0, tilt=0.0))
  drawn = np.any(out != 255, axis=-1)
  assert out.shape == (300, 400, 3)
  assert np.mean(drawn == (alpha > 0)) > 0.99  # the silhouette, stretched from its tight box to the whole photo
  assert 0.1 < drawn.mean() < 0.9


@pytest.mark.parametrize(
    "content,why",
    [
        (b"", "is empty"),
        (b"not an image at all\n" * 10, "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not an image"),
    ],
)
def test_bad_uploads_give_a_message(demo, tmp_path, content, why):
  path = tmp_path / "upload.png"
  path.write_bytes(content)
  status, *rest = app.search_upload(demo, {"path": str(path), "orig_name": "holiday.png"}, 5)
  assert "Cannot use this upload" in status and why in status and "holiday.png" in status
  assert rest[0] is None and rest[-1] == []


def test_huge_uploads_are_refused_before_decoding(demo, tmp_path):
  big = tmp_path / "big.png"
  Image.new("L", (8000, 6000)).save(big)  # 48 MP of black: a small file that would decode to 144 MB of RGB
  assert big.stat().st_size < session.MAX_UPLOAD_BYTES
  assert "megapixels" in app.search_upload(demo, {"path": str(big), "orig_name": "big.png"}, 5)[0]
  heavy = tmp_path / "heavy.jpg"
  heavy.write_bytes(np.random.default_rng(0).bytes(session.MAX_UPLOAD_BYTES + 1))
  assert "MB" in app.search_upload(demo, {"path": str(heavy), "orig_name": "heavy.jpg"}, 5)[0]


def test_workdir_without_a_network_says_which_launcher(tmp_path):
  (tmp_path / "shape_embedding.npz").write_bytes(b"")
  page = app.build(str(tmp_path))
  texts = [b.value for b in page.blocks.values() if getattr(b, "elem_id", None) == "missing"]
  assert texts and "launch.train" in texts[0]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_run):
  """The page of the tiny run served on loopback, as launch/serve.py serves it."""
  page = app.build(str(tiny_run[0]))
  port = _free_port()
  app.serve(page, "127.0.0.1", port, block=False)
  yield f"http://127.0.0.1:{port}"
  page.close()


def _chromium() -> str | None:
  return os.environ.get("JEMBED_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_browser_uploads_a_photo_and_sees_ranking_and_3d(server, photo_path):
  sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
  if not _chromium():
    pytest.skip("no Chromium (apt-get install chromium; .ci/run installs it)")
  requests = []
  with sync_api.sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=_chromium(), args=["--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
    )
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server, wait_until="load", timeout=60_000)  # (never "networkidle": the page keeps a stream open)
    page.locator("#photo input[type=file]").wait_for(state="attached", timeout=60_000)
    page.locator("#photo input[type=file]").set_input_files(str(photo_path))
    page.locator("#status").get_by_text("Nearest shape").wait_for(timeout=120_000)
    viewer = page.locator("#viewer canvas")
    viewer.wait_for(timeout=60_000)
    drawn = 0.0
    for _ in range(60):  # the viewer loads its engine and the GLB, then draws the mesh on white
      pixels = np.asarray(Image.open(io.BytesIO(viewer.screenshot())).convert("L"))
      drawn = float(np.mean(pixels < 235))
      if drawn > 0.02:
        break
      page.wait_for_timeout(1000)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOT_DIR / "serve_page.png"
    page.screenshot(path=str(shot), full_page=True)
    ranking = page.locator("#ranking").inner_text()
    status = page.locator("#status").inner_text()
    page.locator("#examples .thumbnail-item").nth(1).click()  # an evaluation image as the query instead
    page.wait_for_function(
        "s => { const t = document.querySelector('#status').innerText; "
        "return t.includes('Nearest shape') && t !== s; }",
        arg=status,
        timeout=60_000,
    )
    bad = photo_path.parent / "not a photo.png"
    bad.write_bytes(b"this is not a photo\n" * 100)
    page.locator("#photo input[type=file]").set_input_files(str(bad))
    page.locator("#status").get_by_text("Cannot use this upload").wait_for(timeout=60_000)
    browser.close()
  print(f"\nscreenshot: {shot}")
  assert "Nearest shape" in status
  assert drawn > 0.02, f"the 3D viewer shows no mesh ({drawn:.1%} of its pixels drawn)"
  assert all(c in ranking for c in ("rank", "category", "distance"))
  off_machine = [u for u in requests if not re.match(r"^(https?://(127\.0\.0\.1|localhost)[:/]|data:|blob:)", u)]
  assert not off_machine, f"requests leaving the machine: {off_machine[:10]}"


@pytest.mark.slow
def test_twenty_concurrent_uploads_all_answered(server, demo, photo_path, tmp_path):
  from gradio_client import Client  # pylint: disable=g-import-not-at-top
  from gradio_client import handle_file  # pylint: disable=g-import-not-at-top

  paths = []
  for i in range(20):  # 20 different photos: the test image shifted and flipped
    image = np.roll(np.asarray(Image.open(photo_path)), 7 * i, axis=1)
    path = tmp_path / f"p{i}.png"
    Image.fromarray(image[:, ::-1] if i % 2 else image).save(path)
    paths.append(path)
  client = Client(server, verbose=False, download_files=False)  # the rankings are read, not the pictures

  def one(path):
    start = time.perf_counter()
    out = client.predict(handle_file(str(path)), 5, api_name="/search")
    return out, time.perf_counter() - start

  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(20) as pool:
    answers = list(pool.map(one, paths))
  wall = time.perf_counter() - start
  latency = np.array([t for _, t in answers])
  print(
      f"\n20 concurrent uploads: wall {wall:.1f} s, latency median {np.median(latency):.2f} s, "
      f"max {latency.max():.2f} s"
  )
  for path, (out, _) in zip(paths, answers):
    expected = [m.shape_id for m in demo.search(Image.open(path).convert("RGB"), 5).matches]
    assert [row[1] for row in out[1]["data"]] == expected  # each answer is its own photo's ranking
  assert latency.max() < 120
