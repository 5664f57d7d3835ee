"""Procedural chairs: seven leg styles, four back styles, three seat shapes, optional arms.

Frame (shared by the whole catalog): +Y up with the floor at y = 0, the sitter faces -Z, so the back rises at +Z, as
ShapeNetCore.v2's `model_normalized.obj` chairs. Units are metres.
"""

import numpy as np

from jembed.shapes.catalog import primitives as prim
from jembed.shapes.catalog import sampling

LEG_STYLES = ("straight", "splayed", "tapered", "swivel", "sled", "cantilever", "pedestal")
BACK_STYLES = ("solid", "slatted", "round", "ladder")
SEAT_SHAPES = ("square", "rounded", "round")
ARM_STYLES = ("none", "open", "solid")


def sample(rng: np.random.Generator, index: int) -> dict:
  """Chair parameters.

  Leg style, back style and seat shape cycle with `index` (periods 7, 4 and 3, pairwise coprime), so any 7 consecutive
  chairs show every leg style and the 32 chairs have 32 different (legs, back, seat) combinations.
  """
  legs = LEG_STYLES[index % len(LEG_STYLES)]
  office = legs == "swivel"
  return {
      "legs": legs,
      "back": BACK_STYLES[index % len(BACK_STYLES)],
      "seat_shape": SEAT_SHAPES[index % len(SEAT_SHAPES)],
      "arms": sampling.choice(rng, ARM_STYLES),
      "seat_width": sampling.uniform(rng, 0.42, 0.58),
      "seat_depth": sampling.uniform(rng, 0.40, 0.54),
      "seat_height": sampling.uniform(rng, 0.44, 0.54) if office else sampling.uniform(rng, 0.40, 0.50),
      "seat_thickness": sampling.uniform(rng, 0.03, 0.09),
      "back_height": sampling.uniform(rng, 0.28, 0.62),
      "back_tilt_deg": sampling.uniform(rng, 0.0, 20.0),
      "back_thickness": sampling.uniform(rng, 0.02, 0.06),
      "num_slats": sampling.integer(rng, 3, 6),
      "leg_radius": sampling.uniform(rng, 0.012, 0.028),
      # Square (rounded-box) legs only on straight legs; stretchers only between four legs.
      "square_legs": legs == "straight" and sampling.choice(rng, (False, True)),
      "stretchers": legs in ("straight", "splayed", "tapered") and sampling.choice(rng, (False, True)),
      "splay": sampling.uniform(rng, 0.03, 0.09),
      "arm_height": sampling.uniform(rng, 0.16, 0.26),
  }


def build(params: dict) -> prim.MeshBuilder:
  """All parts of one chair (seat, legs, back, arms) in the catalog frame."""
  builder = prim.MeshBuilder()
  builder.add(_seat(params))
  _LEG_BUILDERS[params["legs"]](builder, params)
  _build_back(builder, params)
  if params["arms"] != "none":
    _build_arms(builder, params)
  return builder


def _seat_bottom(p: dict) -> float:
  return p["seat_height"] - p["seat_thickness"]


def _seat(p: dict) -> prim.Mesh:
  half_w, half_d = 0.5 * p["seat_width"], 0.5 * p["seat_depth"]
  if p["seat_shape"] == "round":
    outline = prim.superellipse(half_w, half_d, 2.0, 32)
  elif p["seat_shape"] == "rounded":
    outline = prim.rounded_rectangle(half_w, half_d, 0.45 * min(half_w, half_d), corner_points=6)
  else:
    outline = prim.rounded_rectangle(half_w, half_d, 0.015, corner_points=3)
  return prim.prism(outline, _seat_bottom(p), p["seat_height"], bevel=0.012)


def _leg_corners(p: dict, inset: float) -> list[tuple[float, float]]:
  """(x, z) of the four leg tops, `inset` in from the seat edge (closer for round seats, whose corners are cut)."""
  scale = 0.72 if p["seat_shape"] == "round" else 1.0
  half_w, half_d = scale * 0.5 * p["seat_width"] - inset, scale * 0.5 * p["seat_depth"] - inset
  return [(sx * half_w, sz * half_d) for sx in (-1, 1) for sz in (-1, 1)]


def _four_legs(builder: prim.MeshBuilder, p: dict, splay: float, taper: float) -> None:
  """Four legs from under the seat corners to the floor, feet pushed out by `splay`, thinned by `taper` at the foot."""
  radius, top_y = p["leg_radius"], _seat_bottom(p)
  corners = _leg_corners(p, 1.5 * radius)
  for x, z in corners:
    if p["square_legs"]:
      builder.add(prim.rounded_box((x, 0.5 * top_y, z), (2 * radius, top_y, 2 * radius), 0.2 * radius))
    else:
      foot = (x + np.sign(x) * splay, 0.0, z + np.sign(z) * splay)
      builder.add(prim.tube(foot, (x, top_y, z), radius * taper, radius, sections=12))
  if p["stretchers"]:
    # Side rungs 30 % up the legs, where splayed legs have moved out by 70 % of their splay.
    rung_y, spread = 0.3 * top_y, 0.7 * splay
    half_d = corners[1][1] + spread
    for x in (corners[0][0] - spread, corners[2][0] + spread):
      builder.add(prim.tube((x, rung_y, -half_d), (x, rung_y, half_d), 0.6 * radius, sections=8))


def _straight_legs(builder, p):
  _four_legs(builder, p, splay=0.0, taper=1.0)


def _splayed_legs(builder, p):
  _four_legs(builder, p, splay=p["splay"], taper=0.9)


def _tapered_legs(builder, p):
  _four_legs(builder, p, splay=0.3 * p["splay"], taper=0.45)


def _swivel_base(builder: prim.MeshBuilder, p: dict) -> None:
  """Office-chair base: gas-lift column, five star legs with casters, a tilt mechanism under the seat."""
  top_y, hub_y, reach = _seat_bottom(p), 0.09, 0.26 + 0.15 * p["splay"]
  builder.add(prim.tube((0, hub_y, 0), (0, top_y - 0.04, 0), 0.025 + p["leg_radius"], sections=16))
  builder.add(prim.tube((0, 0.5 * (hub_y + top_y), 0), (0, top_y - 0.04, 0), 0.035, sections=16))
  builder.add(prim.rounded_box((0, top_y - 0.025, 0), (0.18, 0.05, 0.22), 0.01))
  for k in range(5):
    angle = 2 * np.pi * k / 5 + np.pi / 2
    tip = np.array([reach * np.cos(angle), 0.055, -reach * np.sin(angle)])
    builder.add(prim.tube((0, hub_y, 0), tip, 0.022, 0.014, sections=8))
    builder.add(prim.ellipsoid(tip * np.array([1, 0, 1]) + (0, 0.028, 0), 0.028, subdivisions=1))


def _runner(builder: prim.MeshBuilder, p: dict, cantilever: bool) -> None:
  """Bent-tube side frames: a closed sled loop, or a cantilever that only touches down in front of the seat."""
  top_y, radius = _seat_bottom(p), 0.7 * p["leg_radius"] + 0.004
  # Attach under the seat where it has material: round seats have no corners, so pull the frame in.
  scale = 0.8 if p["seat_shape"] == "round" else 1.0
  x, half_d = scale * 0.5 * p["seat_width"] - 0.03, scale * 0.5 * p["seat_depth"]
  if cantilever:
    path = [
        (x, top_y, half_d - 0.04),
        (x, top_y, -half_d + 0.03),
        (x, radius, -half_d - 0.02),
        (x, radius, half_d - 0.02),
    ]
    builder.add(prim.tube((-x, radius, half_d - 0.02), (x, radius, half_d - 0.02), radius, sections=10))
  else:
    path = [
        (x, top_y, -half_d + 0.04),
        (x, radius, -half_d - 0.03),
        (x, radius, half_d + 0.03),
        (x, top_y, half_d - 0.04),
    ]
  builder.add_mirrored_x(prim.polyline_tube(path, radius))


def _sled_legs(builder, p):
  _runner(builder, p, cantilever=False)


def _cantilever_legs(builder, p):
  _runner(builder, p, cantilever=True)


def _pedestal_leg(builder: prim.MeshBuilder, p: dict) -> None:
  """A tulip pedestal: a flat disc foot, a column, and a flare under the seat."""
  top_y, foot = _seat_bottom(p), 0.18 + 0.12 * p["seat_width"]
  column = 0.025 + p["leg_radius"]
  profile = [
      (foot, 0.0),
      (foot, 0.015),
      (0.5 * foot, 0.04),
      (column, 0.1),
      (column, top_y - 0.08),
      (0.35 * p["seat_width"], top_y),
  ]
  builder.add(prim.revolve(profile, sections=24))


_LEG_BUILDERS = {
    "straight": _straight_legs,
    "splayed": _splayed_legs,
    "tapered": _tapered_legs,
    "swivel": _swivel_base,
    "sled": _sled_legs,
    "cantilever": _cantilever_legs,
    "pedestal": _pedestal_leg,
}


def _build_back(builder: prim.MeshBuilder, p: dict) -> None:
  """The back, made upright in a local frame (x across, y up from the seat, z through it) then tilted back about x."""
  width, height, thick = 0.94 * p["seat_width"], p["back_height"], p["back_thickness"]
  post = max(thick, 0.025)
  half_post_x = 0.5 * width - 0.5 * post
  parts = []
  if p["back"] == "solid":
    parts.append(prim.rounded_box((0, 0.5 * height, 0), (width, height, thick), 0.4 * thick))
  else:
    parts += [prim.box((sx * half_post_x, 0.5 * height, 0), (post, height, post)) for sx in (-1, 1)]
  if p["back"] == "slatted":
    rail = 0.06 + 0.2 * thick
    parts.append(prim.rounded_box((0, height - 0.5 * rail, 0), (width, rail, post), 0.008))
    slat_x = np.linspace(-half_post_x, half_post_x, p["num_slats"] + 2)[1:-1]
    parts += [prim.box((x, 0.5 * (height - rail), 0), (0.025, height - rail, 0.6 * post)) for x in slat_x]
  elif p["back"] == "ladder":
    rail_y = np.linspace(0.35 * height, height - 0.03, p["num_slats"] - 1)
    parts += [prim.rounded_box((0, y, 0), (width - post, 0.05, 0.7 * post), 0.01) for y in rail_y]
  elif p["back"] == "round":
    # An oval panel held by the two posts; the disc is built flat in x-z, then stood up.
    radii = (0.5 * width, 0.32 * height)
    panel = prim.prism(
        prim.superellipse(*radii, 2.0, 32),
        -0.5 * thick,
        0.5 * thick,
        center=(0, height - radii[1], 0),
        rotation=prim.rotation_x(0.5 * np.pi),
    )
    parts.append(panel)
  tilt = prim.rotation_x(np.deg2rad(p["back_tilt_deg"]))
  pivot = (0.0, p["seat_height"] - 0.02, 0.5 * p["seat_depth"] - 0.5 * post)
  builder.add(*(prim.transform(part, tilt, pivot) for part in parts))


def _build_arms(builder: prim.MeshBuilder, p: dict) -> None:
  """Armrests on both sides: a rest on a front post ("open"), or a full side panel ("solid")."""
  half_w, half_d, radius = 0.5 * p["seat_width"], 0.5 * p["seat_depth"], max(p["leg_radius"], 0.015)
  rest_y = p["seat_height"] + p["arm_height"]
  x = half_w + 0.025
  rest = prim.rounded_box((x, rest_y, 0.05), (0.05, 0.035, 2 * half_d - 0.02), 0.012)
  if p["arms"] == "open":
    # The front post stands on the seat: further back on a round seat, whose front corners are cut away.
    post_z = -half_d * (0.6 if p["seat_shape"] == "round" else 1.0) + 0.06
    support = prim.tube((x, p["seat_height"] - 0.02, post_z), (x, rest_y, post_z), radius, sections=10)
  else:
    support = prim.box(
        (x, p["seat_height"] + 0.5 * p["arm_height"] - 0.02, 0.03), (0.03, p["arm_height"] + 0.04, 2 * half_d - 0.1)
    )
  builder.add_mirrored_x(rest, support)
