"""Evaluation: metrics, the side-by-side bench, speed measurement, reports and picture grids.

Imports the core, data, runs and inference; never training or cli.
"""
