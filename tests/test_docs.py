"""The command-line reference is the commands' own --help (regenerate with benchmarks/cli_reference.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_matches_the_commands_help():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "benchmarks" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = (ROOT / "docs" / "cli.md").read_text()
    head = written.split(module.MARKER, 1)[0]
    expected = head + "\n".join(module.section(path) for path in module.commands(module.cli, []))
    assert written == expected, "docs/cli.md is stale: run python benchmarks/cli_reference.py"
