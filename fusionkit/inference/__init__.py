"""Inference: a trained model or a method applied to exposures, whole or in exact tiles.

The one ``Fuser`` (what fuse, bench and training validation fuse with), the model-space pipeline,
device and precision choice, tiling with whole-image statistics, and fusing files.
Imports the core, data and runs; never training, evaluation or cli.
"""
