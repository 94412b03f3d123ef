"""Reading the exposures of one scene into one (1, K, 3, H, W) tensor, as fusing and scoring need them."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ..errors import FusionkitError
from .io import decode_pixels, pixels_to_tensor


def read_stack(paths: list[Path]) -> torch.Tensor:
    """Read the exposures into (1, K, 3, H, W); sizes must match (the error names both files).

    Files are decoded in parallel threads (the decoders release the GIL) and each is converted
    straight into its slot, so a 24-megapixel bracket is never held twice in float32.
    """
    with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1)) as pool:
        decoded = [pool.submit(decode_pixels, path) for path in paths]
        try:
            exposures = None
            for k, (path, pixels) in enumerate(zip(paths, decoded)):
                array = pixels.result()
                if exposures is None:
                    exposures = torch.empty(1, len(paths), 3, *array.shape[:2])
                elif array.shape[:2] != exposures.shape[-2:]:
                    raise FusionkitError(
                        f"exposures differ in size: {paths[0]} is {exposures.shape[-1]}x{exposures.shape[-2]}, "
                        f"{path} is {array.shape[1]}x{array.shape[0]}"
                    )
                pixels_to_tensor(array, path, out=exposures[0, k])
                del array
        except BaseException:
            for pending in decoded:
                pending.cancel()
            raise
    return exposures
