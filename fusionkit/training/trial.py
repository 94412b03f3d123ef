"""The preflight trial step's helpers: a dummy batch, and failures turned into one line naming the options behind them."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

from ..errors import FusionkitError, first_line, param
from .config import TrainConfig


def trial_batch(config: TrainConfig, device: torch.device) -> dict[str, Tensor]:
    """Two random training crops as the loader gives them: ``inputs`` (2, K, 3, crop, crop) and ``target``."""
    inputs = torch.rand(2, config.exposures, 3, config.crop, config.crop, device=device)
    return {"inputs": inputs, "target": torch.rand(2, 3, config.crop, config.crop, device=device)}


def named(config: TrainConfig, keys: tuple[str, ...]) -> str:
    """The options ``keys`` of ``config`` as a one-line error names them (``num_blocks 2, distill_options pairs=[[9, 9]]``;
    the command line spells them as its flags)."""
    spelt = []
    for key in keys:
        value = getattr(config, key)
        if isinstance(value, dict):
            spelt += [f"{param(key)} {name}={v if isinstance(v, str) else json.dumps(v)}" for name, v in value.items()]
        elif value is not None:
            spelt.append(f"{param(key)} {value}")
    return ", ".join(spelt)


@contextmanager
def blamed(options: str) -> Iterator[None]:
    """Turn a failure of the trial step into a one-line error naming the options that led to it."""
    try:
        yield
    except FusionkitError:
        raise
    except Exception as exc:
        raise FusionkitError(f"{options}: {first_line(exc)} (found by a trial step before training)") from None
