r"""The built-in demo: the procedural catalog (6 categories x 32 shapes), small enough for a laptop CPU.

Launch (each stage writes into the workdir; the next reads from it):
  python -m launch.render_views --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.embed_shapes --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.build_dataset --config=configs/default.py --workdir=/tmp/jembed

Override any field from the command line, e.g. `--config.shapes.limit=8 --config.render.backend=embree`.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the default config; `arg` is `key=value,...` overrides of `shapes` fields (e.g. `root=/data,limit=8`)."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  # Where the shapes come from (names fixed: later stages and scripts rely on them).
  config.shapes = ml_collections.ConfigDict(dict(
      source="catalog",    # 'catalog' | 'shapenet' | 'folder'.
      root="",             # ShapeNetCore root or mesh folder; unused by the catalog.
      categories=(),       # Names (or ShapeNet synset ids); empty = all.
      limit=0,             # At most this many shapes per category; 0 = all.
      up_axis="y",         # Up axis of the source meshes: 'y' (ShapeNet, the catalog) or 'z' (converted to +Y).
      front="auto",        # Front direction of the sources in their own frame ('+x', '-z', ...); 'auto' knows
                           # ShapeNet v1 (+x), v2 and the catalog (-z). ObjectNet3D: up_axis='z', front='-y'.
  ))

  # The light-field views of the shape side (paper section 1.1): 20 per shape, category-specific elevations.
  config.render = ml_collections.ConfigDict(dict(
      backend="auto",      # 'auto' (EGL if a headless context opens, else embree) | 'egl' | 'embree'.
      size=224,            # Square render size; a unit-radius shape spans ~175 px, cropped and shrunk to 120 px.
      antialias=2,         # Supersampling per axis (the paper rendered with 8x OSA).
  ))
  config.lfd = ml_collections.ConfigDict(dict(
      hog_size=120,        # The paper stretches each tight crop to 120 x 120 before the HoG pyramid.
      batch_shapes=16,     # Shapes per HoG batch (memory bound: 20 views x this many images at a time).
  ))

  # Sammon MDS of the LFD-HoG distances (paper section 1.3).
  config.mds = ml_collections.ConfigDict(dict(
      dim=128,             # The paper's embedding dimension (its committed results used 100).
      max_iter=500,        # MATLAB's mdscale used 128 iterations; our step converges in fewer or stops on tol.
      tol=1e-4,            # Relative stress change (MATLAB TolFun).
      method="auto",       # 'exact' (full N x N matrix) | 'landmark' (large N) | 'auto' (exact up to exact_max_n).
      exact_max_n=20000,
  ))

  # The synthetic image side (paper section 2), built by launch/build_dataset.py into workdir/tfds.
  config.data = ml_collections.ConfigDict(dict(
      images_per_shape=24,  # The paper rendered 125 per shape.
      image_size=128,       # Square training images (227 for the paper's CaffeNet); crops are stretched to it.
      backgrounds="",       # Folder of background photos (SUN2012 for paper runs); empty = built-in procedural ones.
      render_size=0,        # Square render the object is cropped from; 0 = 1.5 x image_size.
      antialias=2,          # Supersampling per axis of those renders.
      views_dir="",         # Folder of <category>.txt view samples ('az el tilt dist' lines); empty = paper histograms.
      distance=3.0,         # Camera distance (the paper fixes 3 and ignores a view file's distances).
      max_lamps=4,          # 0..4 random point lamps per image (Render for CNN: 6).
      ambient=(0.0, 1.0),   # Uniform ambient light range.
      albedo="jitter",      # 'jitter' (gray level + colour tint per image, for the textures we lack) | 'gray' (0.48).
      albedo_range=(0.3, 0.8),
      tint=0.3,             # Largest per-channel deviation of the jittered colour.
      truncation=0.05,      # Crop jitter ratio (paper 0.05); 0 = tight crops.
      clutter_ratio=0.9,    # Share of photo (or procedural) backgrounds; the rest are flat gray (paper 0.9).
      background_scale=1.5,  # Photos resized to a shorter side of this x render_size (0 = paper's unscaled crops).
      split_by="image",     # 'image' (the paper's 90/10 split) | 'shape' (held-out shapes, per category).
      split_fractions=(0.9, 0.05, 0.05),  # train / validation / test; a 0 omits that split.
      workers=0,            # Rendering processes; 0 = one per CPU core. Does not change the images.
      sample_sheet=24,      # Examples shown in workdir/dataset_samples.png.
  ))

  # The input pipeline (grain over the ArrayRecord files) that feeds training.
  config.input = ml_collections.ConfigDict(dict(
      batch_size=64,        # Global batch, split over processes and then devices.
      num_epochs=0,         # 0 = repeat forever (reshuffled every epoch).
      read_threads=4,       # grain read/decode threads per process.
      prefetch=256,         # Examples buffered ahead per process.
      decode_processes=0,   # >0: decode in that many grain processes (multi-core hosts; needs absl flags parsed).
  ))

  _apply_overrides(config, arg)
  return config


def _apply_overrides(config: ml_collections.ConfigDict, arg: str | None) -> None:
  """`root=/data/ShapeNetCore.v1,limit=8,categories=chair+table` sets fields of `config.shapes`."""
  if not arg:
    return
  for item in arg.split(","):
    key, _, value = item.partition("=")
    if key == "categories":
      config.shapes.categories = tuple(v for v in value.split("+") if v)
    elif key == "limit":
      config.shapes.limit = int(value)
    else:
      config.shapes[key] = value
