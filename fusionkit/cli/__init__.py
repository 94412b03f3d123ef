"""The ``fusionkit`` command line: one module per command group, a thin layer over the Python API.

May import anything in fusionkit; nothing in fusionkit imports it (``__main__`` aside).
"""

from .main import main

__all__ = ["main"]
