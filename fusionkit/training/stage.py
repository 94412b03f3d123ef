"""What a training recipe hands the engine: one ``Stage``, a model to train and how to judge it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import Tensor, nn

#: (net, batch) -> (the loss to minimise, the terms to log by name). ``net`` is the model as trained (wrapped by
#: DDP or torch.compile: ``unwrap`` gives the model); ``batch`` the training loader's {"inputs", "target"}.
LossFunction = Callable[[nn.Module, dict[str, Tensor]], tuple[Tensor, dict[str, Tensor]]]


@dataclass
class Stage:
    """One stage of a recipe: the engine builds its model, trains it ``steps`` steps on ``loss``, writes the
    checkpoint ``NAME`` in the run folder and validates it."""

    #: The checkpoint's name in the run folder and the stage's in the logs.
    name: str
    #: The model to build, ``create(kind, component, **options)``, and what its checkpoint rebuilds it from.
    kind: str
    component: str
    options: dict[str, Any]
    steps: int
    loss: LossFunction
    #: The metric components that validate it (``val_NAME`` in the checkpoint), on outputs made by the Fuser
    #: its checkpoint makes: a student fuses the exposures, a teacher reconstructs the reference.
    metrics: tuple[str, ...] = ()
    #: The validation loader's pairs mode: ``all``, or ``low`` for one pair a scene.
    pairs: str = "all"
    #: The kind of each option that names a component (``{"channel_attention": "attention"}``), for the checkpoint.
    components: dict[str, str] = field(default_factory=dict)
    #: Anything else the checkpoint's recipe records (colour mode, loss weights, notes).
    record: dict[str, Any] = field(default_factory=dict)
    #: The model the engine built, placed and trains in place, for later stages to use.
    model: nn.Module | None = None
