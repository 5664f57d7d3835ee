"""Procedural sofas: 2–4 seat cushions, five arm styles, loose or tight backs, legs or a plinth, optional chaise.

Catalog frame: +Y up, floor at y = 0, the sitter faces -Z (the back rises at +Z), the length runs along x. A chaise
(L-shape) extends one end (-x "left" or +x "right") forwards, towards -Z. Units are metres.
"""

import numpy as np

from jembed.shapes.catalog import primitives as prim
from jembed.shapes.catalog import sampling

ARM_STYLES = ("square", "rolled", "sloped", "thin", "none")  # "thin": slim panels as tall as the back
BASES = ("legs", "plinth")
CHAISES = ("none", "left", "right")

_ARM_WIDTH = {"square": 0.2, "rolled": 0.22, "sloped": 0.18, "thin": 0.07, "none": 0.0}


def sample(rng: np.random.Generator, index: int) -> dict:
  """Sofa parameters.

  Arm style, seat count and base cycle with `index` (periods 5, 3 and 2, pairwise coprime), so every 30 consecutive
  sofas have different (arms, seats, base) combinations; loose back cushions alternate in pairs (period 4), which
  also tells sofas 30 and 31 from 0 and 1. The chaise is drawn at random.
  """
  return {
      "arms": ARM_STYLES[index % len(ARM_STYLES)],
      "num_seats": 2 + index % 3,
      "back_cushions": index % 4 < 2,
      "base": BASES[index % len(BASES)],
      "chaise": sampling.choice(rng, CHAISES + ("none",)),
      "seat_width": sampling.uniform(rng, 0.55, 0.75),
      "seat_depth": sampling.uniform(rng, 0.5, 0.75),
      "seat_height": sampling.uniform(rng, 0.38, 0.48),
      "cushion_thickness": sampling.uniform(rng, 0.1, 0.2),
      "back_height": sampling.uniform(rng, 0.68, 1.0),
      "back_depth": sampling.uniform(rng, 0.14, 0.26),
      "arm_height": sampling.uniform(rng, 0.5, 0.75),
      "leg_height": sampling.uniform(rng, 0.04, 0.2),
      "chaise_length": sampling.uniform(rng, 0.6, 0.9),
  }


def _inner_half_width(p: dict) -> float:
  return 0.5 * p["num_seats"] * p["seat_width"]


def _depth(p: dict) -> float:
  return p["seat_depth"] + p["back_depth"]


def build(params: dict) -> prim.MeshBuilder:
  """All parts of one sofa (base, cushions, back, arms, legs or plinth) in the catalog frame."""
  builder = prim.MeshBuilder()
  _build_base_and_cushions(builder, params)
  _build_back(builder, params)
  arm_width = _ARM_WIDTH[params["arms"]]
  if arm_width:
    for side in (-1.0, 1.0):
      builder.add(_arm(params, side))
  _build_feet(builder, params)
  return builder


def _base_bottom(p: dict) -> float:
  # Legs or plinth, the seat frame starts `leg_height` above the floor; a plinth fills that gap, set back.
  return p["leg_height"]


def _build_base_and_cushions(builder: prim.MeshBuilder, p: dict) -> None:
  """The seat frame under the cushions, one cushion per seat, and the chaise extension when there is one."""
  half_w, depth = _inner_half_width(p), _depth(p)
  front_z, bottom = -0.5 * depth, _base_bottom(p)
  frame_top = p["seat_height"] - p["cushion_thickness"]
  builder.add(prim.rounded_box((0, 0.5 * (bottom + frame_top), 0), (2 * half_w, frame_top - bottom, depth), 0.03))
  cushion_z = front_z + 0.5 * p["seat_depth"]
  for k in range(p["num_seats"]):
    x = -half_w + (k + 0.5) * p["seat_width"]
    extra = p["chaise_length"] if _is_chaise_seat(p, k) else 0.0
    size = (p["seat_width"] - 0.01, p["cushion_thickness"] + 0.02, p["seat_depth"] + extra)
    builder.add(prim.rounded_box((x, frame_top + 0.5 * size[1] - 0.01, cushion_z - 0.5 * extra), size, 0.05))
  if p["chaise"] != "none":
    x = _chaise_x(p)
    size = (p["seat_width"], frame_top - bottom, p["chaise_length"] + 0.05)
    builder.add(prim.rounded_box((x, 0.5 * (bottom + frame_top), front_z - 0.5 * size[2] + 0.05), size, 0.03))


def _is_chaise_seat(p: dict, seat: int) -> bool:
  return (p["chaise"] == "left" and seat == 0) or (p["chaise"] == "right" and seat == p["num_seats"] - 1)


def _chaise_x(p: dict) -> float:
  return (-1.0 if p["chaise"] == "left" else 1.0) * (_inner_half_width(p) - 0.5 * p["seat_width"])


def _build_back(builder: prim.MeshBuilder, p: dict) -> None:
  """A back frame along the rear, plus one leaning cushion per seat (loose back) or a padded roll (tight back)."""
  half_w, depth, bottom = _inner_half_width(p), _depth(p), _base_bottom(p)
  back_z = 0.5 * depth - 0.5 * p["back_depth"]
  frame_height = p["back_height"] - bottom - (0.12 if p["back_cushions"] else 0.0)
  builder.add(
      prim.rounded_box((0, bottom + 0.5 * frame_height, back_z), (2 * half_w, frame_height, p["back_depth"]), 0.04)
  )
  cushion_bottom = p["seat_height"] - 0.02
  if p["back_cushions"]:
    height = p["back_height"] - cushion_bottom
    lean = prim.rotation_x(np.deg2rad(12.0))
    for k in range(p["num_seats"]):
      x = -half_w + (k + 0.5) * p["seat_width"]
      cushion = prim.rounded_box((0, 0.5 * height, 0), (p["seat_width"] - 0.02, height, 0.16), 0.06, rotation=lean)
      builder.add(prim.transform(cushion, None, (x, cushion_bottom, back_z - 0.5 * p["back_depth"] - 0.04)))
  else:
    builder.add(
        prim.rounded_box(
            (0, 0.5 * (cushion_bottom + p["back_height"]) - 0.02, back_z - 0.5 * p["back_depth"] - 0.04),
            (2 * half_w, p["back_height"] - cushion_bottom - 0.04, 0.1),
            0.045,
        )
    )


def _arm(p: dict, side: float) -> prim.Mesh:
  """One arm at the `side` (-1 left, +1 right) end; it runs the full depth, and along the chaise on that side."""
  arm_width, bottom, top = _ARM_WIDTH[p["arms"]], _base_bottom(p), p["arm_height"]
  if p["arms"] == "thin":
    # Thin panel arms run flush with the top of the back (a box-frame sofa), unlike the lower upholstered arms.
    top = p["back_height"]
  depth = _depth(p)
  extends = (p["chaise"] == "left" and side < 0) or (p["chaise"] == "right" and side > 0)
  front_z = -0.5 * depth - (p["chaise_length"] if extends else 0.0)
  length, centre_z = 0.5 * depth - front_z, 0.5 * (0.5 * depth + front_z)
  x = side * (_inner_half_width(p) + 0.5 * arm_width)
  if p["arms"] == "rolled":
    roll = 0.5 * arm_width + 0.02
    return prim.concatenate(
        [
            prim.rounded_box(
                (x, 0.5 * (bottom + top - roll), centre_z), (arm_width, top - roll - bottom, length), 0.03
            ),
            prim.tube(
                (x + side * 0.02, top - roll, front_z), (x + side * 0.02, top - roll, 0.5 * depth), roll, sections=20
            ),
        ]
    )
  if p["arms"] == "sloped":
    # Top edge falls from the back towards the front, like a track arm with a raked profile.
    stations = [(front_z, bottom, top - 0.15, 0.5 * arm_width), (0.5 * depth, bottom, top, 0.5 * arm_width)]
    return prim.transform(prim.section_loft(stations, exponent=8.0, num_points=24), None, (x, 0, 0))
  radius = 0.03 if p["arms"] == "thin" else 0.05
  return prim.rounded_box((x, 0.5 * (bottom + top), centre_z), (arm_width, top - bottom, length), radius)


def _build_feet(builder: prim.MeshBuilder, p: dict) -> None:
  """Short tapered legs at the corners (and mid-span for long sofas), or a recessed plinth to the floor."""
  half_w, depth = _inner_half_width(p) + _ARM_WIDTH[p["arms"]], _depth(p)
  front_z = -0.5 * depth
  if p["base"] == "plinth":
    height = p["leg_height"] + 0.01
    builder.add(prim.box((0, 0.5 * height, 0), (2 * half_w - 0.08, height, depth - 0.08)))
    if p["chaise"] != "none":
      builder.add(
          prim.box(
              (_chaise_x(p), 0.5 * height, front_z - 0.5 * p["chaise_length"]),
              (p["seat_width"] - 0.08, height, p["chaise_length"]),
          )
      )
    return
  xs = [-half_w + 0.06, half_w - 0.06] + ([0.0] if p["num_seats"] >= 3 else [])
  zs = [front_z + 0.06, 0.5 * depth - 0.06]
  spots = [(x, z) for x in xs for z in zs]
  if p["chaise"] != "none":
    spots.append((_chaise_x(p), front_z - p["chaise_length"] + 0.06))
  for x, z in spots:
    builder.add(prim.tube((x, 0.0, z), (x, p["leg_height"] + 0.01, z), 0.018, 0.028, sections=10))
