"""VGG19 perceptual loss (PAPER: layers 2, 7, 12, 21, 30) from local weights only; never a random VGG.

The indices are read as slice boundaries (pix2pixHD's VGGLoss): features[0:2], [2:7], [7:12],
[12:21], [21:30] end at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, weighted 1/32 .. 1.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import FusionkitError

SLICE_BOUNDS = (0, 2, 7, 12, 21, 30)
LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def cached_vgg19_weights() -> Path | None:
    """A VGG19 ImageNet checkpoint already in the torch hub or Hugging Face (timm) cache, if any."""
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    patterns = [
        str(torch_home / "hub" / "checkpoints" / "vgg19-*.pth"),
        str(hf_home / "hub" / "models--timm--vgg19.tv_in1k" / "snapshots" / "*" / "model.safetensors"),
    ]
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    return None


def load_vgg19_features(path: str | Path) -> nn.Sequential:
    """torchvision's VGG19 ``features`` with weights from a torchvision- or timm-style state dict."""
    from torchvision.models import vgg19

    path = Path(path)
    if not path.exists():
        raise FusionkitError(f"--vgg-weights: file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FusionkitError(f"--vgg-weights: cannot read {path}: {type(exc).__name__}: {exc}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    features = {k.split("features.", 1)[1]: v for k, v in state.items() if "features." in k}
    net = vgg19().features
    missing = [k for k in net.state_dict() if k not in features]
    if missing:
        raise FusionkitError(f"--vgg-weights: {path} is not a VGG19 state dict (missing {missing[:3]})")
    net.load_state_dict({k: features[k] for k in net.state_dict()})
    return net


class VGGPerceptualLoss(nn.Module):
    """Weighted L1 between VGG19 features of two images in [0, 1] (frozen, eval mode)."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        for module in features:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # in-place ReLUs would overwrite the features we keep
        self.slices = nn.ModuleList(
            features[a:b] for a, b in zip(SLICE_BOUNDS[:-1], SLICE_BOUNDS[1:])
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGPerceptualLoss":
        return super().train(False)  # always frozen

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape[1] == 1:
            pred, target = pred.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
        x, y = (pred - self.mean) / self.std, (target - self.mean) / self.std
        total = pred.new_zeros((), dtype=torch.float32)
        for weight, block in zip(LAYER_WEIGHTS, self.slices):
            x, y = block(x), block(y)
            total = total + weight * (x.float() - y.detach().float()).abs().mean()
        return total


def build_perceptual_loss(weights: str | Path | None) -> tuple[VGGPerceptualLoss | None, str]:
    """The loss and a line saying where its weights came from, or (None, why it is off)."""
    source = Path(weights) if weights else cached_vgg19_weights()
    if source is None:
        return None, (
            "perceptual loss off: no VGG19 ImageNet weights found (pass --vgg-weights PATH to a "
            "torchvision or timm VGG19 state dict; looked in the torch hub and Hugging Face caches)"
        )
    return VGGPerceptualLoss(load_vgg19_features(source)), f"perceptual loss on: VGG19 weights from {source}"
