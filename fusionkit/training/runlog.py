"""What a user watches during and after a run: per-step logs, the loss curve and other pictures."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any, Callable

from ..errors import FusionkitError, FusionkitWarning
from ..files import write_atomic


class StepLog:
    """Appends one record per logged step to ``log.jsonl`` and ``log.csv`` (and TensorBoard if installed)."""

    def __init__(self, run_dir: Path) -> None:
        self.jsonl = run_dir / "log.jsonl"
        self.csv = run_dir / "log.csv"
        self._tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tensorboard"))
        except Exception:  # tensorboard is optional
            self._tb = None

    def write(self, record: dict[str, Any]) -> None:
        with self.jsonl.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        new = not self.csv.exists()
        with self.csv.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["stage", "step", "term", "value"])
            for key, value in record.items():
                if key not in ("stage", "step") and isinstance(value, (int, float)):
                    writer.writerow([record["stage"], record["step"], key, value])
                    if self._tb is not None:
                        self._tb.add_scalar(f"{record['stage']}/{key}", value, record["step"])

    def discard_after(self, stage: str, step: int) -> None:
        """Keep ``stage``'s records up to ``step`` only, so a resumed run's replayed steps are logged once.

        A line torn by a kill in mid-write is dropped too.
        """
        if self.jsonl.exists():
            lines = self.jsonl.read_text().splitlines()
            kept = [line + "\n" for line in lines if _kept(_json_record(line), stage, step)]
            write_atomic(self.jsonl, lambda tmp: tmp.write_text("".join(kept)))
        if self.csv.exists():
            with self.csv.open(newline="") as handle:
                rows = list(csv.reader(handle))
            kept_rows = rows[:1] + [row for row in rows[1:] if _kept(_csv_record(row), stage, step)]
            write_atomic(self.csv, lambda tmp: _write_rows(tmp, kept_rows))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _json_record(line: str) -> dict[str, Any] | None:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _csv_record(row: list[str]) -> dict[str, Any] | None:
    return {"stage": row[0], "step": int(row[1])} if len(row) == 4 and row[1].isdigit() else None


def _kept(record: dict[str, Any] | None, stage: str, step: int) -> bool:
    """Whether a log record survives a resume of ``stage`` at ``step``: whole, and not a step to be replayed."""
    return record is not None and not (record["stage"] == stage and record["step"] > step)


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_loss_curves(log_path: Path, out_path: Path) -> Path | None:
    """One panel per stage, one line per loss term, log-scale y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    stages = list(dict.fromkeys(r["stage"] for r in records))
    if not stages:
        return None
    fig, axes = plt.subplots(1, len(stages), figsize=(5.5 * len(stages), 3.6), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        rows = [r for r in records if r["stage"] == stage]
        terms = [k for k in rows[0] if k.startswith("loss")]
        for term in terms:
            ax.plot([r["step"] for r in rows], [r[term] for r in rows], label=term)
        ax.set_title(f"{stage} stage")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return out_path


def save_picture(path: Path, draw: Callable[[Path], Any]) -> None:
    """Draw a picture of the run into ``path``; one that cannot be written (a full disk) is a warning, not a
    failure: the checkpoints it shows are written already."""
    try:
        draw(path)
    except (OSError, FusionkitError) as exc:
        reason = f"cannot write {path}: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
        warnings.warn(f"{reason} (only this picture is missing; the checkpoints are written)", FusionkitWarning, stacklevel=2)
