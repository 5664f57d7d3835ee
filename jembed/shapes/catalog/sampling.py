"""Parameter sampling helpers shared by the category builders.

Sampled values are rounded so that `describe()` dicts are short, JSON-friendly and exactly what `build_mesh` uses.
"""

import numpy as np


def uniform(rng: np.random.Generator, low: float, high: float, digits: int = 4) -> float:
  """A Python float drawn uniformly from [low, high), rounded to `digits` decimals."""
  return round(float(rng.uniform(low, high)), digits)


def choice(rng: np.random.Generator, options):
  """One of `options` (a tuple of str / int / bool), returned as the plain Python value."""
  value = options[int(rng.integers(len(options)))]
  return value.item() if isinstance(value, np.generic) else value


def integer(rng: np.random.Generator, low: int, high: int) -> int:
  """A Python int in [low, high] (both inclusive)."""
  return int(rng.integers(low, high + 1))
