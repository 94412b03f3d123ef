"""The training engine: one ``fusionkit train`` run of the stages a registered recipe gives, whatever the method.

It checks everything it can first, claims the run folder, then trains each stage (``loop.StageLoop``) on the
training split; CPU or CUDA, torchrun-ready, resumable, with atomic checkpoints.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Iterator

from torch import Tensor

from .. import create
from ..data.loader import build_loader
from ..errors import FusionkitError, param
from ..files import write_json
from ..runs.folders import check_fresh, own_run_folder
from . import distributed
from .config import TrainConfig, default_run_dir, make_config, read_config_file
from .context import RunContext
from .loop import StageLoop, StepCallback, StopRequest
from .rng import seed_everything
from .runlog import StepLog, plot_loss_curves, save_picture
from .stage import Stage


class Trainer:
    """Runs the recipe ``config.training_recipe`` in a run folder; one instance per ``fusionkit train``."""

    def __init__(self, config: TrainConfig, ctx: distributed.DistContext, run_dir: Path, resuming: bool, on_step: StepCallback | None) -> None:
        self.config = config
        self.context = RunContext(config, ctx, run_dir, resuming)
        self.recipe = create("recipe", config.training_recipe, config)
        self.on_step = on_step
        self.stop = StopRequest()
        self.log: StepLog | None = None

    def preflight(self) -> None:
        """The recipe builds every part and takes one trial step, so a mistake fails in seconds, before the run
        folder is claimed or written."""
        self.recipe.preflight(self.context)

    def run(self) -> Path:
        """Check all that can be checked, then train in a run folder this process owns (``own_run_folder``)."""
        self.preflight()
        self.context.data_root = self._data_root()
        self._training_loader()  # an empty or too small data set fails before the run folder exists
        with own_run_folder(self.context.run_dir, fresh=not self.context.resuming) if self.context.is_main else nullcontext():
            return self._train_in_folder()

    def _train_in_folder(self) -> Path:
        """The recipe's stages, in order, writing config, logs and checkpoints into the run folder."""
        run_dir, ctx = self.context.run_dir, self.context.ctx
        if ctx.is_main:
            write_json(run_dir / "config.json", self.config.as_dict())
            self.log = StepLog(run_dir)
        distributed.barrier(ctx)
        seed_everything(self.config.seed)
        with self.stop.installed():
            for stage in self.recipe.stages(self.context):
                self._run_stage(stage)
        if ctx.is_main:
            self.log.close()
            save_picture(run_dir / "loss_curve.png", lambda path: plot_loss_curves(run_dir / "log.jsonl", path))
        distributed.barrier(ctx)
        return run_dir

    def _run_stage(self, stage: Stage) -> None:
        """Build the stage's model into ``stage.model`` and train it there."""
        stage.model = self.context.build(stage)
        StageLoop(self.context, stage, self.log, self.on_step, self.stop).train(self._batches)

    def _data_root(self) -> Path:
        if self.config.data:
            return Path(self.config.data)
        from ..synthetic.sample import ensure_sample  # imports scikit-image; only needed for the sample set

        if self.context.is_main:
            root = ensure_sample()
        distributed.barrier(self.context.ctx)
        return root if self.context.is_main else ensure_sample()

    def _batches(self, start_step: int) -> Iterator[dict[str, Tensor]]:
        """Endless batches; epoch e's pairs, crops and order follow (seed, e), so a resumed run sees the same batches."""
        loader = self._training_loader()
        epoch, skip = divmod(start_step, len(loader))
        while True:
            loader.set_epoch(epoch)
            for index, batch in enumerate(loader):
                if index >= skip:
                    yield batch
            skip, epoch = 0, epoch + 1

    def _training_loader(self):
        """The training split's loader; an empty split, or one smaller than a batch, is a one-line error."""
        config, context = self.config, self.context
        loader = build_loader(
            context.data_root, "training", pairs="random", exposures=config.exposures, crop=config.crop, flip=True,
            batch_size=config.batch_size, workers=config.workers, seed=config.seed, shuffle=True, distributed=context.ctx.distributed,
            drop_last=True, device=context.device, max_side=config.max_side,
        )
        if len(loader) == 0:
            raise FusionkitError(f"{context.data_root}: fewer training scenes than {param('batch_size')} {config.batch_size}")
        return loader


def train(config: TrainConfig | None, *, resume: str | Path | None = None, on_step: StepCallback | None = None) -> Path:
    """Train as configured (or continue the run in ``resume``); returns the run folder."""
    if resume is not None:
        run_dir = Path(resume)
        saved = run_dir / "config.json"
        if not saved.exists():
            raise FusionkitError(f"{param('resume')} {run_dir}: no config.json there; is it a fusionkit run folder?")
        config = make_config(read_config_file(saved))
    else:
        config = config or TrainConfig()
        run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
        check_fresh(run_dir)  # early, on every rank; own_run_folder checks again under the lock
    config.run_dir = str(run_dir)
    ctx = distributed.setup(config.device)
    try:
        return Trainer(config, ctx, run_dir, resume is not None, on_step).run()
    finally:
        distributed.teardown(ctx)
