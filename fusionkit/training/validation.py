"""A trained stage's validation: its metric components on full validation images, and the rows of its picture."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import create
from ..data.errors import DatasetLayoutError
from ..data.loader import build_loader
from ..evaluation.metrics import MetricInputError
from ..inference.fuser import Fuser
from .context import RunContext
from .stage import Stage


@torch.no_grad()
def validate(run: RunContext, stage: Stage, model: nn.Module, recipe: dict[str, Any]) -> tuple[dict[str, Any], list[list[Tensor]]]:
    """``val_METRIC`` (the mean over the images it could score, None if none), ``val_pairs`` (the images any metric
    scored) and the picture's rows (what the model looked at | its output | the reference), the outputs made by
    the Fuser of the checkpoint ``recipe`` describes."""
    try:
        loader = build_loader(run.data_root, "validation", pairs=stage.pairs, batch_size=1, seed=run.config.seed)
    except DatasetLayoutError as exc:
        run.say(f"{stage.name}: no validation ({exc})")
        return {"val_pairs": 0}, []
    fuser = Fuser.trained(model, recipe)
    metrics = {name: create("metric", name) for name in stage.metrics}
    scores: dict[str, list[float]] = {name: [] for name in metrics}
    rows, images = [], 0
    for batch in loader:
        exposures = batch["inputs"].to(run.device)
        target = batch["target"].to(run.device) if batch["target"] is not None else None
        if fuser.needs_reference and target is None:
            break
        with run.autocast():
            output = fuser(exposures, target)
        output = output.float().clamp(0, 1)
        scored = False
        for name, metric in metrics.items():
            if metric.needs_reference and target is None:
                continue
            try:
                scores[name].append(float(metric(output, exposures, target).mean()))
            except MetricInputError:  # an image this metric cannot score (too small for its windows)
                continue
            scored = True
        images += scored
        if len(rows) < run.config.grid_pairs:
            seen = [target[0]] if fuser.needs_reference else [*exposures[0]]
            reference = [target[0]] if target is not None and not fuser.needs_reference else []
            rows.append([*seen, output[0], *reference])
    result = {f"val_{name}": sum(v) / len(v) if v else None for name, v in scores.items()}
    result["val_pairs"] = images
    said = ", ".join(f"{k.removeprefix('val_')} {v:.4f}" for k, v in result.items() if k != "val_pairs" and v is not None)
    if said:
        run.say(f"{stage.name}: validation {said} over {result['val_pairs']} images")
    return result, rows
