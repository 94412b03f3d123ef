"""What a training run leaves on disk and how it is found and loaded again.

Checkpoints (safetensors weights + a JSON recipe) and run folders. Imports the core and data only,
so training writes and inference, evaluation and the CLI read through one module.
"""
