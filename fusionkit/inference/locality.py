"""Find layers that pool over their whole input without ``WholeImagePool``, so a tiled run can say so.

Such a layer (timm's squeeze-excitation or ECA, a plugin's own ``x.mean((2, 3))``) sees only one
tile's statistics when a photo is fused in tiles, and the result only approximates the untiled
one. The check watches one forward pass for spatial reductions, adaptive pools, and softmax over
all positions of a flattened feature map (non-local and global-context attention).
"""

from __future__ import annotations

import sys
from typing import Callable

from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..wholeimage import WholeImagePool

_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "std", "var", "std_mean", "var_mean", "logsumexp", "nanmean"}
_SOFTMAX = {"softmax", "log_softmax"}
_ADAPTIVE_POOLS = {"adaptive_avg_pool2d", "adaptive_max_pool2d", "_adaptive_max_pool2d", "adaptive_max_pool2d_with_indices"}


def _reduces_space(name: str, args: tuple, kwargs: dict) -> bool:
    """Whether a call averages (or maxes, sums…) a 4-D feature map over one of its spatial axes."""
    x = args[0] if args else None
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[-2:].numel() <= 1:
        return False
    if name in _ADAPTIVE_POOLS:
        size = args[1] if len(args) > 1 else kwargs.get("output_size")
        size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        return any(s is not None and s != n for s, n in zip(size, x.shape[-2:]))
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    if dims is None:
        return True  # x.mean(), x.amax(): over everything
    if not isinstance(dims, (tuple, list)):
        dims = (dims,)
    return any(isinstance(d, int) and d % 4 in (2, 3) and x.shape[d] > 1 for d in dims)


def _softmax_over_positions(args: tuple, kwargs: dict, positions: set[int]) -> bool:
    """Whether a softmax runs along an axis as long as a flattened feature map of the tile."""
    x = args[0] if args else None
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    return isinstance(x, Tensor) and isinstance(dim, int) and x.ndim >= 2 and x.shape[dim] in positions


class _Watch(TorchFunctionMode):
    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.culprits: list[nn.Module] = []
        scales = [2**k for k in range(8) if height % 2**k == 0 and width % 2**k == 0]
        self.positions = {(height // s) * (width // s) for s in scales} - {1}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if (
            (name in _REDUCTIONS or name in _ADAPTIVE_POOLS) and _reduces_space(name, args, kwargs)
        ) or (name in _SOFTMAX and _softmax_over_positions(args, kwargs, self.positions)):
            module = _calling_module()
            if module is not None and not isinstance(module, WholeImagePool) and module not in self.culprits:
                self.culprits.append(module)
        return func(*args, **kwargs)


def _calling_module() -> nn.Module | None:
    """The innermost module whose method is running (found on the Python call stack)."""
    frame = sys._getframe(2)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, nn.Module):
            return owner
        frame = frame.f_back
    return None


def tile_dependent_layers(model: Callable[[Tensor], Tensor], x: Tensor, found: list[str]) -> Tensor:
    """``model(x)``, appending to ``found`` the layers that pooled over their whole input (even if the call stops early)."""
    watch = _Watch(*x.shape[-2:])
    try:
        with watch:
            return model(x)
    finally:
        names = {id(m): name for name, m in model.named_modules()} if isinstance(model, nn.Module) else {}
        found += [f"{names.get(id(m), '?')} ({type(m).__name__})" for m in watch.culprits]
