"""OpenCV-compatible image pyramids and Laplacian in torch, so Mertens runs batched on any device.

Filters are written as weighted sums of shifted views rather than convolutions: that keeps float32
exact on GPUs, where cuDNN convolutions may silently run in TF32, and on CPUs it is several times
faster than a depthwise convolution. Each filter pads once (OpenCV's borders), then adds strided
views in place, so a pass over a 24-megapixel image allocates only its output.
"""

from __future__ import annotations

import functools

import torch

#: The 5-tap binomial kernel behind cv2.pyrDown (sums to 16): taps for offsets -2..2.
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)
#: Axes shorter than this are filtered through one padded copy: a few operations on a small tensor
#: cost less than the many views and border slices that spare a large one its copy.
VIEWS_FROM = 64


def _reflect101(i: int, n: int) -> int:
    """Index ``i`` folded into ``[0, n)`` like OpenCV's BORDER_REFLECT_101 (``dcb|abcd|cba``)."""
    if n == 1:
        return 0
    while not 0 <= i < n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def _padded(x: torch.Tensor, dim: int, before: int, after: int, repeat_end: bool = False) -> torch.Tensor:
    """``x`` extended along ``dim`` with reflect-101 borders (or the last sample repeated at the end)."""
    return x.index_select(dim, _padding_index(x.shape[dim], before, after, repeat_end, x.device))


@functools.lru_cache(maxsize=256)
def _padding_index(n: int, before: int, after: int, repeat_end: bool, device: torch.device) -> torch.Tensor:
    """The samples a padded axis of length ``n`` reads, kept: small pyramids would otherwise spend their time building them."""
    end = (min(i, n - 1) if repeat_end else _reflect101(i, n) for i in range(n, n + after))
    with torch.inference_mode(False):  # a normal tensor: backward may save it even if inference made it first
        return torch.tensor([_reflect101(i, n) for i in range(-before, 0)] + list(range(n)) + list(end), device=device)


def _every_other(x: torch.Tensor, dim: int, start: int, count: int) -> torch.Tensor:
    """The view of ``count`` samples of ``x`` along ``dim`` from ``start`` in steps of two."""
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, start + 2 * count - 1, 2)
    return x[tuple(index)]


def _down_along(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Binomial blur along ``dim`` evaluated only at the even samples that are kept."""
    n = x.shape[dim]
    if n < max(VIEWS_FROM, 6) or (torch.is_grad_enabled() and x.requires_grad):
        return _down_padded(x, dim)
    # Outputs 1..inner read samples inside the image only: computed from views of x, no padded copy.
    # Output 0 and the last output need the border, taken from small padded slices at the ends.
    inner = (n - 3) // 2
    shape = list(x.shape)
    shape[dim] = inner + 2
    out = x.new_empty(shape)
    _binomial_sum([_every_other(x, dim, offset, inner) for offset in range(5)], out=out.narrow(dim, 1, inner))
    out.narrow(dim, 0, 1).copy_(_down_padded(x.narrow(dim, 0, 3), dim).narrow(dim, 0, 1))
    out.narrow(dim, inner + 1, 1).copy_(_down_padded(x.narrow(dim, 2 * inner, n - 2 * inner), dim).narrow(dim, 1, 1))
    return out


def _down_padded(x: torch.Tensor, dim: int) -> torch.Tensor:
    """:func:`_down_along` by padding first: for short axes, border slices, and when gradients flow."""
    count = (x.shape[dim] + 1) // 2
    p = _padded(x, dim, 2, 2)
    return _binomial_sum([_every_other(p, dim, offset, count) for offset in range(5)])


def _binomial_sum(taps: list[torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
    """The five shifted views weighted by the binomial kernel, summed in place (into ``out`` if given)."""
    total = torch.add(taps[0], taps[4]) if out is None else torch.add(taps[0], taps[4], out=out)
    for tap, weight in zip(taps[1:4], _BINOMIAL[1:4]):
        total.add_(tap, alpha=weight)
    return total.mul_(1 / 16)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """cv2.pyrDown over the last two dims: binomial blur (reflect-101), keep even samples, ceil(n/2)."""
    return _down_along(_down_along(x, -2), -1)  # rows first: that pass reads whole contiguous rows


def _up_along(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    # Zero-insertion then the binomial kernel times two: even outputs (a + 6b + c) / 8, odd (b + c) / 2.
    dim = dim % x.ndim
    n = x.shape[dim]
    if n < max(VIEWS_FROM, 3) or (torch.is_grad_enabled() and x.requires_grad):
        return _up_padded(x, dim).narrow(dim, 0, size)
    shape = list(x.shape)
    shape[dim] = 2 * n
    out = x.new_empty(shape)  # written through strided views: no padded copy, no stacking pass
    before, centre, after = (x.narrow(dim, offset, n - 2) for offset in range(3))
    even, odd = _every_other(out, dim, 2, n - 2), _every_other(out, dim, 1, n - 1)
    if dim == x.ndim - 1 and x.device.type == "cpu":
        # Along rows a CPU does arithmetic on every-other views one value at a time: computed
        # contiguously and interleaved once, the Mertens blend takes 5-10 % less time at 0.25-24 MP.
        even.copy_(torch.add(before, after).add_(centre, alpha=6).mul_(1 / 8))
        odd.copy_(torch.add(x.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1)).mul_(1 / 2))
    else:
        torch.add(before, after, out=even).add_(centre, alpha=6).mul_(1 / 8)
        torch.add(x.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1), out=odd).mul_(1 / 2)
    # The first even output and the last pair see the borders: from small padded slices at the ends.
    out.narrow(dim, 0, 1).copy_(_up_padded(x.narrow(dim, 0, 2), dim).narrow(dim, 0, 1))
    out.narrow(dim, 2 * n - 2, 2).copy_(_up_padded(x.narrow(dim, n - 2, 2), dim).narrow(dim, 2, 2))
    return out.narrow(dim, 0, size)


def _up_padded(x: torch.Tensor, dim: int) -> torch.Tensor:
    """:func:`_up_along` by padding first, to twice the length.

    OpenCV reflects at the start (sample -1 is sample 1) but repeats the last sample at the end.
    """
    n = x.shape[dim]
    p = _padded(x, dim, 1, 1, repeat_end=True)
    before, centre, after = (p.narrow(dim, offset, n) for offset in range(3))
    even = torch.add(before, after).add_(centre, alpha=6).mul_(1 / 8)
    odd = torch.add(centre, after).mul_(1 / 2)
    return torch.stack((even, odd), dim=dim + 1).flatten(dim, dim + 1)


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.pyrUp over the last two dims to ``size`` (H, W), each at most twice the input's."""
    return _up_along(_up_along(x, -2, size[0]), -1, size[1])


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """cv2.Laplacian with ksize=1 (4-neighbour kernel) and reflect-101 borders over the last two dims.

    Summed in OpenCV's order (kernel taps row by row), which keeps flat regions' rounding alike;
    each neighbour is added through views, its reflected border row or column separately.
    """
    h, w = x.shape[-2:]
    if h < 2 or w < 2 or (torch.is_grad_enabled() and x.requires_grad):
        p = _padded(_padded(x, -1, 1, 1), -2, 1, 1)
        shifted = [p[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in ((0, -1), (0, 1), (1, 0))]
        return torch.add(p[..., :h, 1 : 1 + w], shifted[0]).add_(x, alpha=-4).add_(shifted[1]).add_(shifted[2])
    out = torch.empty_like(x)
    out[..., 1:, :] = x[..., :-1, :]  # top neighbour
    out[..., 0, :] = x[..., 1, :]
    out[..., :, 1:] += x[..., :, :-1]  # left
    out[..., :, 0] += x[..., :, 1]
    out.add_(x, alpha=-4)
    out[..., :, :-1] += x[..., :, 1:]  # right
    out[..., :, -1] += x[..., :, -2]
    out[..., :-1, :] += x[..., 1:, :]  # bottom
    out[..., -1, :] += x[..., -2, :]
    return out
