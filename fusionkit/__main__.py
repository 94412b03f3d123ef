"""``python -m fusionkit`` runs the command line."""

from .cli.main import main

main()
