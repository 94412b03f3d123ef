"""From exposures in [0, 1] to the network's input and back: normalisation, colour mode, padding.

Train, bench and fuse all go through these functions so a model sees the same data everywhere.
In ``y`` colour mode the network fuses luma only and chroma is fused by DeepFuse's rule.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.transforms import fuse_chroma, from_network_range, rgb_to_ycbcr, std_normalize, to_network_range, ycbcr_to_rgb
from ..errors import FusionkitError
from ..models.fusionnet import pad_to_multiple
from .tiling import tiled_apply

def to_model_space(images: Tensor, color: str) -> Tensor:
    """RGB in [0, 1] (..., 3, H, W) -> what the network fuses: RGB, or the Y channel of YCbCr."""
    if color == "rgb":
        return images
    shape = images.shape
    return rgb_to_ycbcr(images.reshape(-1, *shape[-3:]))[:, :1].reshape(*shape[:-3], 1, *shape[-2:])


def student_input(exposures: Tensor, color: str) -> Tensor:
    """(N, K, 3, H, W) in [0, 1] -> (N, K*C, H, W), standard-deviation normalised."""
    normalised, _ = std_normalize(to_model_space(exposures, color))
    return normalised.flatten(1, 2)


def network_target(images: Tensor, color: str) -> Tensor:
    """Ground truth (N, 3, H, W) in [0, 1] -> the network's output range [-1, 1] in its colour mode."""
    return to_network_range(to_model_space(images, color))


def to_rgb(output: Tensor, exposures: Tensor, color: str) -> Tensor:
    """Network output in [-1, 1] -> RGB in [0, 1]; in ``y`` mode chroma comes from the exposures."""
    image = from_network_range(output)
    if color == "rgb":
        return image
    n, k = exposures.shape[:2]
    cbcr = rgb_to_ycbcr(exposures.flatten(0, 1))[:, 1:].reshape(n, k, 2, *exposures.shape[-2:])
    return ycbcr_to_rgb(torch.cat([image, fuse_chroma(cbcr)], dim=1)).clamp(0, 1)


def fused_image(model: nn.Module, output: Tensor, exposures: Tensor, color: str) -> Tensor:
    """A student's output -> RGB in [0, 1]: blend the exposures by its weight maps, or decode its image."""
    if getattr(model, "produces", "image") == "weights":
        return model.fuse(exposures, output)
    return to_rgb(output.float(), exposures, color)


@torch.no_grad()
def fuse_with_model(
    model: nn.Module, exposures: Tensor, color: str = "rgb", tile: int | None = None, overlap: int = 64
) -> Tensor:
    """Fuse (N, K, 3, H, W) exposures of any size with a trained student; returns RGB in [0, 1].

    Pads to the network's multiple and crops back. With ``tile``, the (globally normalised) input
    runs in overlapping tiles blended with linear ramps, bounding memory on large photos; a
    weight-map network's logits are tiled that way and the exposures blended whole.
    """
    h, w = exposures.shape[-2:]
    if getattr(model, "num_inputs", None) not in (None, exposures.shape[1]):
        raise FusionkitError(f"this model fuses {model.num_inputs} exposures, got {exposures.shape[1]}")
    multiple = getattr(model, "multiple_of", 1)
    padded, _ = pad_to_multiple(exposures.flatten(0, 1), multiple)
    padded = padded.reshape(*exposures.shape[:3], *padded.shape[-2:])
    net_input = student_input(padded, color)
    if tile is not None:
        output = tiled_apply(model, net_input, tile, overlap, multiple)
    else:
        output = model(net_input)
    return fused_image(model, output, padded, color)[..., :h, :w]


@torch.no_grad()
def reconstruct_with_teacher(teacher: nn.Module, images: Tensor, color: str = "rgb") -> Tensor:
    """The teacher's reconstruction of ground truth (N, 3, H, W) in [0, 1] (the paper's AE columns)."""
    h, w = images.shape[-2:]
    padded, _ = pad_to_multiple(images, getattr(teacher, "multiple_of", 1))
    output = teacher(network_target(padded, color))
    return to_rgb(output.float(), padded[:, None], color)[..., :h, :w]  # y mode: the image's own chroma
