"""Per-view lighting: an ambient term plus point lamps, as in the paper's Blender scenes.

Lamp positions are in the world frame (+Y up). Lamps given in the paper's spherical convention map to it with the
same formula as the camera (`camera.camera_position`).
"""

import dataclasses
from typing import Sequence

import numpy as np

from jembed.render import camera

MAX_LAMPS = 32  # keeps the GLSL uniform arrays small; the paper uses at most 12 (LFD) or 0-6 (random renders)


@dataclasses.dataclass(frozen=True)
class Lights:
  """Lighting of one view.

  Attributes:
    ambient: environment light, added to every lamp's diffuse term.
    positions: float32[L, 3] point lamp positions, world frame.
    energies: float32[L] lamp energies; may be negative (the paper draws them from N(2, 2)), which darkens.
  """

  ambient: float
  positions: np.ndarray
  energies: np.ndarray

  def __post_init__(self):
    positions = np.asarray(self.positions, np.float32).reshape(-1, 3)
    energies = np.asarray(self.energies, np.float32).reshape(-1)
    if len(positions) != len(energies):
      raise ValueError(f"{len(positions)} lamp positions but {len(energies)} energies")
    if len(positions) > MAX_LAMPS:
      raise ValueError(f"at most {MAX_LAMPS} lamps per view, got {len(positions)}")
    object.__setattr__(self, "ambient", float(self.ambient))
    object.__setattr__(self, "positions", positions)
    object.__setattr__(self, "energies", energies)

  @classmethod
  def spherical(cls, ambient: float, azimuth, elevation, distance, energy) -> "Lights":
    """Lamps placed like the paper's (degrees, distance from the origin), mapped to our frame."""
    azimuth, elevation, distance, energy = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(a, np.float64)) for a in (azimuth, elevation, distance, energy))
    )
    return cls(ambient, camera.camera_position(azimuth, elevation, distance), energy.astype(np.float32))


def paper_lfd_lights() -> Lights:
  """The LFD scene (paper §1.1): ambient 0.35 + 12 lamps at 14.14, az 0/90/180/270 x el -60/0/60, energy 2."""
  az, el = np.meshgrid([0.0, 90.0, 180.0, 270.0], [-60.0, 0.0, 60.0], indexing="ij")
  return Lights.spherical(0.35, az.ravel(), el.ravel(), 14.14, 2.0)


def per_view(lights: "Lights | Sequence[Lights] | None", n: int) -> list[Lights]:
  """One `Lights` per view: None means the paper's LFD lights, a single `Lights` is shared by all n views."""
  if lights is None:
    lights = paper_lfd_lights()
  if isinstance(lights, Lights):
    return [lights] * n
  lights = list(lights)
  if len(lights) != n:
    raise ValueError(f"{len(lights)} Lights for {n} views")
  return lights
