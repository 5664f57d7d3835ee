r"""Finds the 3D shapes nearest to your photos in a trained run's joint space, and each photo's viewpoint.

  python -m launch.query --workdir=/tmp/jembed --image=photo.jpg
  python -m launch.query --workdir=/tmp/jembed --image=a.jpg --image=b.png --top_k=10
  python -m launch.query --workdir=/tmp/jembed --images=search_results/        # several photos of one object, fused
  python -m launch.query --workdir=/tmp/jembed --image=a.jpg --image=b.jpg --fuse

Prints, for each photo, its predicted azimuth / elevation / tilt (when the network has the viewpoint head) and the
ranked shape ids with their categories and distances, and writes a gallery PNG (default: workdir/queries/<photo
name>.png): the photo, the top-1 shape's silhouette at the predicted pose over it, the top-1 shape rendered at that
pose, then the ranked shapes. With --fuse (implied by --images) the photos are taken as views of one object: each
gets one line (pose, top-1), then the fused ranking, and workdir/queries/fused.png shows the photos and the fused
shapes. Photos should be cropped to the object, like the training images.

  python -m launch.query --workdir=/tmp/jembed --image=photo.jpg --verify

--verify re-ranks each photo's K nearest shapes (config.verify.k, 20) by rendering them at pose hypotheses and
comparing the renders with the photo (jembed/api/verify.py), prints the verified ranking (its fused scores) and the
refined pose, and the gallery draws the verified first shape at the refined pose over the photo. The first --verify
on a run renders its pose grid once (~1 min for 200 shapes on 2 CPU cores, kept in workdir/verify/).
"""

import os

from absl import app
from absl import flags

from jembed.api import fusion
from jembed.api import query
from jembed.workdir import paths
from launch import common

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "A trained run's folder (launch/demo.py or launch/train.py).", required=True
)
_IMAGES = flags.DEFINE_multi_string("image", [], "Photo file(s) to look up; repeat the flag for several.")
_FOLDER = flags.DEFINE_string(
    "images", "", "A folder of photos of one object (e.g. an image search's results), " "fused into one ranking."
)
_FUSE = flags.DEFINE_bool("fuse", False, "Fuse the --image photos into one ranking (they show one object).")
_FUSION = flags.DEFINE_enum(
    "fusion",
    fusion.DEFAULT,
    list(fusion.FUSIONS),
    "How to fuse: the mean of the photos' points, of their distances, or of their ranks.",
)
_TOP_K = flags.DEFINE_integer("top_k", 5, "Shapes to list per photo.", lower_bound=1)
_VERIFY = flags.DEFINE_bool(
    "verify", False, "Verify the shortlist by rendering: re-rank each photo's K nearest shapes and refine its pose."
)
_OUT_DIR = flags.DEFINE_string("out_dir", "", "Where the gallery PNGs go; empty = workdir/queries.")


def _print_matches(matches) -> None:
  for m in matches:
    print(f"  {m.rank:>3}  {m.shape_id:<40} {m.category:<12} {m.distance:.4f}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  with common.user_errors():
    photo_paths = list(_IMAGES.value) + (query.photos_in(_FOLDER.value) if _FOLDER.value else [])
    if not photo_paths:
      raise ValueError("give photos with --image=PATH (repeatable) or --images=FOLDER")
    fuse = _FUSION.value if (_FUSE.value or _FOLDER.value) else ""
    query.check_workdir(_WORKDIR.value)
    out_dir = _OUT_DIR.value or paths.queries(_WORKDIR.value)
    common.check_workdir(out_dir, "--out_dir")  # before any work: not after the ranking was printed
    result = query.query(_WORKDIR.value, photo_paths, _TOP_K.value, fuse=fuse, verify=_VERIFY.value)
    names = query.gallery_names(result.paths)
    for i, (path, matches, photo) in enumerate(zip(result.paths, result.matches, result.photos)):
      pose = result.poses[i] if result.poses else None
      if fuse:
        top = matches[0]
        print(f"{path}: {f'pose {pose}, ' if pose else ''}top-1 {top.shape_id} ({top.category}, {top.distance:.4f})")
        continue
      print(f"{path}:")
      print(f"  pose: {pose}" if pose else "  pose: - (this network has no viewpoint head)")
      refined = result.refined[i] if result.refined else None
      if refined:
        print(f"  refined pose (verified): {refined}")
        print("  verified ranking (fused score, lower is better):")
      _print_matches(matches)
      gallery = query.write_gallery(
          _WORKDIR.value,
          photo,
          matches,
          os.path.join(out_dir, names[i]),
          pose=refined or pose,
          verified=refined is not None,
      )
      print(f"  gallery: {gallery}")
    if fuse:
      print(
          f"fused ranking of {len(photo_paths)} photos ({fuse}): {', '.join(os.path.basename(p) for p in photo_paths)}"
      )
      _print_matches(result.fused)
      print(f"  gallery: {query.write_fused_gallery(_WORKDIR.value, result, os.path.join(out_dir, 'fused.png'))}")


if __name__ == "__main__":
  common.run(main, quiet=True)
