"""Regenerate the command sections of docs/cli.md from the commands' own --help (the text above the
first command section, such as the guarantees, is kept as written).

    python benchmarks/cli_reference.py            # rewrite it
    python benchmarks/cli_reference.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from fusionkit.cli.main import cli

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
MARKER = "## fusionkit "


def commands(group: click.Group, prefix: list[str]) -> list[list[str]]:
    """Every command path under ``group``, the group itself first."""
    found = [prefix]
    for name in sorted(group.commands):
        command = group.commands[name]
        found += commands(command, prefix + [name]) if isinstance(command, click.Group) else [prefix + [name]]
    return found


def section(path: list[str]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=100)
    return f"## fusionkit {' '.join(path)}\n\n```\n{result.output.rstrip()}\n```\n"


def main() -> None:
    written = DOC.read_text()
    expected = written.split(MARKER, 1)[0] + "\n".join(section(path) for path in commands(cli, []))
    if "--check" in sys.argv[1:]:
        # Click versions wrap help text differently; the words and their order are what must match.
        if written.split() != expected.split():
            diff = difflib.unified_diff(written.splitlines(), expected.splitlines(), "docs/cli.md", "--help", lineterm="", n=1)
            sys.exit(f"{DOC} is stale: run python benchmarks/cli_reference.py\n" + "\n".join(list(diff)[:40]))
        return
    DOC.write_text(expected)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
