"""Procedural lamps: floor or desk; straight, bent (arc), articulated or branched (tree) arms; cone, drum, dome or globe
shades; four bases.

Catalog frame: +Y up, floor at y = 0; bent and articulated arms reach out towards the front (-Z). Units are metres.
"""

import numpy as np

from jembed.shapes.catalog import primitives as prim
from jembed.shapes.catalog import sampling

KINDS = ("floor", "desk")
ARMS = ("straight", "bent", "articulated", "tree")
SHADES = ("cone", "cylinder", "dome", "globe")
BASES = ("disc", "square", "tripod", "weighted")


def sample(rng: np.random.Generator, index: int) -> dict:
  """Lamp parameters; (kind, arm, shade) runs through all 2 x 4 x 4 = 32 combinations as `index` goes 0..31."""
  kind = KINDS[index % 2]
  desk = kind == "desk"
  return {
      "kind": kind,
      "arm": ARMS[(index // 2) % len(ARMS)],
      "shade": SHADES[(index // 8) % len(SHADES)],
      "base": sampling.choice(rng, BASES),
      "height": sampling.uniform(rng, 0.38, 0.62) if desk else sampling.uniform(rng, 1.3, 1.85),
      "reach": sampling.uniform(rng, 0.45, 0.8),
      "shade_radius": sampling.uniform(rng, 0.06, 0.12) if desk else sampling.uniform(rng, 0.14, 0.3),
      "shade_height_ratio": sampling.uniform(rng, 0.6, 1.3),
      "shade_top_ratio": sampling.uniform(rng, 0.35, 0.8),
      "base_radius": sampling.uniform(rng, 0.07, 0.12) if desk else sampling.uniform(rng, 0.14, 0.24),
      "pole_radius": sampling.uniform(rng, 0.007, 0.013) if desk else sampling.uniform(rng, 0.012, 0.022),
      "elbow_angle_deg": sampling.uniform(rng, 40.0, 80.0),
      "num_branches": sampling.integer(rng, 2, 4),
  }


def build(params: dict) -> prim.MeshBuilder:
  """All parts of one lamp (base, arm, shade with its bulb) in the catalog frame."""
  builder = prim.MeshBuilder()
  base_top = _build_base(builder, params)
  for head, direction in _ARM_BUILDERS[params["arm"]](builder, params, base_top):
    _build_shade(builder, params, head, direction)
  return builder


def _build_base(builder: prim.MeshBuilder, p: dict) -> float:
  """Adds the base and returns the height where the arm starts."""
  radius, pole = p["base_radius"], p["pole_radius"]
  if p["base"] == "disc":
    builder.add(prim.revolve([(radius, 0.0), (radius, 0.015), (0.7 * radius, 0.03), (2 * pole, 0.035)], sections=32))
    return 0.03
  if p["base"] == "square":
    builder.add(prim.rounded_box((0, 0.015, 0), (1.7 * radius, 0.03, 1.7 * radius), 0.008))
    return 0.03
  if p["base"] == "weighted":
    profile = [(radius, 0.0), (radius, 0.01 + 0.2 * radius), (0.75 * radius, 0.45 * radius), (2 * pole, 0.55 * radius)]
    builder.add(prim.revolve(profile, sections=32))
    return 0.5 * radius
  # Tripod: three splayed legs meeting on the pole well above the floor.
  hub_y = 0.25 * min(p["height"], 1.0)
  for k in range(3):
    angle = 2 * np.pi * k / 3 + np.pi / 2
    foot = (1.6 * radius * np.cos(angle), 0.0, 1.6 * radius * np.sin(angle))
    builder.add(prim.tube(foot, (0, hub_y, 0), 0.9 * pole, sections=10))
  return hub_y


# Arm builders add their rods and return [(head, direction)]: where each shade's top centre goes and the unit vector
# its opening faces.


def _straight_arm(builder: prim.MeshBuilder, p: dict, base_top: float):
  """A vertical pole; the shade sits on top, opening downwards."""
  # The pole runs up inside the shade to its top, as a harp would.
  builder.add(prim.tube((0, 0.0, 0), (0, p["height"], 0), p["pole_radius"], sections=12))
  return [(np.array([0.0, p["height"], 0.0]), np.array([0.0, -1.0, 0.0]))]


def _bent_arm(builder: prim.MeshBuilder, p: dict, base_top: float):
  """A pole that rises, then arcs forward (-Z) over a quarter circle and hangs the shade down (an arc / gooseneck)."""
  # Floor arc lamps sweep past horizontal so the shade hangs well in front; desk goosenecks bend a quarter turn.
  bend_radius, sweep = (0.8 * p["reach"], 0.62 * np.pi) if p["kind"] == "floor" else (0.3 * p["reach"], 0.5 * np.pi)
  rise = p["height"] - bend_radius
  angles = np.linspace(0.0, sweep, 9)
  arc = np.stack([np.zeros(9), rise + bend_radius * np.sin(angles), -bend_radius * (1 - np.cos(angles))], -1)
  path = np.concatenate([[[0.0, 0.0, 0.0]], arc])
  builder.add(prim.polyline_tube(path, p["pole_radius"]))
  return [(arc[-1], np.array([0.0, -1.0, 0.0]))]


def _articulated_arm(builder: prim.MeshBuilder, p: dict, base_top: float):
  """Two rods with ball joints (an anglepoise): the lower leans back, the upper reaches forward; the shade tilts."""
  lower = 0.55 * p["height"] if p["kind"] == "floor" else 0.6 * p["height"]
  lean = np.deg2rad(15.0)
  elbow = np.array([0.0, base_top + lower * np.cos(lean), lower * np.sin(lean)])
  upper_angle = np.deg2rad(p["elbow_angle_deg"])
  upper = p["reach"] * (0.9 if p["kind"] == "floor" else 0.55)
  wrist = elbow + upper * np.array([0.0, np.cos(upper_angle), -np.sin(upper_angle)])
  radius = 0.8 * p["pole_radius"]
  builder.add(prim.tube((0, base_top - 0.01, 0), elbow, radius, sections=10))
  builder.add(prim.tube(elbow, wrist, radius, sections=10))
  # Twin rods and a spring make the silhouette read as an articulated arm rather than a bent tube.
  offset = np.array([3 * radius, 0.0, 0.0])
  builder.add(prim.tube(elbow + offset, wrist + offset, 0.6 * radius, sections=8))
  builder.add(prim.ellipsoid(elbow, 2.5 * radius), prim.ellipsoid(wrist, 2.5 * radius))
  direction = np.array([0.0, -np.cos(np.deg2rad(35.0)), -np.sin(np.deg2rad(35.0))])
  return [(wrist, direction)]


def _tree_arm(builder: prim.MeshBuilder, p: dict, base_top: float):
  """A pole that splits near the top into 2-4 branches curving out and up, each ending in a hanging shade."""
  split = 0.75 * p["height"]
  builder.add(prim.tube((0, 0.0, 0), (0, split + 0.02, 0), p["pole_radius"], sections=12))
  # Far enough out that neighbouring shades do not overlap (their centres are 2 reach sin(pi / n) apart).
  spacing = 1.15 * p["shade_radius"] / np.sin(np.pi / p["num_branches"])
  reach = max(0.35 * p["reach"] * (1.0 if p["kind"] == "floor" else 0.5), spacing)
  heads = []
  for k in range(p["num_branches"]):
    angle = 2 * np.pi * k / p["num_branches"] + 0.5 * np.pi
    out = np.array([np.cos(angle), 0.0, -np.sin(angle)])
    path = [
        (0.0, split, 0.0),
        (0.0, split, 0.0) + 0.5 * reach * out + (0, 0.1 * reach, 0),
        (0.0, p["height"], 0.0) + reach * out,
    ]
    builder.add(prim.polyline_tube(path, 0.8 * p["pole_radius"], sections=10))
    heads.append((np.asarray(path[-1]), np.array([0.0, -1.0, 0.0])))
  return heads


_ARM_BUILDERS = {"straight": _straight_arm, "bent": _bent_arm, "articulated": _articulated_arm, "tree": _tree_arm}


def _shade_height(p: dict) -> float:
  return p["shade_radius"] * p["shade_height_ratio"]


def _shade_outer_profile(p: dict) -> np.ndarray:
  """float[N, 2] (radius, height) of the shade's outside, from the rim at height 0 up to the top."""
  radius, height = p["shade_radius"], _shade_height(p)
  if p["shade"] == "cone":
    outer = [(radius, 0.0), (radius * p["shade_top_ratio"], height)]
  elif p["shade"] == "cylinder":
    outer = [(radius, 0.0), (radius, height)]
  else:
    # Dome: a quarter ellipse from the rim up to a small neck.
    angles = np.linspace(0.0, 0.45 * np.pi, 7)
    outer = [(radius * np.cos(a) + 0.01, height * np.sin(a)) for a in angles]
  return np.asarray(outer)


def _build_shade(builder: prim.MeshBuilder, p: dict, head: np.ndarray, direction: np.ndarray) -> None:
  """A thin revolved shell hung from `head` along `direction` (its opening faces along `direction`), with a bulb;
  or an opal globe on a short collar."""
  direction = direction / np.linalg.norm(direction)
  if p["shade"] == "globe":
    radius = p["shade_radius"] * (0.4 + 0.2 * p["shade_height_ratio"])
    builder.add(prim.tube(head, head + 0.25 * radius * direction, 0.35 * radius, sections=16))
    builder.add(prim.ellipsoid(head + 1.15 * radius * direction, radius, subdivisions=3))
    return
  # The profile is built with the opening at local y = 0 and the top at +height; map local -y onto `direction`.
  tilt = np.arctan2(-direction[2], -direction[1])
  rotation = prim.rotation_x(tilt)
  height, thickness = _shade_height(p), 0.004 + 0.01 * p["shade_radius"]
  outer = _shade_outer_profile(p)
  wall = np.concatenate([outer, outer[::-1] - np.array([thickness, 0.0])])
  shell = prim.revolve(wall, closed_profile=True, sections=28, rotation=rotation)
  opening_centre = head + direction * height
  builder.add(prim.transform(shell, None, opening_centre))
  # A cap disc closes the top, so the shade reads as solid from above, and a bulb hangs inside.
  top_radius = outer[-1, 0]
  cap = prim.revolve([(top_radius, height - thickness), (top_radius, height)], sections=28, rotation=rotation)
  builder.add(prim.transform(cap, None, opening_centre))
  builder.add(prim.ellipsoid(opening_centre - 0.45 * height * direction, 0.3 * p["shade_radius"], subdivisions=2))
