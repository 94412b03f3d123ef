"""Bench reports: a terminal/Markdown table with the best value marked, CSV rows and JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..files import write_atomic

SPLITS = ("low", "high", "all")
#: (column, path into a model entry, format, higher is better)
SPEED_COLUMNS = (
    ("params", ("speed", "parameters"), "{:,}", None),
    ("GFLOPs/pair", ("speed", "gflops_per_pair"), "{:.2f}", False),
    ("pairs/s", ("speed", "pairs_per_s"), "{:.2f}", True),
    ("MP/s", ("speed", "megapixels_per_s"), "{:.2f}", True),
    ("p50 ms", ("speed", "latency_p50_ms"), "{:.1f}", False),
    ("p95 ms", ("speed", "latency_p95_ms"), "{:.1f}", False),
    ("peak MiB", ("speed", "peak_memory_mb"), "{:.0f}", False),
)


def _get(entry: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(entry, dict) or key not in entry:
            return None
        entry = entry[key]
    return entry


def metric_label(name: str) -> str:
    """``mef_ssim`` -> ``MEF-SSIM``: how a metric heads a column."""
    return name.upper().replace("_", "-")


def columns(report: dict[str, Any]) -> list[tuple[str, tuple[str, ...], str, bool | None]]:
    """(header, path into a model entry, format, higher is better) of every column with a value."""
    splits = [s for s in SPLITS if any(s in m["quality"] for m in report["models"])]
    splits += sorted({s for m in report["models"] for s in m["quality"]} - set(splits))
    quality = []
    for split in splits:
        for metric in report["metrics"]:
            name = metric["name"]
            if any(name in m["quality"].get(split, {}) for m in report["models"]):
                header = metric_label(name) if len(splits) == 1 else f"{metric_label(name)} {split}"
                quality.append((header, ("quality", split, name), "{:.2f}" if name == "psnr" else "{:.4f}", metric["higher_is_better"]))
    has_speed = any("speed" in m for m in report["models"])
    return quality + (list(SPEED_COLUMNS) if has_speed else [])


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and cells; the best value of each column (oracles excluded) carries a '*'."""
    cols = columns(report)
    header = ["model", *[c[0] for c in cols]]
    contenders = [m for m in report["models"] if not m.get("oracle")]
    best = {}
    for name, path, _, higher in cols:
        values = [_get(m, path) for m in contenders if _get(m, path) is not None and not (path[-1] == "peak_memory_mb" and m["role"] == "method")]
        if higher is not None and values:
            best[name] = max(values) if higher else min(values)
    rows = []
    for model in report["models"]:
        cells = [model["label"]]
        for name, path, fmt, _ in cols:
            value = _get(model, path)
            cell = "-" if value is None else fmt.format(value)
            if value is not None and best.get(name) == value and model in contenders:
                cell += "*"
            cells.append(cell)
        rows.append(cells)
    return header, rows


def format_table(report: dict[str, Any]) -> str:
    header, rows = table_rows(report)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def format_markdown(report: dict[str, Any]) -> str:
    header, rows = table_rows(report)
    machine = report["machine"]
    where = ", ".join(f"{k}: {v}" for k, v in machine.items())
    settings = ", ".join(f"{k}: {v}" for k, v in report["settings"].items())
    lines = [f"Machine: {where}  ", f"Settings: {settings}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "`*` best in column (oracles, which look at the ground truth, are not ranked). "
              "Teacher rows are the autoencoder reconstructing ground truth (the paper's AE columns)."]
    return "\n".join(lines) + "\n"


def format_csv(report: dict[str, Any]) -> str:
    cols = columns(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["model", "role", *[c[0] for c in cols]])
    for model in report["models"]:
        writer.writerow([model["label"], model["role"], *[_get(model, c[1]) for c in cols]])
    return buffer.getvalue()


def write_report(report: dict[str, Any], json_path: Path | None = None, csv_path: Path | None = None, markdown_path: Path | None = None) -> None:
    for path, text in ((json_path, lambda: json.dumps(report, indent=2) + "\n"), (csv_path, lambda: format_csv(report)), (markdown_path, lambda: format_markdown(report))):
        if path is not None:
            content = text()
            write_atomic(path, lambda tmp, content=content: tmp.write_text(content))
