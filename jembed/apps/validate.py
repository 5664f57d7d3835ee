"""The whole config checked before any work starts: every launcher calls `validate` (through launch/common.py).

The rules live with the stages that declare the choices (`CONFIG_RULES` of each); this gathers them.
"""

import ml_collections

from jembed.api import verify
from jembed.api import verify_deep
from jembed.data import build
from jembed.data import pipeline
from jembed.embedding import shape_embedding
from jembed.evaluation import image_sets
from jembed.render import backend
from jembed.shapes import sources
from jembed.training import model
from jembed.training import optimizer
from jembed.training import train
from jembed.utils import config_checks

RULES = {
    "seed": config_checks.integer(),
    **sources.CONFIG_RULES,
    **backend.CONFIG_RULES,
    **shape_embedding.CONFIG_RULES,
    **build.CONFIG_RULES,
    **pipeline.CONFIG_RULES,
    **model.CONFIG_RULES,
    **train.CONFIG_RULES,
    **optimizer.CONFIG_RULES,
    **image_sets.CONFIG_RULES,
    **verify.CONFIG_RULES,
    **verify_deep.CONFIG_RULES,
}


def problems(config: ml_collections.ConfigDict) -> list[str]:
  """Every rule the config breaks, as 'config.<field>=<value>: <what it must be>' lines."""
  return config_checks.problems(config, RULES)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field out of range (and how many more there are)."""
  config_checks.validate(config, RULES)
