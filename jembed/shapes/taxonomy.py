"""The one category table: names, ShapeNet synsets, the aliases our sources use, LFD views and view distributions.

Every stage that asks "which category is this?" goes through `canonical` here, so a category gets the same LFD views
(shape side) and the same training-view distribution (image side) whichever source named it:

  * names as the sources write them: ShapeNet taxonomy names ('airplane,aeroplane,plane'), synset ids ('03001627'),
    ObjectNet3D / PASCAL3D+ ('aeroplane', 'diningtable', 'desk_lamp', 'auto'), IKEA ('bookcase', 'desk', ...);
  * LFD views (paper §1.1, `g_lfd_camera_*_dict`): 20 views at distance 3, one elevation (20 azimuths by 18°) or two
    elevations (10 azimuths by 36°);
  * view distribution (paper §2, `g_view_distribution_params`): which of the paper's five histograms draws the
    synthetic training views.

A category not in the table (sofa, bench, anything a folder of meshes calls its own) keeps its name and gets the
documented default: the chair's LFD views (elevation 20°) and the chair's view histogram — the paper trained on chairs,
and Render for CNN's indoor-furniture statistics are closest to them.
"""

import dataclasses
import json
import pathlib
from typing import Iterable

# The 55 ShapeNetCore.v2 synsets (v1 uses a subset), first name of each WordNet synset as in taxonomy.json.
SHAPENETCORE = {
    "02691156": "airplane",
    "02747177": "trash bin",
    "02773838": "bag",
    "02801938": "basket",
    "02808440": "bathtub",
    "02818832": "bed",
    "02828884": "bench",
    "02843684": "birdhouse",
    "02871439": "bookshelf",
    "02876657": "bottle",
    "02880940": "bowl",
    "02924116": "bus",
    "02933112": "cabinet",
    "02942699": "camera",
    "02946921": "can",
    "02954340": "cap",
    "02958343": "car",
    "02992529": "cellphone",
    "03001627": "chair",
    "03046257": "clock",
    "03085013": "keyboard",
    "03207941": "dishwasher",
    "03211117": "display",
    "03261776": "earphone",
    "03325088": "faucet",
    "03337140": "file cabinet",
    "03467517": "guitar",
    "03513137": "helmet",
    "03593526": "jar",
    "03624134": "knife",
    "03636649": "lamp",
    "03642806": "laptop",
    "03691459": "loudspeaker",
    "03710193": "mailbox",
    "03759954": "microphone",
    "03761084": "microwave",
    "03790512": "motorbike",
    "03797390": "mug",
    "03928116": "piano",
    "03938244": "pillow",
    "03948459": "pistol",
    "03991062": "flowerpot",
    "04004475": "printer",
    "04074963": "remote",
    "04090263": "rifle",
    "04099429": "rocket",
    "04225987": "skateboard",
    "04256520": "sofa",
    "04330267": "stove",
    "04379243": "table",
    "04401088": "telephone",
    "04460130": "tower",
    "04468005": "train",
    "04530566": "watercraft",
    "04554684": "washer",
}


@dataclasses.dataclass(frozen=True)
class Category:
  """One row of the table.

  Attributes:
    name: the canonical name.
    aliases: other names sources use for it (lower case).
    lfd_elevations: the LFD views' elevations in degrees: one (20 azimuths by 18°) or two (10 azimuths by 36°).
    view_histogram: the paper's (azimuth bin weights [16], elevation bin weights [18], tilt std in degrees).
  """

  name: str
  aliases: tuple[str, ...]
  lfd_elevations: tuple[float, ...]
  view_histogram: tuple[tuple[float, ...], tuple[float, ...], float]

  @property
  def synsets(self) -> tuple[str, ...]:
    """The ShapeNetCore synset ids named like this category."""
    return tuple(s for s, n in SHAPENETCORE.items() if n == self.name)


_FLAT_AZIMUTH = (1.0,) * 16
_FLAT_ELEVATION = (1.0,) * 18
_CHAIR_ELEVATION = (1,) * 7 + (23, 57, 212, 315, 181, 80, 36, 26, 21, 18, 20)
_CHAIR_HISTOGRAM = ((93, 90, 79, 66, 56, 49, 45, 44, 45, 46, 48, 51, 56, 63, 75, 87), _CHAIR_ELEVATION, 3.0)

TABLE: dict[str, Category] = {
    c.name: c
    for c in (
        Category("chair", (), (20.0,), _CHAIR_HISTOGRAM),
        Category("table", ("diningtable", "dining table"), (20.0,), (_FLAT_AZIMUTH, _CHAIR_ELEVATION, 3.0)),
        Category(
            "car",
            ("auto", "automobile"),
            (10.0,),
            (
                (91, 87, 73, 58, 50, 50, 56, 65, 69, 62, 52, 44, 42, 49, 64, 81),
                (0,) * 7 + (24, 227, 521, 86, 26, 18, 15, 18, 10, 10, 10),
                3.0,
            ),
        ),
        Category(
            "airplane",
            ("aeroplane", "plane"),
            (-30.0, 0.0),
            (
                (65, 70, 74, 75, 71, 64, 55, 48, 45, 47, 53, 61, 66, 67, 65, 64),
                (19, 13, 15, 18, 23, 35, 64, 125, 223, 216, 95, 33, 22, 22, 18, 15, 15, 19),
                10.0,
            ),
        ),
        Category(
            "lamp", ("desk_lamp", "desk lamp", "floor_lamp"), (-30.0, 0.0), (_FLAT_AZIMUTH, _FLAT_ELEVATION, 10.0)
        ),
    )
}
DEFAULT = TABLE["chair"]  # what a category not in the table gets (its name is kept)
_BY_ALIAS = {alias: c.name for c in TABLE.values() for alias in c.aliases}


def canonical(category: str) -> str:
  """The table's name of a category given as a name, a ShapeNet taxonomy name ('airplane,aeroplane,plane'), a synset
  id or an alias; anything else comes back lower-cased and stripped (the first comma-separated name)."""
  name = str(category).split(",")[0].strip().lower()
  name = SHAPENETCORE.get(name, name)
  return _BY_ALIAS.get(name, name)


def lookup(category: str) -> Category:
  """The row of a category (see `canonical`); the documented default (the chair's views) when it has none."""
  return TABLE.get(canonical(category), DEFAULT)


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
