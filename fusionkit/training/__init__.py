"""Training: the two-stage engine, its configuration, losses, run logs and torchrun support.

Imports the core, data, runs, inference and evaluation (validation scores); never cli.
"""
