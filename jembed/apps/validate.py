"""The whole config checked before any work starts: every launcher calls `validate` (through launch/common.py).

The rules live with the stages that declare the choices (`CONFIG_RULES` of each); this gathers them.
"""

import os

import ml_collections

from jembed import backbones
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
  """Every rule the config breaks, as 'config.<field>=<value>: <what it must be>' lines, then weight files that are
  not there (found now rather than after training)."""
  found = config_checks.problems(config, RULES)
  verify_config = config.get("verify")
  if not found and verify_config is not None and verify_config.get("backbone", ""):
    try:
      path = backbones.weights_path(verify_config.get("backbone_weights", "installed"), verify_config.backbone)
      if not os.path.exists(path):
        found.append(f"config.verify.backbone_weights={path!r}: no such file")
    except (OSError, ValueError) as e:
      found.append(f"config.verify.backbone={verify_config.backbone!r}: {e}")
  return found


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first problem of `problems` (and how many more there are)."""
  config_checks.raise_first(problems(config))
