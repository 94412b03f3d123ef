"""Training: the method-agnostic engine that runs a recipe's stages, what recipes get and give, the
configuration, loss terms, run logs and torchrun support.

Imports the core, data, synthetic (the default sample set), runs, inference and evaluation (validation
scores); never cli.
"""
