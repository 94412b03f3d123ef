"""The command-line reference is the commands' own --help (regenerate with benchmarks/cli_reference.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_matches_the_commands_help():
    """In a fresh interpreter: click remembers a command's help option once a test has invoked it alone."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cli_reference.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
