"""Procedural tables: rectangular / square / round / oval tops on four legs, pedestals, trestles or X-legs.

Dining or coffee height, with or without a lower shelf and an apron. Catalog frame: +Y up, floor at y = 0, the long side
faces the front (-Z), so the length runs along x. Units are metres.
"""

import numpy as np

from jembed.shapes.catalog import primitives as prim
from jembed.shapes.catalog import sampling

SUPPORTS = ("legs", "pedestal", "trestle", "x_legs")
TOP_SHAPES = ("rect", "square", "round", "oval")
KINDS = ("dining", "coffee")


def sample(rng: np.random.Generator, index: int) -> dict:
  """Table parameters.

  The support cycles with `index`, the top shape and the kind (dining / coffee) are staggered against it so that the
  32 tables have 32 different (support, top, kind) combinations and any 4 consecutive ones mix both kinds.
  """
  support = SUPPORTS[index % len(SUPPORTS)]
  top = TOP_SHAPES[(index // len(SUPPORTS) + index) % len(TOP_SHAPES)]
  kind = KINDS[(index // 16 + index // 2) % len(KINDS)]
  coffee = kind == "coffee"
  length = sampling.uniform(rng, 0.9, 1.4) if coffee else sampling.uniform(rng, 1.2, 2.2)
  depth = sampling.uniform(rng, 0.5, 0.75) if coffee else sampling.uniform(rng, 0.75, 1.05)
  if top in ("square", "round"):
    length = depth = sampling.uniform(rng, 0.6, 0.9) if coffee else sampling.uniform(rng, 0.85, 1.3)
  return {
      "support": support,
      "top": top,
      "kind": kind,
      "length": length,
      "depth": depth,
      "height": sampling.uniform(rng, 0.36, 0.48) if coffee else sampling.uniform(rng, 0.70, 0.78),
      "top_thickness": sampling.uniform(rng, 0.025, 0.07),
      "shelf": support != "pedestal" and sampling.choice(rng, (False, True)),
      "apron": top in ("rect", "square") and support in ("legs", "x_legs") and sampling.choice(rng, (False, True)),
      "leg_radius": sampling.uniform(rng, 0.018, 0.045),
      "square_legs": sampling.choice(rng, (False, True)),
      "leg_taper": sampling.uniform(rng, 0.45, 1.0),
      "foot": sampling.choice(rng, ("disc", "cross")),
  }


def build(params: dict) -> prim.MeshBuilder:
  """All parts of one table (top, support, optional shelf and apron) in the catalog frame."""
  builder = prim.MeshBuilder()
  under_top = params["height"] - params["top_thickness"]
  builder.add(prim.prism(_outline(params, 1.0), under_top, params["height"], bevel=0.01))
  _SUPPORT_BUILDERS[params["support"]](builder, params)
  if params["shelf"]:
    shelf_y = 0.12 + 0.1 * params["height"]
    builder.add(prim.prism(_outline(params, 0.8), shelf_y, shelf_y + 0.025))
  if params["apron"]:
    _build_apron(builder, params)
  return builder


def _outline(p: dict, scale: float) -> np.ndarray:
  """float[P, 2] (x, z) outline of the top, scaled by `scale` (the shelf is a smaller copy)."""
  half_l, half_d = 0.5 * scale * p["length"], 0.5 * scale * p["depth"]
  if p["top"] in ("round", "oval"):
    return prim.superellipse(half_l, half_d, 2.0, 48)
  return prim.rounded_rectangle(half_l, half_d, 0.03, corner_points=6)


def _leg_spots(p: dict) -> list[tuple[float, float]]:
  """(x, z) of four legs: near the corners, or on the diagonals of an ellipse (round and oval tops)."""
  inset = 0.06 + p["leg_radius"]
  if p["top"] in ("round", "oval"):
    half_l, half_d = 0.5 * p["length"] * 0.7 - inset, 0.5 * p["depth"] * 0.7 - inset
  else:
    half_l, half_d = 0.5 * p["length"] - inset, 0.5 * p["depth"] - inset
  return [(sx * half_l, sz * half_d) for sx in (-1, 1) for sz in (-1, 1)]


def _four_legs(builder: prim.MeshBuilder, p: dict) -> None:
  radius, top_y = p["leg_radius"], p["height"] - p["top_thickness"]
  for x, z in _leg_spots(p):
    if p["square_legs"]:
      builder.add(prim.rounded_box((x, 0.5 * top_y, z), (2 * radius, top_y, 2 * radius), 0.2 * radius))
    else:
      builder.add(prim.tube((x, 0.0, z), (x, top_y, z), radius * p["leg_taper"], radius, sections=14))


def _pedestal(builder: prim.MeshBuilder, p: dict) -> None:
  """One central column (two for long tables) on a disc or a four-footed cross."""
  top_y, column = p["height"] - p["top_thickness"], 0.03 + 1.5 * p["leg_radius"]
  centres = [-0.25 * p["length"], 0.25 * p["length"]] if p["length"] > 1.5 * p["depth"] else [0.0]
  reach = 0.3 * min(p["depth"], p["length"]) + 0.05
  for x in centres:
    builder.add(prim.tube((x, 0.02, 0), (x, top_y, 0), column, 0.8 * column, sections=20))
    builder.add(prim.revolve([(0.1 + column, top_y - 0.04), (0.12 + column, top_y)], center=(x, 0, 0)))
    if p["foot"] == "disc":
      builder.add(prim.revolve([(reach, 0.0), (reach, 0.02), (column, 0.07)], center=(x, 0, 0), sections=32))
    else:
      for k in range(4):
        angle = 0.25 * np.pi + 0.5 * np.pi * k
        tip = (x + reach * np.cos(angle), 0.025, reach * np.sin(angle))
        builder.add(prim.tube((x, 0.08, 0), tip, 0.035, 0.02, sections=8))


def _trestle(builder: prim.MeshBuilder, p: dict) -> None:
  """Two end frames (foot bar, upright plank, top bar) joined by a long stretcher."""
  top_y, depth = p["height"] - p["top_thickness"], p["depth"]
  end_x = 0.5 * p["length"] * (0.75 if p["top"] in ("round", "oval") else 0.85)
  plank = 0.02 + p["leg_radius"]
  for x in (-end_x, end_x):
    builder.add(prim.rounded_box((x, 0.03, 0), (0.08, 0.06, 0.8 * depth), 0.015))
    builder.add(prim.rounded_box((x, 0.5 * top_y, 0), (plank, top_y, 0.25 * depth), 0.01))
    builder.add(prim.rounded_box((x, top_y - 0.025, 0), (0.07, 0.05, 0.7 * depth), 0.01))
  builder.add(prim.rounded_box((0, 0.35 * top_y, 0), (2 * end_x, 0.06, 0.04), 0.01))


def _x_legs(builder: prim.MeshBuilder, p: dict) -> None:
  """A pair of crossed boards at each end, each board running corner-to-corner in the y-z plane."""
  top_y = p["height"] - p["top_thickness"]
  end_x = 0.5 * p["length"] * (0.7 if p["top"] in ("round", "oval") else 0.85)
  span = 0.75 * p["depth"]
  board_length, angle = np.hypot(top_y, span), np.arctan2(span, top_y)
  board = 0.02 + p["leg_radius"]
  for x in (-end_x, end_x):
    for sign in (-1.0, 1.0):
      builder.add(
          prim.rounded_box(
              (x + sign * 0.5 * board, 0.5 * top_y, 0),
              (board, board_length, 0.05),
              0.008,
              rotation=prim.rotation_x(sign * angle),
          )
      )
  builder.add(prim.rounded_box((0, 0.5 * top_y, 0), (2 * end_x, 0.04, 0.04), 0.008))


_SUPPORT_BUILDERS = {"legs": _four_legs, "pedestal": _pedestal, "trestle": _trestle, "x_legs": _x_legs}


def _build_apron(builder: prim.MeshBuilder, p: dict) -> None:
  """A skirt of four boards under the top, between the legs."""
  top_y, inset = p["height"] - p["top_thickness"], 0.06 + p["leg_radius"]
  half_l, half_d, drop = 0.5 * p["length"] - inset, 0.5 * p["depth"] - inset, 0.09
  for sz in (-1, 1):
    builder.add(prim.rounded_box((0, top_y - 0.5 * drop, sz * half_d), (2 * half_l, drop, 0.02), 0.005))
  for sx in (-1, 1):
    builder.add(prim.rounded_box((sx * half_l, top_y - 0.5 * drop, 0), (0.02, drop, 2 * half_d), 0.005))
