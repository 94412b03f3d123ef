"""The ``fusionkit`` command line: one module per command group, a thin layer over the Python API.

May import anything in fusionkit; nothing in fusionkit imports it (``__main__`` aside). This
module stays light, so Ctrl-C while torch and the plugins load is caught like Ctrl-C later.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Console entry point: load the commands, then run them; Ctrl-C during loading exits 130 with one line."""
    try:
        from .main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("fusionkit: interrupted\n")
        raise SystemExit(130) from None
    run(argv)


__all__ = ["main"]
