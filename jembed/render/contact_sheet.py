"""The first picture a user looks at: a grid of shapes x their 20 LFD views (`workdir/contact_sheet.png`)."""

import collections
import itertools
import os
import time

from absl import logging
import ml_collections
import numpy as np
import tqdm

from jembed.render import backend
from jembed.render import lfd
from jembed.shapes import record
from jembed.shapes import sources
from jembed.utils import viz
from jembed.workdir import paths


def pick_per_category(refs: list[record.ShapeRef], per_category: int) -> list[record.ShapeRef]:
  """Up to `per_category` refs of each category, spread evenly over its sorted list (0 = all)."""
  return [
      ref for group in candidates_per_category(refs, per_category).values() for ref in group[: per_category or None]
  ]


def candidates_per_category(refs: list[record.ShapeRef], per_category: int) -> dict[str, list[record.ShapeRef]]:
  """{category: its refs in the order to try}: the `per_category` picks spread evenly over its sorted list first,
  then the others in order, so a broken pick is replaced by the next shape of the same category."""
  by_category = collections.defaultdict(list)
  for ref in refs:
    by_category[ref.category].append(ref)
  out = {}
  for category in sorted(by_category):
    group = by_category[category]
    if per_category and len(group) > per_category:
      first = np.linspace(0, len(group) - 1, per_category).round().astype(int).tolist()
      group = [group[i] for i in first] + [g for i, g in enumerate(group) if i not in set(first)]
    out[category] = group
  return out


def _crop_to_union(rgba: np.ndarray, margin: int = 2) -> np.ndarray:
  """Crops uint8[N, H, W, 4] views to the box covering the object in all of them, so thumbnails show the object large
  while keeping the views' relative scale."""
  covered = rgba[..., 3].any(axis=0)
  if not covered.any():
    return rgba
  rows, cols = np.flatnonzero(covered.any(1)), np.flatnonzero(covered.any(0))
  top, left = max(rows[0] - margin, 0), max(cols[0] - margin, 0)
  return rgba[:, top : rows[-1] + 1 + margin, left : cols[-1] + 1 + margin]


def write_contact_sheet(config: ml_collections.ConfigDict, workdir: str, per_category: int = 4, thumb: int = 64) -> str:
  """Renders the LFD views of a few shapes per category and writes `workdir/contact_sheet.png`.

  Args:
    config: a jembed config (reads `shapes` and `render`).
    workdir: output folder (created).
    per_category: rows per category (0 = every shape).
    thumb: pixels per view in the sheet.

  Returns:
    The path of the PNG.
  """
  os.makedirs(workdir, exist_ok=True)
  start = time.time()
  candidates = candidates_per_category(sources.list_shapes(config.shapes), per_category)
  renderer = backend.get_renderer(config.render.backend)
  report = sources.LoadReport()
  rows = []
  bar = tqdm.tqdm(
      total=sum(min(per_category or len(g), len(g)) for g in candidates.values()),
      desc="rendering LFD views",
      unit="shape",
  )
  missing = []
  for category, group in candidates.items():  # until the category has its rows or runs out of loadable shapes
    before = len(rows)
    shapes = sources.iter_shapes(group, config.shapes.up_axis, config.shapes.front, report, summary=False)
    for shape in itertools.islice(shapes, per_category or None):
      out = renderer.render(
          shape.vertices,
          shape.faces,
          lfd.lfd_views(shape.category),
          size=config.render.size,
          antialias=config.render.antialias,
      )
      rows.append((shape.id, viz.on_white(_crop_to_union(out.rgba))))
      bar.update()
    if len(rows) == before:
      missing.append(category)
  bar.close()
  for line in [f"skipped {ref.id} ({ref.path}): {why}" for ref, why in report.skipped]:
    logging.info("%s", line)
  if missing:
    logging.warning("no loadable shape in categories %s: they are not on the sheet", ", ".join(missing))
  header = (
      f"{len(rows)} shapes x 20 LFD views, {renderer.name} renderer, {config.render.size}px, "
      f"{len(report.skipped)} broken shape{'' if len(report.skipped) == 1 else 's'} skipped"
  )
  path = paths.contact_sheet(workdir)
  viz.image_grid(rows, thumb=thumb, header=header).save(path)
  logging.info("wrote %s (%d shapes, %.1f s)", path, len(rows), time.time() - start)
  return path
