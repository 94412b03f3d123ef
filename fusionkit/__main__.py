"""``python -m fusionkit`` runs the command line."""

from .cli import main

main()
