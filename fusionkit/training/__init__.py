"""Training: the two-stage engine, its configuration, losses, run logs and torchrun support.

Imports the core, data, synthetic (the default sample set), runs, inference and evaluation (validation
scores); never cli.
"""
