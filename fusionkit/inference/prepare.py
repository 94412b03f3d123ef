"""The steps between reading a bracket and fusing it: its exposures put darkest first, aligned, deghosted.

Models are trained on brackets darkest first, so the photos are ordered by their EXIF exposure where every file
records one, else by mean brightness. Alignment and deghosting are :mod:`.align` and :mod:`.deghost`; what they
did is reported one line at a time (a fallback always, the rest with ``verbose``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from .. import available
from ..colour import luma
from ..data.exif import order_by_exposure
from ..data.stack import read_stack
from ..errors import FusionkitError, param
from .align import AlignResult, align_exposures
from .deghost import deghost

#: Alignment off, and the alignment used unless another is named (where a plugin provides it).
NO_ALIGN, DEFAULT_ALIGN = "none", "homography"


@dataclass(frozen=True)
class BracketSteps:
    """What happens to a bracket before fusion: the ``align`` component by name (``none``: none; None: DEFAULT_ALIGN
    where a plugin provides it, else none), ``deghost`` or not, and ``verbose``: report the order, the transforms
    and the moving area, not only fallbacks."""

    align: str | None = None
    deghost: bool = False
    verbose: bool = False

    def check(self) -> None:
        """Refuse an alignment no plugin provides, before any photo is read (``none`` needs no plugin)."""
        names = sorted(component.name for component in available("align"))
        if self.align not in (None, NO_ALIGN, *names):
            choices = ", ".join([NO_ALIGN, *(name for name in names if name != NO_ALIGN)])
            raise FusionkitError(f"{param('align')} {self.align}: no such alignment; use one of {choices}")

    def alignment(self) -> str:
        """The alignment these steps use: the one named, else DEFAULT_ALIGN where installed, else none."""
        if self.align is not None:
            return self.align
        return DEFAULT_ALIGN if any(c.name == DEFAULT_ALIGN for c in available("align")) else NO_ALIGN


def tell(line: str) -> None:
    """What was done, as a ``fusionkit: ...`` line on stderr that leaves a progress bar intact."""
    _stderr(f"fusionkit: {line}")


def warn(line: str) -> None:
    """What the user should know, as a ``warning: ...`` line on stderr (the command line's form of a warning)."""
    _stderr(f"warning: {line}")


def _stderr(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def read_prepared(paths: list[Path], steps: BracketSteps = BracketSteps(), *, label: str | None = None,
                  report: Callable[[str], None] = tell, warning: Callable[[str], None] = warn) -> Tensor:
    """The bracket's photos read as (1, K, 3, H, W) darkest first, aligned (and cropped to the area they all cover)
    and deghosted as ``steps`` say; ``report`` gets what was done (with ``steps.verbose``), ``warning`` a fallback,
    each line starting with ``label`` (a bracket's name among many) where given."""
    if label is not None:
        report, warning = _labelled(report, label), _labelled(warning, label)
    if len(paths) < 2:
        raise FusionkitError("fuse needs at least two exposures of the same scene")
    by_exif = order_by_exposure(paths)
    exposures = read_stack(by_exif or paths)
    names = [path.name for path in by_exif or paths]
    if by_exif is None:
        order = darkest_first(exposures[0])
        exposures, names = exposures[:, order], [names[k] for k in order]
    say = report if steps.verbose else (lambda line: None)
    say(f"order: {', '.join(names)} (by {'EXIF exposure' if by_exif else 'brightness'})")
    alignment, reference = steps.alignment(), None
    if alignment != NO_ALIGN:
        result = aligned(exposures, names, alignment, say, warning)
        exposures, reference = result.exposures, result.reference
    if steps.deghost:  # moving content comes from the exposure the others were aligned to
        ghosts = deghost(exposures, reference)
        exposures = ghosts.exposures
        moving = ", ".join(f"{name} {mask.mean().item():.1%}" for k, (name, mask) in enumerate(zip(names, ghosts.masks))
                           if k != ghosts.reference)
        say(f"deghost: moving content taken from {names[ghosts.reference]}; replaced: {moving}")
    return exposures


def _labelled(say: Callable[[str], None], label: str) -> Callable[[str], None]:
    """``say`` with each line starting ``label: ``."""
    return lambda line: say(f"{label}: {line}")


def darkest_first(stack: Tensor) -> list[int]:
    """Indices of the exposures (K, 3, H, W) by mean luma, darkest first (on every 8th pixel: the order is coarse)."""
    brightness = luma(stack[:, :, ::8, ::8].float()).mean(dim=(1, 2))
    return torch.argsort(brightness, stable=True).tolist()


def aligned(exposures: Tensor, names: list[str], name: str, say: Callable[[str], None],
            warning: Callable[[str], None]) -> AlignResult:
    """``exposures`` aligned by component ``name``; a fallback to none is always reported, the rest through ``say``."""
    result = align_exposures(exposures, name, names=names, log=say, warn=warning)
    shape = tuple(exposures.shape[-2:])
    top, left, bottom, right = result.box
    if (bottom - top, right - left) != shape:
        say(f"align {name}: cropped to {right - left}x{bottom - top} of {shape[1]}x{shape[0]}, the area every exposure covers")
    return result
