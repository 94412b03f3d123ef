"""From exposures in [0, 1] to the network's input and back: normalisation, colour mode, padding.

Train, bench and fuse all go through these functions so a model sees the same data everywhere.
In ``y`` colour mode the network fuses luma only and chroma is fused by DeepFuse's rule.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn

from ..colour import fuse_chroma, from_network_range, luma, rgb_to_ycbcr, to_network_range, ycbcr_to_rgb
from ..data.transforms import fit_within, std_normalize
from ..errors import FusionkitError
from ..models.fusionnet import pad_to_multiple
from .guided import guided_coefficients, guided_rows
from .hardware import Precision
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
    model: nn.Module, exposures: Tensor, color: str = "rgb", tile: int | None = None, overlap: int = 64,
    work_size: int | None = None, precision: Precision | None = None, tile_batch: int = 1,
) -> Tensor:
    """Fuse (N, K, 3, H, W) exposures of any size with a trained student; returns RGB in [0, 1].

    Pads to the network's multiple and crops back. With ``tile``, the (globally normalised) input
    runs in overlapping tiles blended with linear ramps, bounding memory on large photos; a
    weight-map network's logits are tiled that way and the exposures blended whole; ``tile_batch``
    tiles run as one batch. With
    ``work_size``, a weight-map network sees the photos scaled to that long side instead (see
    :func:`fuse_at_work_size`); students that regress pixels always run at full resolution.
    ``precision`` sets the network's autocast dtype and memory layout; blending stays float32.
    """
    h, w = exposures.shape[-2:]
    if getattr(model, "num_inputs", None) not in (None, exposures.shape[1]):
        raise FusionkitError(f"this model fuses {model.num_inputs} exposures, got {exposures.shape[1]}")
    if work_size is not None and getattr(model, "produces", "image") == "weights" and max(h, w) > work_size:
        return fuse_at_work_size(model, exposures, color, work_size, precision)
    multiple = getattr(model, "multiple_of", 1)
    padded = _padded_exposures(exposures, multiple)
    net_input = student_input(padded, color)
    with _precision(precision, net_input) as net_input:
        output = tiled_apply(model, net_input, tile, overlap, multiple, tile_batch) if tile is not None else model(net_input)
    return fused_image(model, output, padded, color)[..., :h, :w]


@torch.no_grad()
def fuse_at_work_size(
    model: nn.Module, exposures: Tensor, color: str, work_size: int, precision: Precision | None = None
) -> Tensor:
    """A weight-map student at any resolution: the network at ``work_size``, the blend at full resolution.

    The network sees the exposures scaled (antialiased) to a long side of ``work_size``; its logits
    come back to full resolution by the fast guided filter, guided by each exposure's luma, and the
    photographs themselves are blended, so cost hardly grows with megapixels (MEF-Net's scheme).
    The blend asks for the upsampled logits a strip of rows at a time: none exist at full resolution.
    """
    h = exposures.shape[-2]
    small = fit_within(exposures.float(), work_size)
    size = small.shape[-2:]
    padded = _padded_exposures(small, getattr(model, "multiple_of", 1))
    with _precision(precision, student_input(padded, color)) as net_input:
        logits = model(net_input)[..., : size[0], : size[1]].float()
    a, b = guided_coefficients(logits, luma(small))
    return model.fuse(exposures, lambda top, bottom: guided_rows(a, b, luma(exposures[..., top:bottom, :]), top, h))


def _padded_exposures(exposures: Tensor, multiple: int) -> Tensor:
    """(N, K, C, H, W) exposures padded so H and W are multiples of the network's ``multiple``."""
    padded, _ = pad_to_multiple(exposures.flatten(0, 1), multiple)
    return padded.unflatten(0, exposures.shape[:2])


@contextlib.contextmanager
def _precision(precision: Precision | None, net_input: Tensor) -> Iterator[Tensor]:
    """Autocast and lay out the network's input as ``precision`` says, for the forward pass only."""
    if precision is None:
        yield net_input
        return
    layout = torch.channels_last if precision.channels_last else torch.contiguous_format
    with precision.autocast(net_input.device):
        yield net_input.contiguous(memory_format=layout)


@torch.no_grad()
def reconstruct_with_teacher(teacher: nn.Module, images: Tensor, color: str = "rgb") -> Tensor:
    """The teacher's reconstruction of ground truth (N, 3, H, W) in [0, 1] (the paper's AE columns)."""
    h, w = images.shape[-2:]
    padded, _ = pad_to_multiple(images, getattr(teacher, "multiple_of", 1))
    output = teacher(network_target(padded, color))
    return to_rgb(output.float(), padded[:, None], color)[..., :h, :w]  # y mode: the image's own chroma
