"""The demo page (Gradio Blocks): photo -> shapes (3D viewer, pose overlay, shape map), shape -> images,
image -> images, the run's results table. `build(workdir)` makes the page; launch/serve.py serves it.

Nothing leaves the machine: Gradio's analytics and version check are off (set before gradio is imported), the theme
uses the system's fonts instead of Google Fonts, the front end and the 3D viewer come from the wheel.
"""

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
_SEARCH_OUTPUTS = 8  # status, table, shapes, viewer, overlay, map, neighbours, ranked ids
_VIEWER = dict(clear_color=(1.0, 1.0, 1.0, 1.0), camera_position=(45, 70, None))  # a front three-quarter view


def search_upload(demo: session.Demo, payload, top_k) -> tuple:
  """The page's photo handler: a Gradio file payload (dict with 'path' and 'orig_name', or None) -> the outputs.

  A bad upload gives its message in the status line and empty outputs; it never raises.
  """
  if not payload:
    return ("Upload or drag a photo (or pick an evaluation image below).",) + (None,) * (_SEARCH_OUTPUTS - 2) + ([],)
  path = payload.get("path") if isinstance(payload, dict) else str(payload)
  name = payload.get("orig_name") if isinstance(payload, dict) else None
  try:
    photo = session.read_upload(path, name)
  except session.BadUpload as e:
    return (f"**Cannot use this upload:** {e}",) + (None,) * (_SEARCH_OUTPUTS - 2) + ([],)
  return search_photo(demo, photo, top_k)


def search_photo(demo: session.Demo, photo, top_k) -> tuple:
  """A decoded photo -> (status, ranking rows, shape thumbnails, top-1 GLB, pose overlay, map, neighbours, ids)."""
  result = demo.search(photo, int(top_k))
  ids = [m.shape_id for m in result.matches]
  rows = [[m.rank, m.shape_id, m.category, round(m.distance, 4)] for m in result.matches]
  shapes = [
      (t, f"{m.rank}. {m.shape_id} · {m.category} · {m.distance:.3f}")
      for t, m in zip(demo.thumbnails(ids), result.matches)
  ]
  top = result.matches[0]
  status = f"Nearest shape: **{top.shape_id}** ({top.category}), distance {top.distance:.3f}."
  overlay = None
  if result.viewpoint is not None:
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
      demo.png(demo.map_picture(result.point, ids)),
      _image_gallery(demo, result.neighbours),
      ids,
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
  """Serves `page` on host:port; concurrent requests run in parallel threads (the photo handler has no limit)."""
  page.queue(default_concurrency_limit=8).launch(
      server_name=host, server_port=port, prevent_thread_lock=not block, **LAUNCH_KWARGS
  )


def missing_page(message: str) -> gr.Blocks:
  """The page of a workdir that is not ready: what is missing and which launcher makes it."""
  with gr.Blocks(title="jembed demo", analytics_enabled=False) as page:
    gr.Markdown(f"# jembed demo\n\n**This workdir cannot be served yet.**\n\n{message}", elem_id="missing")
  return page


def build(workdir: str) -> gr.Blocks:
  """The demo page of `workdir` (a trained run), or `missing_page` when a stage is missing."""
  try:
    demo = session.Demo(workdir)
  except FileNotFoundError as e:
    return missing_page(str(e))
  return demo_page(demo)


def demo_page(demo: session.Demo) -> gr.Blocks:
  """The page of a loaded `Demo`."""
  with gr.Blocks(title="jembed demo", analytics_enabled=False) as page:
    n = len(demo.model.shape_ids)
    gr.Markdown(
        f"# jembed: find the 3D shape of a photo\n`{demo.workdir}` · {n} shapes in "
        f"{len(set(demo.model.shape_categories.tolist()))} categories · network step {demo.model.step}"
    )
    with gr.Tab("Photo → shapes"):
      _photo_tab(demo, n)
    with gr.Tab("Shape → images"):
      _shape_tab(demo)
    with gr.Tab("Image → images"):
      _image_tab(demo)
    with gr.Tab("Shape map"):
      gr.Image(demo.png(demo.map_picture(), "map"), label="shape map", show_label=False)
    with gr.Tab("Results"):
      gr.Markdown(demo.results_markdown(), elem_id="results")
  return page


def _photo_tab(demo: session.Demo, n: int) -> None:
  with gr.Row():
    with gr.Column(scale=2):
      photo = gr.Image(
          label="Photo: upload, drag or paste (crop it to the object)",
          type="filepath",
          sources=["upload", "clipboard"],
          elem_id="photo",
          height=320,
      )
      top_k = gr.Slider(1, min(20, n), value=min(5, n), step=1, label="shapes to list")
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
  ranked = gr.State([])
  outputs = [status, table, shapes, viewer, overlay, the_map, neighbours, ranked]
  photo.change(
      lambda payload, k: search_upload(demo, payload, k),
      [photo, top_k],
      outputs,
      preprocess=False,
      api_name="search",
      concurrency_limit=None,
  )
  shapes.select(_select_shape(demo), [ranked], viewer, api_visibility="private")
  examples.select(_pick_example(demo, picks), None, photo, api_visibility="private")


def _select_shape(demo: session.Demo):
  def select(ids, evt: gr.SelectData):
    return demo.shape_glb(ids[evt.index]) if ids else None

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
