"""A run's weighted loss components (``losses``, ``loss_options``): each built by name with its own options."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from torch import Tensor, nn

from .. import create
from ..errors import FusionkitWarning, param
from .trial import blamed

if TYPE_CHECKING:
    from .context import RunContext


class LossTerms:
    """Every registered loss the run weights above 0, except the terms ``own`` that its recipe computes itself,
    built once; one that is unavailable (``available`` False) is dropped with a warning showing its note."""

    def __init__(self, run: RunContext, own: tuple[str, ...] = ()) -> None:
        config = run.config
        self.options = config.loss_options
        self.modules: dict[str, nn.Module] = {}
        for name, weight in config.losses.items():
            if name in own or weight == 0:
                continue
            loss = create("loss", name, **self.options.get(name, {}))
            if not getattr(loss, "available", True):
                if run.is_main:
                    warnings.warn(f"{loss.note} ({param('losses')} {name}={weight} ignored)", FusionkitWarning, stacklevel=2)
                continue
            self.modules[name] = loss.to(run.device)
        self.weights = {name: config.losses[name] for name in self.modules}

    @property
    def notes(self) -> dict[str, str]:
        """Each term's one line about itself (where its weights came from, say), for the checkpoint to record."""
        return {name: loss.note for name, loss in self.modules.items() if hasattr(loss, "note")}

    def __call__(self, fused: Tensor, exposures: Tensor, reference: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted sum and each term (``loss_NAME``); data without a reference trains the reference-free terms only."""
        values, total = {}, fused.new_zeros(())
        for name, loss in self.modules.items():
            if loss.needs_reference and reference is None:
                continue
            values[f"loss_{name}"] = loss(fused, exposures, reference)
            total = total + self.weights[name] * values[f"loss_{name}"]
        return total, values

    def trial(self, fused: Tensor, exposures: Tensor, reference: Tensor) -> None:
        """Each term once, a failure naming the term's weight and options."""
        for name, loss in self.modules.items():
            with blamed(self.named(name)):
                loss(fused, exposures, reference)

    def named(self, name: str) -> str:
        """The term's weight and options as a one-line error names them (``losses l1=2, loss_options l1.key=value``)."""
        options = [f"{param('loss_options')} {name}.{key}={value}" for key, value in self.options.get(name, {}).items()]
        return ", ".join([f"{param('losses')} {name}={self.weights[name]:g}", *options])
