"""The demo page (Gradio Blocks): photo -> shapes (3D viewer, pose overlay, shape map), shape -> images,
image -> images, the run's results table. `build(workdir)` makes the page; launch/serve.py serves it.

Nothing leaves the machine: Gradio's analytics and version check are off (set before gradio is imported), the theme
uses the system's fonts instead of Google Fonts, the front end and the 3D viewer come from the wheel.
"""

import concurrent.futures
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry, no version check

import gradio as gr  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from jembed.api.pose_overlay import signed_angle  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.apps.serve import session  # pylint: disable=g-import-not-at-top,wrong-import-position

# The default theme loads IBM Plex from Google Fonts; the system's own fonts keep the page offline.
_FONTS = dict(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
LAUNCH_KWARGS = dict(
    theme=gr.themes.Default(**_FONTS),
    ssr_mode=False,
    footer_links=[],
    quiet=True,
    max_file_size=session.MAX_UPLOAD_BYTES + 2**20,
)  # Gradio's own limit a little above ours
_RANK_HEADERS = ["rank", "id", "category", "distance"]
_SEARCH_OUTPUTS = 7  # status, table, shapes, viewer, overlay, map, neighbours
_VIEWER = dict(clear_color=(1.0, 1.0, 1.0, 1.0), camera_position=(45, 70, None))  # a front three-quarter view
# Uploads that arrive while a batch runs are answered together, by one forward pass and one search (Gradio's queue
# batching); two batches run at a time, one per core of a small machine.
MAX_BATCH = 16
BATCH_CONCURRENCY = 2
_ANSWER_THREADS = 2  # threads drawing a batch's answers
_STATIC_FOLDERS: list[str] = []  # the folders of the Demos with pages in this process (`demo_page`)


def _no_answer(message: str) -> tuple:
  return (message,) + (None,) * (_SEARCH_OUTPUTS - 2) + ([],)


def _read(payload) -> tuple[object | None, str]:
  """A Gradio file payload (dict with 'path' and 'orig_name', or None) -> (the decoded photo, '') or (None, the
  message for the status line)."""
  if not payload:
    return None, "Upload or drag a photo (or pick an evaluation image below)."
  path = payload.get("path") if isinstance(payload, dict) else str(payload)
  name = payload.get("orig_name") if isinstance(payload, dict) else None
  try:
    return session.read_upload(path, name), ""
  except session.BadUpload as e:
    return None, f"**Cannot use this upload:** {e}"


def search_uploads(demo: session.Demo, payloads: list, top_ks: list, verify: list | None = None) -> tuple[list, ...]:
  """The page's photo handler, batched: the uploads that queued up meanwhile -> one list per output, in order.

  The good photos go through one forward pass, one search and one placement on the map together; a bad upload gets
  its message in the status line and empty outputs, and never fails the others.
  """
  answers, photos = [None] * len(payloads), {}
  for i, payload in enumerate(payloads):
    photo, message = _read(payload)
    if photo is None:
      answers[i] = _no_answer(message)
    else:
      photos[i] = photo
  if photos:
    checks = [bool(verify[i]) for i in photos] if verify is not None else None
    results = demo.search_batch(list(photos.values()), [int(top_ks[i]) for i in photos], verify=checks)
    maps = demo.map_pictures(np.stack([r.point for r in results]), [[m.shape_id for m in r.matches] for r in results])
    # The answers' pictures in parallel: PNG encoding and drawing release the GIL, and the pose overlays queue on the
    # render thread meanwhile (a batch of 16 on 2 cores: ~0.7 s one after another).
    with concurrent.futures.ThreadPoolExecutor(_ANSWER_THREADS) as pool:
      done = pool.map(lambda a: _answer(demo, *a), zip(photos.values(), results, maps))
      for i, answer in zip(photos, done):
        answers[i] = answer
  return tuple(list(column) for column in zip(*answers))


def search_upload(demo: session.Demo, payload, top_k, verify: bool = False) -> tuple:
  """One upload -> its outputs (`search_uploads` of one)."""
  return tuple(column[0] for column in search_uploads(demo, [payload], [top_k], [verify]))


def _answer(demo: session.Demo, photo, result: session.Search, the_map: np.ndarray) -> tuple:
  ids = [m.shape_id for m in result.matches]
  rows = [[m.rank, m.shape_id, m.category, round(m.distance, 4)] for m in result.matches]
  shapes = [
      (t, f"{m.rank}. {m.shape_id} · {m.category} · {m.distance:.3f}")
      for t, m in zip(demo.thumbnails(ids), result.matches)
  ]
  top = result.matches[0]
  status = f"Nearest shape: **{top.shape_id}** ({top.category}), distance {top.distance:.3f}."
  overlay = None
  if result.refined is not None:  # verified: the ranking's first shape at the refined pose
    v = result.refined
    overlay = demo.png(demo.pose_picture(photo, top.shape_id, v))
    status = (
        f"Verified by rendering: **{top.shape_id}** ({top.category}) first, fused score {top.distance:+.2f}; "
        f"refined pose: azimuth {v['azimuth']:.0f}°, elevation {signed_angle(v['elevation']):+.0f}°."
    )
  elif result.viewpoint is not None:
    v = result.viewpoint
    overlay = demo.png(demo.pose_picture(photo, top.shape_id, v))
    status += (
        f" Predicted pose: azimuth {v['azimuth']:.0f}°, elevation {signed_angle(v['elevation']):+.0f}°, "
        f"tilt {signed_angle(v['tilt']):+.0f}°."
    )
  else:
    status += " (No pose overlay: this network has no viewpoint head; train with `--config.model.viewpoint_head=True`.)"
  return (
      status,
      rows,
      shapes,
      demo.shape_glb(top.shape_id),
      overlay,
      demo.png(the_map),
      _image_gallery(demo, result.neighbours),
  )


def _image_gallery(demo: session.Demo, hits: list[tuple[int, float]]) -> list[tuple[np.ndarray, str]]:
  images = demo.eval_images
  return [(demo.eval_image(i), f"{images.caption(i)} · {d:.3f}") for i, d in hits]


def _examples(demo: session.Demo, n: int = 12) -> list[int]:
  """Evaluation images to offer as queries, spread over the sets and shapes."""
  if demo.eval_images is None:
    return []
  return np.unique(np.linspace(0, len(demo.eval_images.images) - 1, n).round().astype(int)).tolist()


def serve(page: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> None:
  """Serves `page` on host:port; concurrent requests run in parallel threads (uploads in batches, see MAX_BATCH)."""
  page.queue(default_concurrency_limit=8).launch(
      server_name=host, server_port=port, prevent_thread_lock=not block, **LAUNCH_KWARGS
  )


def missing_page(message: str) -> gr.Blocks:
  """The page of a workdir that is not ready: what is missing and which launcher makes it."""
  with gr.Blocks(title="jembed demo", analytics_enabled=False) as page:
    gr.Markdown(f"# jembed demo\n\n**This workdir cannot be served yet.**\n\n{message}", elem_id="missing")
  return page


def build(workdir: str, max_batch: int = MAX_BATCH) -> gr.Blocks:
  """The demo page of `workdir` (a trained run), or `missing_page` when a stage is missing; uploads are answered in
  batches of up to `max_batch` (1: each on its own, all at once)."""
  try:
    demo = session.Demo(workdir, max_batch=max_batch)
  except FileNotFoundError as e:
    return missing_page(str(e))
  return demo_page(demo, max_batch)


def demo_page(demo: session.Demo, max_batch: int = MAX_BATCH) -> gr.Blocks:
  """The page of a loaded `Demo` (compiled for batches of up to `max_batch` photos)."""
  # The Demo's folder holds only pictures and models written for the page, each written once under its own name: served
  # from there (Gradio's static paths) instead of hashed, path-checked and copied into Gradio's cache for every answer
  # that shows it. The setting is global to Gradio, so every page made in this process keeps its folder in it.
  _STATIC_FOLDERS.append(demo.folder)
  gr.set_static_paths(list(_STATIC_FOLDERS))
  with gr.Blocks(title="jembed demo", analytics_enabled=False) as page:
    n = len(demo.model.shape_ids)
    gr.Markdown(
        f"# jembed: find the 3D shape of a photo\n`{demo.workdir}` · {n} shapes in "
        f"{len(set(demo.model.shape_categories.tolist()))} categories · network step {demo.model.step}"
    )
    with gr.Tab("Photo → shapes"):
      _photo_tab(demo, n, max_batch)
    with gr.Tab("Shape → images"):
      _shape_tab(demo)
    with gr.Tab("Image → images"):
      _image_tab(demo)
    with gr.Tab("Shape map"):
      gr.Image(demo.png(demo.map_picture(), "map"), label="shape map", show_label=False)
    with gr.Tab("Results"):
      gr.Markdown(demo.results_markdown(), elem_id="results")
  return page


def _photo_tab(demo: session.Demo, n: int, max_batch: int) -> None:
  with gr.Row():
    with gr.Column(scale=2):
      photo = gr.Image(
          label="Photo: upload, drag or paste (crop it to the object)",
          type="filepath",
          sources=["upload", "clipboard"],
          elem_id="photo",
          height=320,
      )
      top_k = gr.Slider(1, min(session.MAX_TOP_K, n), value=min(5, n), step=1, label="shapes to list")
      verify = gr.Checkbox(
          value=False, label="verify by rendering (re-rank the top 20, refine the pose; ~0.1 s)", elem_id="verify"
      )
      status = gr.Markdown(elem_id="status")
      picks = _examples(demo)
      examples = gr.Gallery(
          [(demo.eval_image(i), demo.eval_images.caption(i)) for i in picks],
          label="or pick an evaluation image",
          columns=6,
          height=200,
          allow_preview=False,
          visible=bool(picks),
          elem_id="examples",
      )
    with gr.Column(scale=3):
      table = gr.Dataframe(headers=_RANK_HEADERS, label="nearest shapes", elem_id="ranking", interactive=False)
      shapes = gr.Gallery(
          label="nearest shapes (click one to see it in 3D)",
          columns=5,
          height=220,
          allow_preview=False,
          elem_id="shapes",
      )
  with gr.Row():
    viewer = gr.Model3D(label="3D viewer (drag to turn, scroll to zoom)", elem_id="viewer", height=380, **_VIEWER)
    overlay = gr.Image(label="top-1 at the predicted pose", elem_id="overlay", height=380)
  with gr.Row():
    the_map = gr.Image(label="your photo on the shape map", elem_id="map")
    neighbours = gr.Gallery(label="nearest evaluation images", columns=4, elem_id="neighbours")
  if max_batch > 1:  # uploads that queue up while a batch runs go together
    handler = lambda payloads, ks, vs: search_uploads(demo, payloads, ks, vs)  # pylint: disable=unnecessary-lambda-assignment
    queueing = dict(batch=True, max_batch_size=max_batch, concurrency_limit=BATCH_CONCURRENCY)
  else:  # every upload on its own thread at once
    handler = lambda payload, k, v: search_upload(demo, payload, k, v)  # pylint: disable=unnecessary-lambda-assignment
    queueing = dict(concurrency_limit=None)
  photo.change(
      handler,
      [photo, top_k, verify],
      [status, table, shapes, viewer, overlay, the_map, neighbours],
      preprocess=False,
      api_name="search",
      **queueing,
  )
  # The clicked thumbnail's id comes from the ranking table beside it: a batched event cannot set per-session State.
  shapes.select(_select_shape(demo), [table], viewer, api_visibility="private")
  examples.select(_pick_example(demo, picks), None, photo, api_visibility="private")


def _select_shape(demo: session.Demo):
  def select(table, evt: gr.SelectData):
    rows = table.values.tolist() if hasattr(table, "values") else list(table or [])  # pandas (Gradio's default) or rows
    return demo.shape_glb(str(rows[evt.index][1])) if 0 <= evt.index < len(rows) else None

  return select


def _pick_example(demo: session.Demo, picks: list[int]):
  def pick(evt: gr.SelectData):
    return demo.eval_image(picks[evt.index])

  return pick


def _shape_tab(demo: session.Demo) -> None:
  choices = [(demo.shape_label(str(s)), str(s)) for s in demo.model.shape_ids]
  with gr.Row():
    with gr.Column(scale=2):
      shape = gr.Dropdown(choices, label="shape", value=None, elem_id="shape_pick")
      viewer = gr.Model3D(label="3D viewer", height=360, **_VIEWER)
    images = gr.Gallery(label="its nearest evaluation images", columns=4, scale=3)

  def answer(shape_id):
    if not shape_id:
      return None, []
    return demo.shape_glb(shape_id), _image_gallery(demo, demo.shape_images(shape_id))

  shape.change(answer, shape, [viewer, images], api_name="shape_images")


def _image_tab(demo: session.Demo) -> None:
  if demo.eval_images is None:
    gr.Markdown(f"No evaluation images yet: run `python -m launch.evaluate --workdir={demo.workdir}`.")
    return
  count = len(demo.eval_images.images)
  with gr.Row():
    with gr.Column(scale=2):
      index = gr.Slider(0, count - 1, value=0, step=1, label=f"evaluation image (0 … {count - 1})")
      image = gr.Image(label="image", height=260)
    images = gr.Gallery(label="its nearest other evaluation images", columns=4, scale=3)

  def answer(i):
    i = int(np.clip(int(i), 0, count - 1))
    return gr.Image(demo.eval_image(i), label=demo.eval_images.caption(i)), _image_gallery(demo, demo.image_images(i))

  index.change(answer, index, [image, images], api_name="image_images")
