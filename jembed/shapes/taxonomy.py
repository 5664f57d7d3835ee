"""ShapeNetCore synset ids and their names, so that `categories=['chair']` works without a taxonomy.json."""

import json
import pathlib
from typing import Iterable

# The 55 ShapeNetCore.v2 synsets (v1 uses a subset), first name of each WordNet synset as in taxonomy.json.
SHAPENETCORE = {
    "02691156": "airplane", "02747177": "trash bin", "02773838": "bag", "02801938": "basket", "02808440": "bathtub",
    "02818832": "bed", "02828884": "bench", "02843684": "birdhouse", "02871439": "bookshelf", "02876657": "bottle",
    "02880940": "bowl", "02924116": "bus", "02933112": "cabinet", "02942699": "camera", "02946921": "can",
    "02954340": "cap", "02958343": "car", "02992529": "cellphone", "03001627": "chair", "03046257": "clock",
    "03085013": "keyboard", "03207941": "dishwasher", "03211117": "display", "03261776": "earphone",
    "03325088": "faucet", "03337140": "file cabinet", "03467517": "guitar", "03513137": "helmet", "03593526": "jar",
    "03624134": "knife", "03636649": "lamp", "03642806": "laptop", "03691459": "loudspeaker", "03710193": "mailbox",
    "03759954": "microphone", "03761084": "microwave", "03790512": "motorbike", "03797390": "mug",
    "03928116": "piano", "03938244": "pillow", "03948459": "pistol", "03991062": "flowerpot", "04004475": "printer",
    "04074963": "remote", "04090263": "rifle", "04099429": "rocket", "04225987": "skateboard", "04256520": "sofa",
    "04330267": "stove", "04379243": "table", "04401088": "telephone", "04460130": "tower", "04468005": "train",
    "04530566": "watercraft", "04554684": "washer",
}


def name(synset: str) -> str:
  """The category name of a synset id; the id itself when it is not a ShapeNetCore synset."""
  return SHAPENETCORE.get(synset, synset)


def names_from_taxonomy(path: pathlib.Path) -> dict[str, str]:
  """`{synset id: first name}` from a ShapeNet `taxonomy.json`, or {} when there is none."""
  if not path.is_file():
    return {}
  entries = json.loads(path.read_text())
  return {e["synsetId"]: e["name"].split(",")[0].strip() for e in entries if "synsetId" in e and "name" in e}


def resolve(categories: Iterable[str], names: dict[str, str], available: list[str]) -> set[str]:
  """Synset ids for `categories` given as ids or names; empty means all.

  Raises:
    ValueError: a category that is neither an available synset id nor a known name (the message lists what exists).
  """
  by_name = {**{v: k for k, v in SHAPENETCORE.items()}, **{v: k for k, v in names.items()}}
  wanted = set()
  for category in categories:
    synset = category if category in available else by_name.get(category)
    if synset is None or synset not in available:
      listing = ", ".join(f"{s} ({names.get(s) or name(s)})" for s in available)
      raise ValueError(f"unknown ShapeNet category {category!r}; this root has: {listing}")
    wanted.add(synset)
  return wanted
