"""The workdir's layout: every file and folder a stage writes, named once, and the one way cache keys are made.

  workdir/
    provenance.json         what each artifact was made from: settings, inputs' fingerprints  (provenance)
    shapes.json             the shape manifest (`shapes.manifest`): ids, categories, sources, mesh fingerprints
    contact_sheet.png       shapes x their 20 LFD views                           (render.contact_sheet)
    lfd/                    LFD-HoG descriptors and distances, resumable           (embedding.descriptors)
                            descriptors.npy, progress.json, distances.npy, distances.json; beam/: Beam's rows
    shape_embedding.npz     ids, categories, Sammon points, stress                 (embedding.shape_embedding)
    shape_embedding.png     the 2-D map; shape_embedding.json: sizes and timings; skipped_shapes.txt
    tfds/                   the synthetic image dataset (TFDS ArrayRecord)         (data.build)
    dataset.json            where the dataset is, split sizes, build speed; dataset_samples.png
    checkpoints/<step>/     orbax checkpoints                                      (training.checkpoints)
    point_clouds/           surface samples of the shapes, for the shape encoder    (shapes.point_clouds)
    shape_encoder/          the joint (image + point encoder) run: its checkpoints/, metrics.jsonl (training.joint)
    metrics.jsonl           training and validation metrics; loss_curve.png        (training.run_metrics)
    features/<key>/         a frozen backbone's features of the dataset's images   (backbones.feature_cache)
    eval/                   results.json/.md, curves.npz, pr_curves.png, topk_curves.png, retrievals.png;
                            eval/sets/: cached test images (synthetic.npz, photos)  (evaluation)
    queries/                galleries of launch/query.py
    verify/                 each shape's pose-grid renders as features, grid_<...>.npz    (api.verify)
    inversions/             feature inversions of launch/invert.py: images/shapes/twins.png, inversions.json
    .locks/                 one lock file per stage, and a note per holder (PID, command)  (workdir.locks)
    serve/                  the web page's caches: the shape map and thumbnails, made once  (apps.serve.pictures)

Files that a stage writes into a folder of its own (eval/, queries/, inversions/, the dataset's folder; a caller may
point these elsewhere) are named here too, as constants, and joined by the stage.

Every function takes the workdir and returns a path; none creates anything.
"""

import hashlib
import json
import os

MANIFEST = "shapes.json"
PROVENANCE = "provenance.json"
CONTACT_SHEET = "contact_sheet.png"
LFD_DIR = "lfd"
SHAPE_EMBEDDING = "shape_embedding.npz"
SHAPE_MAP = "shape_embedding.png"
SHAPE_EMBEDDING_SUMMARY = "shape_embedding.json"
SKIPPED_SHAPES = "skipped_shapes.txt"
TFDS_DIR = "tfds"
DATASET_SUMMARY = "dataset.json"
DATASET_SAMPLES = "dataset_samples.png"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
LOSS_CURVE = "loss_curve.png"
FEATURES_DIR = "features"
EVAL_DIR = "eval"
QUERIES_DIR = "queries"
INVERSIONS_DIR = "inversions"
POINT_CLOUDS_DIR = "point_clouds"
SHAPE_ENCODER_DIR = "shape_encoder"
LOCKS_DIR = ".locks"
SERVE_DIR = "serve"
VERIFY_DIR = "verify"

# In lfd/.
DESCRIPTORS = "descriptors.npy"
DESCRIPTOR_PROGRESS = "progress.json"
DISTANCES = "distances.npy"
DISTANCES_META = "distances.json"
BEAM_ROWS_DIR = "beam"
# In the dataset's folder (beside TFDS's own files).
DATASET_METADATA = "metadata.json"
# In eval/ (or another folder the evaluation is written to).
RESULTS = "results.json"
RESULTS_TABLE = "results.md"
CURVES = "curves.npz"
PR_CURVES = "pr_curves.png"
TOPK_CURVES = "topk_curves.png"
RETRIEVALS = "retrievals.png"
SYNTHETIC_SETS = "synthetic.npz"
VERIFY_GRID = "grid_{size}px_{azimuths}x{elevations}.npz"  # verification's pose-grid features
VERIFY_DEEP_GRID = "grid_{backbone}_{size}px_{azimuths}x{elevations}.npz"  # the pose grid through a backbone
VERIFY_WEIGHTS = "verify_weights.json"  # the weights the evaluation chose on validation images
LFD_PIXELS = "lfd_pixels_{size}.npz"  # the pixel baseline's views, .format(size=...)
# In inversions/ (or another folder launch/invert.py is pointed to).
INVERTED_IMAGES = "images.png"
INVERTED_SHAPES = "shapes.png"
INVERTED_TWINS = "twins.png"
INVERSIONS_SUMMARY = "inversions.json"


def manifest(workdir: str) -> str:
  return os.path.join(workdir, MANIFEST)


def provenance(workdir: str) -> str:
  return os.path.join(workdir, PROVENANCE)


def contact_sheet(workdir: str) -> str:
  return os.path.join(workdir, CONTACT_SHEET)


def lfd(workdir: str, name: str = "") -> str:
  """`workdir/lfd/` or a file in it (descriptors.npy, progress.json, distances.npy, distances.json)."""
  return os.path.join(workdir, LFD_DIR, name) if name else os.path.join(workdir, LFD_DIR)


def shape_embedding(workdir: str) -> str:
  return os.path.join(workdir, SHAPE_EMBEDDING)


def shape_map(workdir: str) -> str:
  return os.path.join(workdir, SHAPE_MAP)


def shape_embedding_summary(workdir: str) -> str:
  return os.path.join(workdir, SHAPE_EMBEDDING_SUMMARY)


def skipped_shapes(workdir: str) -> str:
  return os.path.join(workdir, SKIPPED_SHAPES)


def tfds_dir(workdir: str) -> str:
  return os.path.join(workdir, TFDS_DIR)


def dataset_summary(workdir: str) -> str:
  return os.path.join(workdir, DATASET_SUMMARY)


def dataset_samples(workdir: str) -> str:
  return os.path.join(workdir, DATASET_SAMPLES)


def checkpoints(workdir: str) -> str:
  return os.path.join(workdir, CHECKPOINTS)


def point_clouds(workdir: str) -> str:
  return os.path.join(workdir, POINT_CLOUDS_DIR)


def shape_encoder(workdir: str) -> str:
  """The joint run's own folder (its checkpoints/ and metrics.jsonl, beside the regression run's)."""
  return os.path.join(workdir, SHAPE_ENCODER_DIR)


def metrics(workdir: str) -> str:
  return os.path.join(workdir, METRICS)


def loss_curve(workdir: str) -> str:
  return os.path.join(workdir, LOSS_CURVE)


def feature_cache(workdir: str, key: str = "") -> str:
  """`workdir/features/` or one backbone's cache in it (`<backbone>-<key>`)."""
  return os.path.join(workdir, FEATURES_DIR, key) if key else os.path.join(workdir, FEATURES_DIR)


def eval_dir(workdir: str, name: str = "") -> str:
  """`workdir/eval/` or a file in it (results.json, results.md, curves.npz, the plots)."""
  return os.path.join(workdir, EVAL_DIR, name) if name else os.path.join(workdir, EVAL_DIR)


def verify_dir(workdir: str, name: str = "") -> str:
  """`workdir/verify/` (verification's pose-grid renders, as features, and its chosen weights) or a file in it."""
  return os.path.join(workdir, VERIFY_DIR, name) if name else os.path.join(workdir, VERIFY_DIR)


def eval_sets(workdir: str, name: str = "") -> str:
  """`workdir/eval/sets/` (cached test images) or a file in it."""
  folder = os.path.join(workdir, EVAL_DIR, "sets")
  return os.path.join(folder, name) if name else folder


def queries(workdir: str, name: str = "") -> str:
  return os.path.join(workdir, QUERIES_DIR, name) if name else os.path.join(workdir, QUERIES_DIR)


def inversions(workdir: str) -> str:
  return os.path.join(workdir, INVERSIONS_DIR)


def lock(workdir: str, name: str = "") -> str:
  """`workdir/.locks/` or a file in it (`<stage>.lock`, `holder.<host>.<pid>.json`)."""
  return os.path.join(workdir, LOCKS_DIR, name) if name else os.path.join(workdir, LOCKS_DIR)


def serve_cache(workdir: str, name: str = "") -> str:
  """`workdir/serve/` (what the web page computes once and keeps) or a file in it."""
  return os.path.join(workdir, SERVE_DIR, name) if name else os.path.join(workdir, SERVE_DIR)


def cache_key(settings, digits: int = 12) -> str:
  """The key of a cache: hex digits of the SHA-1 of `settings` as canonical JSON (sorted keys; other values by str).

  Any change of a setting gives another key, and equal settings give the same key on every machine and run.
  """
  text = settings if isinstance(settings, str) else json.dumps(settings, sort_keys=True, default=str)
  return hashlib.sha1(text.encode()).hexdigest()[:digits]
