"""Example fusionkit plugin: one small component of every kind, each named ``tiny_*``.

Written from docs/plugins.md alone, so it imports ``fusionkit`` and ``fusionkit.api`` and nothing
else of fusionkit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import fusionkit
from fusionkit.api import (
    Alignment, BackboneOutput, Bracket, DatasetLayoutError, FusionNet, RunContext, Stage, WholeImagePool, blamed,
    fused_image, named, student_input, trial_batch, unwrap,
)

#: tiny_net's weights and recipe, as a training run writes them (student.safetensors, student.json), renamed.
PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "tiny_net.safetensors"


class TinyBackbone(nn.Module):
    """A full-resolution conv (the skip features), a stride-2 conv, then ``num_blocks`` conv-ReLU blocks."""

    reduction = 2

    def __init__(self, in_channels: int, width: int = 8, num_blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU()) for _ in range(num_blocks))
        self.out_channels = self.skip_channels = width
        self.feature_channels = [width] * num_blocks

    def forward(self, x: Tensor) -> BackboneOutput:
        skip = self.stem(x)
        y, features = self.down(skip), []
        for block in self.blocks:
            y = block(y)
            features.append(y)
        return BackboneOutput(y, skip, features)


class TinyGate(nn.Module):
    """Channel gate from the whole image's mean; pooled with WholeImagePool, so tiled fusing stays exact."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = WholeImagePool(1)
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.fc(self.pool(x).flatten(1)))[:, :, None, None]


class TinyHead(nn.Module):
    """Upsample x2, concat the skip features, channel attention, conv + Tanh: the image in [-1, 1]."""

    produces = "image"

    def __init__(
        self, in_channels: int, skip_channels: int = 0, out_channels: int = 3, width: int | None = None,
        channel_attention: str = "tiny_gate",
    ) -> None:
        super().__init__()
        width = width or in_channels
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.skip_channels = skip_channels
        self.attention = fusionkit.create("attention", channel_attention, width + skip_channels)
        self.out = nn.Sequential(nn.Conv2d(width + skip_channels, out_channels, 3, padding=1), nn.Tanh())

    def forward(self, bottleneck: Tensor, skip: Tensor | None = None) -> Tensor:
        y = self.up(bottleneck)
        if self.skip_channels:
            y = torch.cat([y, skip], dim=1)
        return self.out(self.attention(y))


class TinyFeatureMSE(nn.Module):
    """Mean squared difference of paired features, (student block, teacher block), numbered from 1."""

    def __init__(self, pairs: tuple[tuple[int, int], ...] = ((2, 2),)) -> None:
        super().__init__()
        self.pairs = [tuple(pair) for pair in pairs]

    def forward(self, student: list[Tensor], teacher: list[Tensor]) -> Tensor:
        return sum(F.mse_loss(student[m - 1].float(), teacher[n - 1].float()) for m, n in self.pairs)


def tiny_net(*, in_channels: int = 3, num_inputs: int = 2, width: int = 8, num_blocks: int = 2, channel_attention: str = "tiny_gate") -> FusionNet:
    """tiny_backbone -> tiny_gate -> tiny_head, each built by name, on ``num_inputs`` exposures."""
    body = fusionkit.create("backbone", "tiny_backbone", in_channels * num_inputs, width=width, num_blocks=num_blocks)
    gate = fusionkit.create("attention", "tiny_gate", body.out_channels)
    head = fusionkit.create(
        "fusion_head", "tiny_head", body.out_channels, skip_channels=body.skip_channels, out_channels=in_channels,
        width=width, channel_attention=channel_attention,
    )
    return FusionNet(body, [gate], head, in_channels=in_channels, num_inputs=num_inputs)


class TinyAutoencoder(nn.Module):
    """A stride-2 conv, ``num_blocks`` conv-ReLU blocks (offered for distillation), upsampling, conv + Tanh."""

    multiple_of = 2

    def __init__(self, in_channels: int = 3, width: int = 8, num_blocks: int = 2) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.down = nn.Sequential(nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU()) for _ in range(num_blocks))
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(width, in_channels, 3, padding=1), nn.Tanh())

    def forward(self, x: Tensor, return_features: bool = False):
        y, features = self.down(x), []
        for block in self.blocks:
            y = block(y)
            features.append(y)
        image = self.up(y)
        return (image, features) if return_features else image


class TinyMax(nn.Module):
    """Per-pixel maximum over the exposures: lifts the shadows, keeps no detail in the highlights."""

    def forward(self, exposures: Tensor, reference: Tensor | None = None) -> Tensor:
        return exposures.amax(dim=1)


class TinyAlign:
    """Every exposure taken as already aligned (a tripod): the identity for each."""

    def __call__(self, exposures: Tensor, reference: int) -> Alignment:
        return Alignment(np.stack([np.eye(3)] * len(exposures)))


def tiny_folders(root: str | Path, split: str) -> list[Bracket]:
    """Brackets as ROOT/SPLIT/SCENE/*.png, exposures darkest first by file name, without references."""
    folder = Path(root) / split
    scenes = [Bracket(d.name, sorted(d.glob("*.png")), None) for d in sorted(folder.glob("*")) if d.is_dir()]
    scenes = [scene for scene in scenes if len(scene.exposures) >= 2]
    if not scenes:
        raise DatasetLayoutError(f"{folder}: no scene folder with two or more .png exposures")
    return scenes


class TinyBrightness:
    """Mean brightness of each fused image, needing no reference."""

    name = "tiny_brightness"
    higher_is_better = True
    needs_reference = False

    def __call__(self, fused: Tensor, exposures: Tensor, reference: Tensor | None = None) -> Tensor:
        return fused.float().mean(dim=(1, 2, 3))


class TinyExposedness(nn.Module):
    """Mean squared distance of the fused image from ``target`` grey; trains without a reference."""

    needs_reference = False

    def __init__(self, target: float = 0.5) -> None:
        super().__init__()
        self.target = target

    def forward(self, fused: Tensor, exposures: Tensor, reference: Tensor | None) -> Tensor:
        return (fused.float() - self.target).square().mean()


class TinySolo:
    """One stage: ``tiny_net`` learns to fuse towards mid-grey (``tiny_exposedness``), with no teacher and no reference."""

    def __init__(self, config) -> None:
        self.config = config
        self.loss = TinyExposedness()

    def preflight(self, run: RunContext) -> None:
        stage = self.stage(run)
        with blamed(named(self.config, ("width", "exposures"))), torch.no_grad():
            net = run.build(stage)
            stage.loss(net, trial_batch(self.config, run.device))
        run.check_saved(stage, net)

    def stages(self, run: RunContext) -> Iterator[Stage]:
        yield self.stage(run)

    def stage(self, run: RunContext) -> Stage:
        def loss(net: nn.Module, batch: dict[str, Tensor]):
            exposures = batch["inputs"].to(run.device)
            fused = fused_image(unwrap(net), net(run.to_device(student_input(exposures, "rgb"))), exposures, "rgb")
            value = self.loss(fused, exposures, None)
            return value, {"loss": value}

        options = {"width": self.config.width or 8, "num_inputs": self.config.exposures}
        return Stage("student", "student", "tiny_net", options, self.config.student_steps, loss,
                     metrics=("tiny_brightness",), record={"color": "rgb"})


def tiny_pretrained() -> Path:
    """tiny_net with untrained weights, shipped as package data."""
    return PRETRAINED


@fusionkit.hookimpl
def register_components(register):
    register("backbone", "tiny_backbone", TinyBackbone)
    register("attention", "tiny_gate", TinyGate)
    register("distill_loss", "tiny_mse", TinyFeatureMSE)
    register("fusion_head", "tiny_head", TinyHead)
    register("student", "tiny_net", tiny_net)
    register("teacher", "tiny_ae", TinyAutoencoder)
    register("method", "tiny_max", TinyMax)
    register("align", "tiny_align", TinyAlign)
    register("dataset", "tiny_folders", tiny_folders)
    register("metric", "tiny_brightness", TinyBrightness)
    register("loss", "tiny_exposedness", TinyExposedness)
    register("recipe", "tiny_solo", TinySolo)
    register("pretrained", "tiny_net", tiny_pretrained)
