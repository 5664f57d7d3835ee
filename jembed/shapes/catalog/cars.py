"""Procedural cars: sedan, coupe, wagon, hatchback, SUV, pickup, van and sports profiles; 2 or 3 axles; optional
spoiler, roof rack and rear spare wheel.

Catalog frame: +Y up, ground at y = 0, the bonnet points to -Z (the car drives towards -Z), x runs across the car.
Bodies are lofted through rounded cross-sections (`primitives.section_loft`): a lower body and a narrower glasshouse
(cabin) on top. Units are metres.
"""

import numpy as np

from jembed.shapes.catalog import primitives as prim
from jembed.shapes.catalog import sampling

BODIES = ("sedan", "hatchback", "suv", "pickup", "van", "sports", "wagon", "coupe")

# Per body type, ranges (low, high) of: length, height of the roof, bonnet height, boot/deck height (as fractions of
# the roof height), cabin start and end along the length (fractions from the front), ground clearance, windscreen rake
# (0 upright, 1 very raked).
_PROFILES = {
    "sedan": dict(
        length=(4.3, 5.0),
        roof=(1.38, 1.5),
        bonnet=(0.55, 0.62),
        deck=(0.62, 0.7),
        cabin=((0.3, 0.38), (0.74, 0.8)),
        clearance=(0.13, 0.17),
        rake=(0.3, 0.55),
    ),
    "hatchback": dict(
        length=(3.6, 4.1),
        roof=(1.42, 1.55),
        bonnet=(0.55, 0.63),
        deck=(0.6, 0.68),
        cabin=((0.28, 0.34), (0.93, 0.97)),
        clearance=(0.13, 0.17),
        rake=(0.25, 0.5),
    ),
    "suv": dict(
        length=(4.4, 5.0),
        roof=(1.65, 1.85),
        bonnet=(0.58, 0.65),
        deck=(0.58, 0.64),
        cabin=((0.28, 0.33), (0.94, 0.98)),
        clearance=(0.2, 0.26),
        rake=(0.1, 0.35),
    ),
    "pickup": dict(
        length=(4.9, 5.9),
        roof=(1.75, 1.95),
        bonnet=(0.55, 0.62),
        deck=(0.52, 0.58),
        cabin=((0.25, 0.31), (0.44, 0.64)),
        clearance=(0.22, 0.28),
        rake=(0.05, 0.3),
    ),
    "van": dict(
        length=(4.6, 5.6),
        roof=(1.9, 2.3),
        bonnet=(0.42, 0.5),
        deck=(0.4, 0.46),
        cabin=((0.12, 0.18), (0.97, 0.99)),
        clearance=(0.15, 0.2),
        rake=(0.0, 0.2),
    ),
    "wagon": dict(
        length=(4.6, 5.1),
        roof=(1.42, 1.52),
        bonnet=(0.55, 0.62),
        deck=(0.6, 0.68),
        cabin=((0.3, 0.36), (0.93, 0.97)),
        clearance=(0.13, 0.17),
        rake=(0.3, 0.5),
    ),
    "coupe": dict(
        length=(4.2, 4.8),
        roof=(1.28, 1.38),
        bonnet=(0.55, 0.62),
        deck=(0.64, 0.72),
        cabin=((0.36, 0.42), (0.68, 0.76)),
        clearance=(0.11, 0.15),
        rake=(0.45, 0.7),
    ),
    "sports": dict(
        length=(4.1, 4.7),
        roof=(1.12, 1.26),
        bonnet=(0.5, 0.58),
        deck=(0.62, 0.7),
        cabin=((0.36, 0.42), (0.72, 0.82)),
        clearance=(0.09, 0.12),
        rake=(0.5, 0.8),
    ),
}


# The two optional features each body type can have; the four cars of a type (index // 8 = 0..3) take the four
# combinations, so no two cars share body type and options.
_OPTIONS = {
    "sedan": ("spoiler", "roof_rack"),
    "hatchback": ("spoiler", "roof_rack"),
    "suv": ("roof_rack", "spare_wheel"),
    "pickup": ("three_axles", "crew_cab"),
    "van": ("roof_rack", "high_roof"),
    "sports": ("spoiler", "convertible"),
    "wagon": ("roof_rack", "spoiler"),
    "coupe": ("spoiler", "convertible"),
}


def sample(rng: np.random.Generator, index: int) -> dict:
  """Car parameters; the body type cycles with `index`, the options with `index // 8`."""
  body = BODIES[index % len(BODIES)]
  variant = index // len(BODIES)
  options = {name for bit, name in enumerate(_OPTIONS[body]) if variant >> bit & 1}
  profile = _PROFILES[body]
  roof = sampling.uniform(rng, *profile["roof"]) * (1.15 if "high_roof" in options else 1.0)
  cabin_end = sampling.uniform(rng, *profile["cabin"][1]) + (0.1 if "crew_cab" in options else 0.0)
  # Boxy bodies (SUVs, vans, pickups) get squarer sections; the exponent also varies within a type.
  boxy = body in ("suv", "van", "pickup")
  return {
      "body": body,
      "axles": 3 if "three_axles" in options else 2,
      "spoiler": "spoiler" in options,
      "roof_rack": "roof_rack" in options,
      "spare_wheel": "spare_wheel" in options,
      "convertible": "convertible" in options,
      "crew_cab": "crew_cab" in options,
      "high_roof": "high_roof" in options,
      # A third axle comes with a longer chassis behind the cab.
      "length": round(sampling.uniform(rng, *profile["length"]) * (1.15 if "three_axles" in options else 1.0), 4),
      "width": sampling.uniform(rng, 1.9, 2.05)
      if body in ("sports", "van", "pickup")
      else sampling.uniform(rng, 1.7, 1.9),
      "roof_height": round(roof, 4),
      "bonnet_height": round(roof * sampling.uniform(rng, *profile["bonnet"]), 4),
      "deck_height": round(roof * sampling.uniform(rng, *profile["deck"]), 4),
      "cabin_start": sampling.uniform(rng, *profile["cabin"][0]),
      "cabin_end": round(cabin_end, 4),
      "clearance": sampling.uniform(rng, *profile["clearance"]),
      "wheel_radius": sampling.uniform(rng, 0.3, 0.36)
      if body in ("sports", "sedan", "hatchback", "coupe")
      else sampling.uniform(rng, 0.36, 0.42),
      "front_overhang": sampling.uniform(rng, 0.16, 0.22),
      "rear_overhang": sampling.uniform(rng, 0.14, 0.24),
      "windscreen_rake": sampling.uniform(rng, *profile["rake"]),
      "roundness": sampling.uniform(rng, 5.0, 9.0) if boxy else sampling.uniform(rng, 2.6, 5.0),
  }


def build(params: dict) -> prim.MeshBuilder:
  """All parts of one car (lower body, cabin, pickup bed, wheels, lights, spoiler, roof rack) in the catalog frame."""
  builder = prim.MeshBuilder()
  builder.add(_lower_body(params))
  if params["convertible"]:
    _build_open_top(builder, params)
  else:
    builder.add(_cabin(params))
  if params["body"] == "pickup":
    _build_bed(builder, params)
  _build_wheels(builder, params)
  _build_lights(builder, params)
  if params["spoiler"]:
    _build_spoiler(builder, params)
  if params["roof_rack"]:
    _build_roof_rack(builder, params)
  if params["spare_wheel"]:
    _build_spare_wheel(builder, params)
  return builder


def _z(p: dict, fraction: float) -> float:
  """z of a point `fraction` of the length back from the front bumper (front is -Z)."""
  return (fraction - 0.5) * p["length"]


def _belt(p: dict) -> float:
  """Height of the beltline, where the glasshouse starts."""
  return max(p["bonnet_height"], p["deck_height"]) + 0.04


def _lower_body(p: dict) -> prim.Mesh:
  """The body below the windows: bumper, bonnet rising to the beltline, the deck (boot) falling to the rear bumper.

  The underside rises in a half-circle over every axle, so the side profile has wheel arches and the tyres show.
  """
  half_w, bottom, belt = 0.5 * p["width"], p["clearance"], _belt(p)
  tail_top = p["deck_height"] if p["cabin_end"] < 0.9 else belt
  screen_top = _z(p, p["cabin_start"]) + _windscreen_run(p)
  key_z = [
      _z(p, 0.0),
      _z(p, 0.03),
      _z(p, 0.12),
      _z(p, p["cabin_start"]),
      screen_top,
      _z(p, min(p["cabin_end"], 0.95)),
      _z(p, 0.97),
      _z(p, 1.0),
  ]
  key_bottom = [bottom + 0.12, bottom + 0.02, bottom, bottom, bottom, bottom, bottom + 0.02, bottom + 0.1]
  key_top = [
      p["bonnet_height"] - 0.12,
      p["bonnet_height"] - 0.03,
      p["bonnet_height"],
      _cowl(p),
      belt,
      belt,
      tail_top,
      tail_top - 0.05,
  ]
  key_half_w = [0.9 * half_w, 0.97 * half_w, half_w, half_w, half_w, half_w, 0.98 * half_w, 0.92 * half_w]
  arch_radius = 1.12 * p["wheel_radius"]
  arch_offsets = arch_radius * np.array([-1.0, -0.87, -0.5, 0.0, 0.5, 0.87, 1.0])
  arch_z = np.concatenate([axle + arch_offsets for axle in _axle_positions(p)])
  z = np.unique(np.concatenate([key_z, arch_z.clip(key_z[0], key_z[-1])]))
  bottoms = np.interp(z, key_z, key_bottom)
  for axle in _axle_positions(p):
    inside = np.abs(z - axle) < arch_radius
    arch = p["wheel_radius"] + np.sqrt(np.maximum(arch_radius**2 - (z - axle) ** 2, 0.0))
    bottoms = np.where(inside, np.maximum(bottoms, arch), bottoms)
  stations = np.stack([z, bottoms, np.interp(z, key_z, key_top), np.interp(z, key_z, key_half_w)], -1)
  return prim.section_loft(stations, exponent=p["roundness"], num_points=28)


def _cowl(p: dict) -> float:
  """Height of the windscreen's base, just above the bonnet (lower than the beltline)."""
  return min(p["bonnet_height"] + 0.06, _belt(p))


def _windscreen_run(p: dict) -> float:
  """Horizontal length of the windscreen, from the cowl to the roof: longer for more raked screens."""
  run = (p["roof_height"] - _cowl(p)) * (0.5 + 1.2 * p["windscreen_rake"])
  return min(run, 0.4 * (p["cabin_end"] - p["cabin_start"]) * p["length"])


def _cabin(p: dict) -> prim.Mesh:
  """The glasshouse: windscreen rising from the cowl, roof, then a rear screen falling to the deck or the tail."""
  half_w, belt, roof = 0.5 * p["width"] * 0.93, _belt(p) - 0.05, p["roof_height"]
  start, end = _z(p, p["cabin_start"]), _z(p, p["cabin_end"])
  rear_rake = {
      "sedan": 0.6,
      "sports": 0.9,
      "hatchback": 0.12,
      "suv": 0.08,
      "pickup": 0.05,
      "van": 0.04,
      "wagon": 0.1,
      "coupe": 0.85,
  }[p["body"]]
  rear_screen = min((roof - belt) * rear_rake * 1.8 + 0.02, 0.4 * (end - start))
  cowl = _cowl(p) - 0.05
  stations = [
      (start, cowl, cowl + 0.02, half_w),
      (start + _windscreen_run(p), belt, roof, 0.92 * half_w),
      (end - rear_screen, belt, roof, 0.92 * half_w),
      (end, belt, belt + 0.1, half_w),
  ]
  return prim.section_loft(stations, exponent=0.8 * p["roundness"], num_points=24, taper_top=0.85)


def _build_open_top(builder: prim.MeshBuilder, p: dict) -> None:
  """A convertible's open cockpit: a raked windscreen frame and two seat backs with headrests instead of a roof."""
  half_w, belt = 0.5 * p["width"] * 0.9, _belt(p)
  start = _z(p, p["cabin_start"])
  screen_height = 0.55 * (p["roof_height"] - _cowl(p))
  screen = [
      (start, _cowl(p) - 0.03, _cowl(p), half_w),
      (start + 0.8 * _windscreen_run(p), _cowl(p) + screen_height - 0.03, _cowl(p) + screen_height, 0.9 * half_w),
  ]
  builder.add(prim.section_loft(screen, exponent=6.0, num_points=20))
  seat_z = start + _windscreen_run(p) + 0.55
  for side in (-1.0, 1.0):
    seat = prim.rounded_box(
        (side * 0.45 * half_w, belt + 0.12, seat_z), (0.5, 0.5, 0.12), 0.05, rotation=prim.rotation_x(np.deg2rad(15.0))
    )
    builder.add(
        seat, prim.ellipsoid((side * 0.45 * half_w, belt + 0.42, seat_z + 0.06), (0.14, 0.1, 0.07), subdivisions=1)
    )


def _build_bed(builder: prim.MeshBuilder, p: dict) -> None:
  """A pickup's open bed behind the cab: floor plus side walls and tailgate up to the beltline."""
  half_w, floor_y, top = 0.5 * p["width"], p["clearance"] + 0.45, _belt(p) + 0.02
  front, back = _z(p, p["cabin_end"]) + 0.05, _z(p, 1.0) - 0.02
  length, wall = back - front, 0.06
  centre_z = 0.5 * (front + back)
  builder.add(prim.box((0, floor_y, centre_z), (2 * half_w - 0.05, 0.04, length)))
  for side in (-1.0, 1.0):
    builder.add(
        prim.rounded_box(
            (side * (half_w - 0.5 * wall), 0.5 * (floor_y + top), centre_z), (wall, top - floor_y, length), 0.02
        )
    )
  builder.add(prim.rounded_box((0, 0.5 * (floor_y + top), back - 0.5 * wall), (2 * half_w, top - floor_y, wall), 0.02))


def _axle_positions(p: dict) -> list[float]:
  front = _z(p, p["front_overhang"])
  rear = _z(p, 1.0 - p["rear_overhang"])
  axles = [front, rear]
  if p["axles"] == 3:
    axles.append(rear - 2.3 * p["wheel_radius"])
  return axles


def _wheel_parts(p: dict, rotation: np.ndarray) -> tuple[prim.Mesh, prim.Mesh]:
  """A tyre (revolved rounded profile around local y) and its hub, turned by `rotation`, centred at the origin."""
  radius, tyre_width = p["wheel_radius"], 0.2 + 0.1 * (p["body"] == "sports")
  half = 0.5 * tyre_width
  profile = [
      (0.6 * radius, -half),
      (radius - 0.04, -half),
      (radius, -half + 0.04),
      (radius, half - 0.04),
      (radius - 0.04, half),
      (0.6 * radius, half),
  ]
  tyre = prim.revolve(profile, sections=28, rotation=rotation)
  hub = prim.revolve(
      [(0.62 * radius, -0.4 * half), (0.62 * radius, 0.45 * half), (0.2 * radius, 0.55 * half)],
      sections=16,
      rotation=rotation,
  )
  return tyre, hub


def _build_wheels(builder: prim.MeshBuilder, p: dict) -> None:
  """Tyres with hub discs (axis along x), both sides of every axle."""
  tyre, hub = _wheel_parts(p, rotation=prim.rotation_z(-0.5 * np.pi))
  x = 0.5 * p["width"] - 0.5 * (0.2 + 0.1 * (p["body"] == "sports")) + 0.02
  for z in _axle_positions(p):
    for side in (-1.0, 1.0):
      builder.add(prim.transform(tyre, None, (side * x, p["wheel_radius"], z)))
      builder.add(prim.transform(prim.mirror_x(hub) if side < 0 else hub, None, (side * x, p["wheel_radius"], z)))


def _build_spare_wheel(builder: prim.MeshBuilder, p: dict) -> None:
  """A spare wheel hung on the tailgate, hub facing backwards (+Z)."""
  tyre, hub = _wheel_parts(p, rotation=prim.rotation_x(0.5 * np.pi))
  centre = (0.0, _belt(p) - 0.2, _z(p, 1.0) + 0.12)
  builder.add(prim.transform(tyre, None, centre), prim.transform(hub, None, centre))


def _build_lights(builder: prim.MeshBuilder, p: dict) -> None:
  """Headlights at the front (-Z) and tail lights at the rear: small flattened ellipsoids that mark the direction."""
  half_w = 0.5 * p["width"]
  head_y = p["bonnet_height"] - 0.12
  tail_y = (p["deck_height"] if p["cabin_end"] < 0.9 else _belt(p)) - 0.12
  builder.add_mirrored_x(
      prim.ellipsoid((0.7 * half_w, head_y, _z(p, 0.015)), (0.16, 0.06, 0.06), subdivisions=1),
      prim.ellipsoid((0.75 * half_w, tail_y, _z(p, 0.99)), (0.14, 0.05, 0.04), subdivisions=1),
  )


def _build_spoiler(builder: prim.MeshBuilder, p: dict) -> None:
  """A rear wing on two posts above the deck (or the roof's trailing edge for hatchback-like bodies)."""
  on_roof = p["cabin_end"] > 0.9
  base_y = p["roof_height"] if on_roof else p["deck_height"]
  z = _z(p, 0.97) if not on_roof else _z(p, p["cabin_end"]) - 0.05
  wing_y = base_y + (0.04 if on_roof else 0.18)
  builder.add(prim.rounded_box((0, wing_y, z), (0.85 * p["width"], 0.035, 0.25), 0.012))
  for side in (-1.0, 1.0):
    builder.add(
        prim.box((side * 0.3 * p["width"], 0.5 * (base_y + wing_y) - 0.03, z), (0.03, wing_y - base_y + 0.06, 0.12))
    )


def _build_roof_rack(builder: prim.MeshBuilder, p: dict) -> None:
  """Two rails along the roof with cross bars."""
  start, end = _z(p, p["cabin_start"]), _z(p, p["cabin_end"])
  y = p["roof_height"] + 0.05
  rail_x = 0.34 * p["width"]
  front, back = start + 0.6 * (end - start) * 0.3 + 0.35, end - 0.25
  for side in (-1.0, 1.0):
    builder.add(prim.rounded_box((side * rail_x, y, 0.5 * (front + back)), (0.04, 0.04, back - front), 0.01))
  for z in (front + 0.2, back - 0.2):
    builder.add(prim.box((0, y + 0.02, z), (2 * rail_x + 0.06, 0.025, 0.05)))
