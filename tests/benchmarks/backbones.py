r"""Backbone feature throughput: `jembed.backbones.features` (jitted) against the reference library (torch) in one run.

  pip install -e ".[reference]"                      # torch (CPU wheel), torchvision, timm, open_clip_torch
  python tests/benchmarks/backbones.py               # resnet50, vit_small_patch14_dinov2, openclip ViT-B-16, caffenet,
                                                     # efficientnet_lite0
  python tests/benchmarks/backbones.py --arch resnet50 --batch 32 --size 224 --repeats 3

Each backbone is built at full size with random weights by its library (timm `resnet50`, timm
`vit_small_patch14_dinov2` at `--size` with dynamic image size, OpenCLIP `ViT-B-16`, timm `tf_efficientnet_lite0`;
CaffeNet, which has no torch library, as torch ops), saved to a temporary .safetensors (a .caffemodel for CaffeNet)
and loaded by `jembed.backbones.load_pretrained`; both sides then embed the same uint8 batch (`--batch` images of
`--size` px; CaffeNet at 227): ours = `jax.jit(features)` on the device JAX picks (compile and a warm-up call excluded,
`block_until_ready`), peer = the library's forward under `torch.inference_mode()` on the CPU (normalization
included on both sides). Reported: images/s wall-clock, best of `--repeats`, and the largest feature difference
relative to the features' scale. The last stdout line is one JSON object: per backbone ours/peer images/s, and
"ratio" = the geometric mean of ours / peer over the backbones.
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fixtures"))
import jax  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import make_backbone_fixtures as fixtures  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

from jembed import backbones  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.backbones import caffe_proto  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

ARCHS = ("resnet50", "vit_small_patch14_dinov2", "openclip_ViT-B-16", "caffenet", "efficientnet_lite0")
TIMM_NAMES = {"efficientnet_lite0": "tf_efficientnet_lite0"}  # timm's name where it is not ours


def _best(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return min(times)


def torch_model(arch: str, size: int, folder: str):
  """(forward on a uint8 NHWC numpy batch -> numpy features, weight file path) of the reference library."""
  torch, timm, open_clip, _ = fixtures.import_torch_libraries(arch.startswith("openclip_"))
  from safetensors.torch import save_file  # pylint: disable=g-import-not-at-top

  path = os.path.join(folder, f"{arch}.safetensors")
  if arch == "caffenet":
    return _torch_caffenet(torch, folder)
  if arch.startswith("openclip_"):
    model = open_clip.create_model(arch[len("openclip_") :], pretrained=None).eval()
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    forward = model.encode_image
  else:
    kw = dict(dynamic_img_size=True) if "vit" in arch else {}
    model = timm.create_model(TIMM_NAMES.get(arch, arch), pretrained=False, **kw).eval()
    dc = timm.data.resolve_data_config({}, model=model)
    mean, std = dc["mean"], dc["std"]
    forward = lambda x: model.forward_head(model.forward_features(x), pre_logits=True)
  fixtures.randomize(model, 0)
  save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)

  def run(images):
    with torch.inference_mode():
      return forward(fixtures.torch_input(torch, images, mean, std)).numpy()

  return run, path


def _torch_caffenet(torch, folder: str):
  spec = backbones.get("caffenet")
  rng = np.random.default_rng(0)
  groups, kernels, channels, layers = (1, 2, 1, 2, 2), (11, 5, 3, 3, 3), 3, []
  for i, (w, g, k) in enumerate(zip(spec.config, groups, kernels)):
    layers.append(
        (
            f"conv{i + 1}",
            "Convolution",
            [rng.normal(0, (channels // g * k * k) ** -0.5, (w, channels // g, k, k)), rng.normal(0, 0.1, w)],
        )
    )
    channels = w
  path = os.path.join(folder, "caffenet.caffemodel")
  caffe_proto.write_caffemodel(path, layers, v1=True, legacy_dims=True)
  weights = [[torch.from_numpy(np.asarray(b, np.float32)) for b in blobs] for _, _, blobs in layers]
  F = torch.nn.functional
  lrn = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
  mean = torch.tensor(spec.mean).view(1, 3, 1, 1)

  def run(images):
    with torch.inference_mode():
      x = torch.from_numpy(images[..., ::-1].copy()).float().permute(0, 3, 1, 2) - mean
      for i, (w, b) in enumerate(weights):
        x = F.relu(F.conv2d(x, w, b, stride=4 if i == 0 else 1, padding=(0, 2, 1, 1, 1)[i], groups=groups[i]))
        if i in (0, 1):
          x = lrn(F.max_pool2d(x, 3, 2, ceil_mode=True))
      return F.max_pool2d(x, 3, 2, ceil_mode=True).reshape(x.shape[0], -1).numpy()

  return run, path


def bench(arch: str, args, folder: str) -> dict:
  size = 227 if arch == "caffenet" else args.size
  peer_fn, path = torch_model(arch, size, folder)
  spec, variables = backbones.load_pretrained(arch, path, image_size=size)
  images = np.random.default_rng(1).integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8)
  fn = jax.jit(backbones.features, static_argnums=0)
  variables, device_images = jax.device_put(variables), jax.device_put(images)
  ours_out = np.asarray(fn(spec, variables, device_images).block_until_ready())  # compile + warm-up
  ours = args.batch / _best(lambda: fn(spec, variables, device_images).block_until_ready(), args.repeats)
  peer_out = peer_fn(images)
  peer = args.batch / _best(lambda: peer_fn(images), args.repeats)
  diff = float(np.abs(ours_out - peer_out).max() / np.abs(peer_out).max())
  print(
      f"{arch} ({size} px, batch {args.batch}, F={spec.features}): jembed {ours:,.1f} images/s "
      f"({jax.default_backend()}), torch {peer:,.1f} images/s (cpu), ratio {ours / peer:.2f}, "
      f"max relative difference {diff:.1e}",
      flush=True,
  )
  return dict(ours=round(ours, 2), peer=round(peer, 2), ratio=round(ours / peer, 3), rel_diff=diff)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--arch", action="append", help=f"backbones to run (default: {', '.join(ARCHS)})")
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--size", type=int, default=224, help="input size (CaffeNet always 227)")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  results = {}
  with tempfile.TemporaryDirectory() as folder:
    for arch in args.arch or ARCHS:
      results[arch] = bench(arch, args, folder)
  ratio = float(np.exp(np.mean([np.log(r["ratio"]) for r in results.values()])))
  print(
      json.dumps(
          {
              "benchmark": "backbone_features",
              "unit": "images/s",
              "batch": args.batch,
              "size": args.size,
              "backend": jax.default_backend(),
              "backbones": results,
              "ratio": round(ratio, 3),
          }
      )
  )


if __name__ == "__main__":
  main()
