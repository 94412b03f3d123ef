"""Scoring fused images with metric components: by the bench, and for files a user already has."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from .. import available, create
from ..data.io import read_image
from ..data.stack import read_stack
from ..errors import FusionkitError, param
from ..inference.hardware import is_out_of_memory
from .metrics import Metric, MetricInputError, to_space


def build_metrics(names: list[str] | None) -> list[Metric]:
    """The named metric components in that order, or every registered one (full-reference ones first)."""
    if names is not None:
        return [create("metric", name) for name in names]
    metrics = [create("metric", c.name) for c in available("metric")]
    if not metrics:
        raise FusionkitError("no metric to compute: no plugin registers one (see `fusionkit plugins`)")
    return sorted(metrics, key=lambda m: not m.needs_reference)


def score(metrics: list[Metric], output: Tensor, exposures: Tensor, reference: Tensor | None, space: str) -> dict[str, float]:
    """Every metric that the data allows: full-reference ones (in ``space``) only where there is a reference."""
    scores = {}
    if reference is not None:
        output_in_space, reference_in_space = to_space(output, space), to_space(reference, space)
    for metric in metrics:
        if not metric.needs_reference:
            scores[metric.name] = float(metric(output, exposures).mean())
        elif reference is not None:
            scores[metric.name] = float(metric(output_in_space, exposures, reference_in_space).mean())
    return scores


def score_files(
    fused: Path, inputs: list[Path], reference: Path | None = None, metrics: list[str] | None = None, space: str = "rgb"
) -> tuple[dict[str, float], dict[str, str]]:
    """Scores of the image ``fused`` against its exposures ``inputs`` (and ``reference``), metric name to value,
    and why a metric has none. Without a reference only the no-reference metrics run; naming a full-reference
    one then is an error. By default, a metric the images do not fit (too small) is NaN with its reason;
    a metric asked for by name raises instead.
    """
    chosen = build_metrics(metrics)
    if reference is None and metrics is not None:
        wanted = [m.name for m in chosen if m.needs_reference]
        if wanted:
            raise FusionkitError(f"{param('metrics')} {wanted[0]} compares with a reference image: give {param('reference')}")
    image = read_image(fused)
    stack = read_stack(list(inputs))
    target = read_image(reference) if reference is not None else None
    for path, other in ((inputs[0], stack[0, 0]), *([(reference, target)] if target is not None else [])):
        if other.shape != image.shape:
            raise FusionkitError(
                f"{path} is {other.shape[2]}x{other.shape[1]} but {fused} is {image.shape[2]}x{image.shape[1]}: "
                "score images of one size"
            )
    scores, unfit = {}, {}
    with torch.no_grad():
        for metric in chosen:
            try:
                scores.update(score([metric], image[None], stack, target[None] if target is not None else None, space))
            except MetricInputError as exc:
                if metrics is not None:
                    raise
                scores[metric.name], unfit[metric.name] = math.nan, str(exc)
            except (MemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc):
                    raise
                height, width = image.shape[-2:]
                raise FusionkitError(
                    f"out of memory computing {metric.name} on {width}x{height} images ({fused}); close other programs, "
                    "score a downscaled copy, or name only the other metrics"
                ) from None
    return scores, unfit
