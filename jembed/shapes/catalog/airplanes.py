"""Procedural airplanes: jets and propeller aircraft with varied engines, wing sweep and position, and tails.

Engines under the wings (2 or 4), at the tail (a pair on the rear fuselage), a single nose propeller, or propellers on
the wings; low / mid / high wings; conventional, T or twin-fin tails. Catalog frame: +Y up, the nose points to -Z,
the wings span x. Parts are placed around the fuselage axis at y = 0; `catalog.build_mesh` then rests the lowest
point (belly, nacelle or wing tip) on y = 0 like every other shape. Units are metres.
"""

import numpy as np

from jembed.shapes.catalog import primitives as prim
from jembed.shapes.catalog import sampling

ENGINES = ("under_wing", "tail", "nose_prop", "wing_props")
WING_POSITIONS = ("low", "mid", "high")
TAILS = ("conventional", "t_tail", "twin")


def sample(rng: np.random.Generator, index: int) -> dict:
  """Airplane parameters.

  Engine layout and tail cycle with `index` (periods 4 and 3, coprime), the wing position with `index // 12`, so the 32
  airplanes have 32 different (engines, tail, wing position) combinations (rear-engined jets swap a high wing for a
  low one, as real ones do).
  """
  engines = ENGINES[index % len(ENGINES)]
  wing_position = WING_POSITIONS[(index // 12) % len(WING_POSITIONS)]
  if engines == "tail" and wing_position == "high":
    wing_position = "low"
  jet = engines in ("under_wing", "tail")
  length = sampling.uniform(rng, 25.0, 60.0) if jet else sampling.uniform(rng, 8.0, 22.0)
  return {
      "engines": engines,
      "propulsion": "jet" if jet else "prop",
      "num_engines": sampling.choice(rng, (2, 2, 4))
      if engines in ("under_wing", "wing_props")
      else (2 if engines == "tail" else 1),
      "wing_position": wing_position,
      "tail": TAILS[index % len(TAILS)],
      "length": length,
      "fineness": sampling.uniform(rng, 9.0, 14.0) if jet else sampling.uniform(rng, 7.0, 10.0),
      "span_ratio": sampling.uniform(rng, 0.8, 1.15) if jet else sampling.uniform(rng, 1.1, 1.5),
      "sweep_deg": sampling.uniform(rng, 18.0, 38.0) if jet else sampling.uniform(rng, 0.0, 8.0),
      "dihedral_deg": sampling.uniform(rng, 0.0, 7.0),
      "root_chord_ratio": sampling.uniform(rng, 0.14, 0.22),
      "taper": sampling.uniform(rng, 0.25, 0.55) if jet else sampling.uniform(rng, 0.5, 0.9),
      "wing_station": sampling.uniform(rng, 0.33, 0.45),
      "fin_height_ratio": sampling.uniform(rng, 0.14, 0.22),
      "num_blades": sampling.integer(rng, 2, 4),
  }


def build(params: dict) -> prim.MeshBuilder:
  """All parts of one airplane (fuselage, wings, tail, engines) in the catalog frame."""
  builder = prim.MeshBuilder()
  builder.add(_fuselage(params))
  _build_wings(builder, params)
  _build_tail(builder, params)
  _ENGINE_BUILDERS[params["engines"]](builder, params)
  return builder


def _radius(p: dict) -> float:
  """Fuselage radius: length over fineness ratio (diameter = length / fineness)."""
  return 0.5 * p["length"] / p["fineness"]


def _fuselage(p: dict) -> prim.Mesh:
  """A round body lofted along z: a blunt nose at -Z, a constant barrel, and a tail cone sweeping up to the fin."""
  length, radius = p["length"], _radius(p)
  nose, tail = -0.5 * length, 0.5 * length
  # (z, centre height, radius) of each station.
  profile = [
      (nose, -0.25, 0.08),
      (nose + 0.25 * radius, -0.15, 0.5),
      (nose + 0.8 * radius, -0.05, 0.82),
      (nose + 2.0 * radius, 0.0, 1.0),
      (tail - 3.5 * radius, 0.0, 1.0),
      (tail - 1.5 * radius, 0.25, 0.6),
      (tail, 0.5, 0.2),
  ]
  stations = [(z, radius * (y - r), radius * (y + r), radius * r) for z, y, r in profile]
  return prim.section_loft(stations, exponent=2.0, num_points=24)


def _wing_root(p: dict) -> np.ndarray:
  """Leading-edge point of the main wing where it meets the fuselage centre plane."""
  height = {"low": -0.65, "mid": 0.0, "high": 0.7}[p["wing_position"]] * _radius(p)
  return np.array([0.0, height, (p["wing_station"] - 0.5) * p["length"]])


def _wing_leading_edge(p: dict, span_fraction: float) -> np.ndarray:
  """Leading-edge point of the right wing at `span_fraction` of the half span (0 root, 1 tip)."""
  half_span = 0.5 * p["span_ratio"] * p["length"] * span_fraction
  sweep, dihedral = np.deg2rad(p["sweep_deg"]), np.deg2rad(p["dihedral_deg"])
  return _wing_root(p) + np.array([half_span, half_span * np.tan(dihedral), half_span * np.tan(sweep)])


def _wing_chord(p: dict, span_fraction: float) -> float:
  root = p["root_chord_ratio"] * p["length"]
  return root * (1.0 - (1.0 - p["taper"]) * span_fraction)


def _build_wings(builder: prim.MeshBuilder, p: dict) -> None:
  """Main wings, mirrored across x = 0."""
  right = prim.wing(_wing_root(p), _wing_leading_edge(p, 1.0), _wing_chord(p, 0.0), _wing_chord(p, 1.0), 0.12)
  builder.add_mirrored_x(right)


def _build_tail(builder: prim.MeshBuilder, p: dict) -> None:
  """Horizontal stabiliser and fin(s): fin on the centre line with the stabiliser low (conventional) or on top (T),
  or a low stabiliser with a fin at each tip (twin)."""
  length, radius = p["length"], _radius(p)
  fin_height = p["fin_height_ratio"] * length
  fin_root_chord = 0.14 * length
  fin_z = 0.5 * length - fin_root_chord - 0.2 * radius
  stab_span, stab_chord = 0.17 * p["span_ratio"] * length + radius, 0.09 * length
  sweep = np.tan(np.deg2rad(p["sweep_deg"] + 8.0))
  if p["tail"] == "twin":
    stab_y, stab_z = 0.3 * radius, 0.5 * length - stab_chord - 0.3 * radius
  elif p["tail"] == "t_tail":
    stab_y, stab_z = 0.55 * radius + fin_height, fin_z + fin_height * sweep + 0.1 * fin_root_chord
  else:
    stab_y, stab_z = 0.3 * radius, 0.5 * length - stab_chord - 0.6 * radius
  stab_root = np.array([0.0, stab_y, stab_z])
  stab_tip = stab_root + np.array([stab_span, 0.05 * stab_span, stab_span * sweep * 0.8])
  builder.add_mirrored_x(prim.wing(stab_root, stab_tip, stab_chord, 0.5 * stab_chord, 0.1))
  if p["tail"] == "twin":
    fin_root = stab_tip - np.array([0.0, 0.3 * fin_height, 0.0])
    fin = prim.wing(
        fin_root,
        fin_root + np.array([0, 0.85 * fin_height, 0.85 * fin_height * sweep]),
        0.7 * stab_chord,
        0.35 * stab_chord,
        0.1,
        vertical=True,
    )
    builder.add_mirrored_x(fin)
  else:
    fin_root = np.array([0.0, 0.4 * radius, fin_z])
    fin_tip = fin_root + np.array([0.0, fin_height, fin_height * sweep])
    tip_chord = 0.6 * fin_root_chord if p["tail"] == "t_tail" else 0.4 * fin_root_chord
    builder.add(prim.wing(fin_root, fin_tip, fin_root_chord, tip_chord, 0.1, vertical=True))


def _nacelle(front: np.ndarray, length: float, radius: float) -> prim.Mesh:
  """A jet engine pod: a short tapered tube along +z, open end forward, with a nozzle cone behind."""
  stations = [
      (front[2], -0.95, 0.95),
      (front[2] + 0.15 * length, -1.0, 1.0),
      (front[2] + 0.8 * length, -0.9, 0.9),
      (front[2] + length, -0.55, 0.55),
  ]
  rows = [(z, front[1] + radius * lo, front[1] + radius * hi, radius * hi) for z, lo, hi in stations]
  return prim.transform(prim.section_loft(rows, exponent=2.0, num_points=20), None, (front[0], 0.0, 0.0))


def _under_wing_engines(builder: prim.MeshBuilder, p: dict) -> None:
  """Pods hung on pylons below and ahead of the wing's leading edge, at 35 % (and 65 %) of the half span."""
  radius = 0.55 * _radius(p) * (0.8 if p["num_engines"] == 4 else 1.0)
  length = 3.2 * radius
  for fraction in ((0.35,) if p["num_engines"] == 2 else (0.3, 0.62)):
    edge = _wing_leading_edge(p, fraction)
    front = edge + np.array([0.0, -1.3 * radius, -0.55 * length])
    pylon = prim.box(edge + np.array([0.0, -0.6 * radius, 0.0]), (0.15 * radius, 1.2 * radius, 0.8 * length))
    builder.add_mirrored_x(_nacelle(front, length, radius), pylon)


def _tail_engines(builder: prim.MeshBuilder, p: dict) -> None:
  """A pair of pods on short stubs either side of the rear fuselage, ahead of the tail."""
  radius = 0.45 * _radius(p)
  length = 3.4 * radius
  x = _radius(p) + 1.3 * radius
  front = np.array([x, 0.35 * _radius(p), 0.5 * p["length"] - 5.2 * _radius(p) - length])
  stub = prim.box((0.5 * x, front[1], front[2] + 0.5 * length), (x, 0.2 * radius, 0.6 * length))
  builder.add_mirrored_x(_nacelle(front, length, radius), stub)


def _propeller(hub: np.ndarray, radius: float, num_blades: int) -> prim.Mesh:
  """A spinner (half ellipsoid pointing -Z) and `num_blades` thin blades in the x-y plane."""
  parts = [prim.ellipsoid(hub, (0.18 * radius, 0.18 * radius, 0.3 * radius))]
  for k in range(num_blades):
    angle = np.pi * 2 * k / num_blades + 0.3
    blade = prim.rounded_box(
        (0, 0.5 * radius, 0), (0.12 * radius, radius, 0.03 * radius), 0.01 * radius, rotation=prim.rotation_z(angle)
    )
    parts.append(prim.transform(blade, None, hub))
  return prim.concatenate(parts)


def _nose_prop(builder: prim.MeshBuilder, p: dict) -> None:
  radius = 1.5 * _radius(p)
  builder.add(
      _propeller(np.array([0.0, -0.25 * _radius(p), -0.5 * p["length"] - 0.1 * radius]), radius, p["num_blades"])
  )


def _wing_props(builder: prim.MeshBuilder, p: dict) -> None:
  """Turboprop nacelles on the wing with propellers ahead of the leading edge."""
  radius = 0.45 * _radius(p)
  prop_radius = 0.1 * p["span_ratio"] * p["length"] * (0.7 if p["num_engines"] == 4 else 1.0)
  for fraction in ((0.32,) if p["num_engines"] == 2 else (0.25, 0.55)):
    edge = _wing_leading_edge(p, fraction)
    length = 0.5 * _wing_chord(p, fraction) + 2.0 * radius
    front = edge + np.array([0.0, 0.0, -1.5 * radius])
    hub = front + np.array([0.0, 0.0, -0.3 * radius])
    builder.add_mirrored_x(
        _nacelle(front, length + 1.5 * radius, radius), _propeller(hub, prop_radius, p["num_blades"])
    )


_ENGINE_BUILDERS = {
    "under_wing": _under_wing_engines,
    "tail": _tail_engines,
    "nose_prop": _nose_prop,
    "wing_props": _wing_props,
}
