"""Inference: a trained model or a method applied to exposures, whole or in exact tiles.

The model-space pipeline, device choice, tiling with whole-image statistics, and fusing files.
Imports the core, data and runs; never training, evaluation or cli.
"""
