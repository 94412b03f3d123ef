"""VGG19 perceptual loss (PAPER: layers 2, 7, 12, 21, 30) from local weights only; never a random VGG.

The indices are read as slice boundaries (pix2pixHD's VGGLoss): features[0:2], [2:7], [7:12],
[12:21], [21:30] end at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, weighted 1/32 .. 1.
"""

from __future__ import annotations

import glob
import os
import pickle
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import FusionkitError, first_line, param

SLICE_BOUNDS = (0, 2, 7, 12, 21, 30)
LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: What the ``vgg_weights`` option must name, as its one-line errors say.
EXPECTED = "expected VGG19 weights as a .safetensors file or a torch state dict readable with weights_only=True"


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
        raise FusionkitError(f"{param('vgg_weights')}: file not found: {path}")
    state = _read_state_dict(path)
    features = {k.split("features.", 1)[1]: v for k, v in state.items() if "features." in k and isinstance(v, Tensor)}
    net = vgg19().features
    missing = [k for k in net.state_dict() if k not in features]
    if missing:
        raise _wrong_file(path, f"a state dict that is not a VGG19 state dict (missing {missing[:3]})")
    reshaped = [k for k, v in net.state_dict().items() if features[k].shape != v.shape]
    if reshaped:
        raise _wrong_file(path, f"a state dict that is not a VGG19 state dict ({reshaped[:3]} of other shapes)")
    net.load_state_dict({k: features[k] for k in net.state_dict()})
    return net


def _wrong_file(path: Path, found: str) -> FusionkitError:
    """The one-line error for VGG weights that are not what they should be: what is expected, what was found."""
    return FusionkitError(f"{param('vgg_weights')} {path}: {EXPECTED}; found {found}")


def _file_kind(path: Path) -> str:
    """What the first bytes say ``path`` is, whatever its name: safetensors (an 8-byte length, then a JSON
    header), torch (a zip archive or a pickle) or neither."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:] == b"{":
        return "safetensors"
    if head.startswith((b"PK\x03\x04", b"\x80")):
        return "torch"
    return "neither"


def _read_state_dict(path: Path) -> dict:
    """The tensors in ``path``, read as its content says; a pickle is loaded weights-only, never as code."""
    kind = _file_kind(path)
    if kind == "neither":
        raise _wrong_file(path, "neither kind (not a safetensors, zip or pickle file)")
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            # A handle: torch.load would read a path named .safetensors as safetensors. Its notes on pickle
            # protocols are silenced: the file is read weights-only or refused in the one line below.
            with path.open("rb") as handle, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                state = torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise _wrong_file(path, "a pickle holding objects other than tensors, which fusionkit never loads") from None
    except Exception as exc:  # torch's messages run to many lines: name the kind, quote only safetensors'
        detail = f" ({first_line(exc)})" if kind == "safetensors" else " (damaged or cut short)"
        raise _wrong_file(path, f"a {kind} file that cannot be read{detail}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise _wrong_file(path, f"a {type(state).__name__}, not a state dict")
    return state


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
            f"perceptual loss off: no VGG19 ImageNet weights found (pass {param('vgg_weights')} PATH to a "
            "torchvision or timm VGG19 state dict; looked in the torch hub and Hugging Face caches)"
        )
    return VGGPerceptualLoss(load_vgg19_features(source)), f"perceptual loss on: VGG19 weights from {source}"
