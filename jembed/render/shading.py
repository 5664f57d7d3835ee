"""The shading model of both backends: gray Lambertian, flat normals facing the viewer, ambient + point lamps.

    value = clip(albedo · (ambient + Σ_l energy_l · falloff(r_l) · max(0, n·l_l)), 0, 1)

The stored 8-bit value is `display(value)`, the sRGB encoding Blender's colour management applied to the paper's PNGs.

`shade` is the numpy reference (the embree backend calls it); `glsl_shade` writes the same function for the EGL
backend from the constants here, so the two cannot drift apart.
"""

import numpy as np

from jembed.render import lights as lights_lib

# Paper: diffuse colour 0.6 gray x diffuse intensity 0.8 (Blender Internal multiplies the two).
DEFAULT_ALBEDO = 0.48

# Blender Internal's point-lamp falloff 'INVERSE_SQUARE' is, in its source (shadeoutput.c), not 1/r² but
# D / (D + r²) with D the lamp's `distance`, 25 by default for lamps created with lamp_add as the paper does.
LAMP_DISTANCE = 25.0


def display(linear: np.ndarray) -> np.ndarray:
  """The sRGB display transform applied to linear shaded values in [0, 1] before they are stored as 8-bit.

  Blender 2.7x saves PNGs through its colour management (display device sRGB, view 'Default'), so the paper's renders
  are the sRGB encoding of the linear shading: a mid-gray 0.43 is stored as 0.69, not 0.43. Supersamples are averaged
  in linear light first, as Blender's filter does.
  """
  x = np.asarray(np.clip(linear, 0.0, 1.0))  # a new array (0-d for a scalar): the power below overwrites it
  high = x > 0.0031308
  low = 12.92 * x
  # The power only where it is used: numpy's float32 pow takes a slow path at 0, the background of every rendered
  # view; 0.13 -> 0.075 ms per 128² view of the render benchmark, with the same values (each element's pow is the same).
  np.power(x, 1 / 2.4, out=x, where=high)
  return np.where(high, 1.055 * x - 0.055, low)


def falloff(r2: np.ndarray) -> np.ndarray:
  """Blender Internal inverse-square falloff for squared lamp distance r2."""
  return LAMP_DISTANCE / (LAMP_DISTANCE + r2)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """Unit geometric normals (v1 - v0) x (v2 - v0); zero for degenerate faces (they then get ambient light only).

  Args:
    vertices: float[V, 3].
    faces: int[F, 3].

  Returns:
    float32[F, 3].
  """
  tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
  n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
  norm = np.linalg.norm(n, axis=-1, keepdims=True)
  return np.where(norm > 0, n / np.maximum(norm, 1e-300), 0.0).astype(np.float32)


def shade(
    points: np.ndarray, normals: np.ndarray, eye: np.ndarray, lights: lights_lib.Lights, albedo: float = DEFAULT_ALBEDO
) -> np.ndarray:
  """Gray value of surface points seen from `eye`.

  ShapeNet's triangle winding is inconsistent, so each normal is flipped to face the viewer and both sides are lit.

  Args:
    points: float[P, 3] surface points, world frame.
    normals: float[P, 3] unit face normals (either orientation).
    eye: float[3] camera position.
    lights: the view's lights.
    albedo: diffuse reflectance.

  Returns:
    float32[P] in [0, 1].
  """
  points = np.asarray(points, np.float32)
  normals = np.asarray(normals, np.float32)
  facing = np.sum(normals * (np.asarray(eye, np.float32) - points), -1, keepdims=True)
  normals = np.where(facing < 0, -normals, normals)
  light = np.full(len(points), lights.ambient, np.float32)
  for position, energy in zip(lights.positions, lights.energies):
    to_lamp = position - points
    r2 = np.sum(to_lamp * to_lamp, -1)
    cosine = np.maximum(0.0, np.sum(normals * to_lamp, -1) / np.sqrt(r2))
    light += energy * falloff(r2) * cosine
  return np.clip(albedo * light, 0.0, 1.0).astype(np.float32)


def glsl_shade(num_lamps: int) -> str:
  """GLSL mirror of `shade`, line by line, for a fixed lamp count (included by the EGL fragment shader).

  The count is a compile-time constant because llvmpipe turns a uniform-bounded loop over uniform arrays into
  per-lane gathers, several times slower than the unrolled loop with constant indices.
  """
  return f"""
const int NUM_LAMPS = {num_lamps};
uniform float u_ambient;
uniform vec3 u_lamp_pos[{max(1, num_lamps)}];
uniform float u_lamp_energy[{max(1, num_lamps)}];
uniform float u_albedo;

float falloff(float r2) {{ return {LAMP_DISTANCE:.8f} / ({LAMP_DISTANCE:.8f} + r2); }}

float shade(vec3 p, vec3 n, vec3 eye) {{
  if (dot(n, eye - p) < 0.0) n = -n;
  float light = u_ambient;
  for (int i = 0; i < NUM_LAMPS; ++i) {{
    vec3 to_lamp = u_lamp_pos[i] - p;
    float r2 = dot(to_lamp, to_lamp);
    light += u_lamp_energy[i] * falloff(r2) * max(0.0, dot(n, to_lamp) / sqrt(r2));
  }}
  return clamp(u_albedo * light, 0.0, 1.0);
}}
"""
