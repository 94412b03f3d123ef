"""OpenCV-compatible image pyramids and Laplacian in torch, so Mertens runs batched on any device.

Filters are written as weighted sums of shifted copies rather than convolutions: that keeps
float32 exact on GPUs, where cuDNN convolutions may silently run in TF32.
"""

from __future__ import annotations

import torch

#: The 5-tap binomial kernel behind cv2.pyrDown (sums to 16).
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def _reflect101(i: int, n: int) -> int:
    """Index ``i`` folded into ``[0, n)`` like OpenCV's BORDER_REFLECT_101 (``dcb|abcd|cba``)."""
    if n == 1:
        return 0
    while not 0 <= i < n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def _take(x: torch.Tensor, dim: int, index: list[int]) -> torch.Tensor:
    return x.index_select(dim, torch.tensor(index, device=x.device))


def _down_along(x: torch.Tensor, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    return sum(
        tap / 16 * _take(x, dim, [_reflect101(2 * j + offset, n) for j in range((n + 1) // 2)])
        for offset, tap in zip(range(-2, 3), _BINOMIAL)
    )


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """cv2.pyrDown over the last two dims: binomial blur (reflect-101), keep even samples, ceil(n/2)."""
    return _down_along(_down_along(x, -1), -2)


def _up_along(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    # OpenCV reflects at the start (sample -1 is sample 1) but repeats the last sample at the end.
    n = x.shape[dim]
    before = _take(x, dim, [_reflect101(i - 1, n) for i in range(n)])
    after = _take(x, dim, [min(i + 1, n - 1) for i in range(n)])
    even = (before + 6 * x + after) / 8
    odd = (x + after) / 2
    return torch.stack((even, odd), dim=dim).flatten(dim - 1, dim).narrow(dim, 0, size)


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.pyrUp over the last two dims to ``size`` (H, W), each at most twice the input's."""
    return _up_along(_up_along(x, -1, size[1]), -2, size[0])


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """cv2.Laplacian with ksize=1 (4-neighbour kernel) and reflect-101 borders over the last two dims."""
    def shifted(dim: int, step: int) -> torch.Tensor:
        n = x.shape[dim]
        return _take(x, dim, [_reflect101(i + step, n) for i in range(n)])

    # Summed in OpenCV's order (kernel taps row by row), which keeps flat regions' rounding alike.
    return shifted(-2, -1) + shifted(-1, -1) + -4 * x + shifted(-1, 1) + shifted(-2, 1)
