"""Feature-mimicking distillation losses; which blocks pair up is data, not code."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

#: The paper pairs student ResBlocks 2, 4, 6 with the teacher's 2, 4, 6 (1-based).
PAPER_PAIRS = ((2, 2), (4, 4), (6, 6))


class L1FeatureDistill(nn.Module):
    """Sum over (student block m, teacher block n) pairs of mean |S^m - T^n| (1-based block numbers)."""

    def __init__(self, pairs: Sequence[Sequence[int]] = PAPER_PAIRS) -> None:
        super().__init__()
        self.pairs = [tuple(int(i) for i in pair) for pair in pairs]
        if not self.pairs or any(len(p) != 2 or min(p) < 1 for p in self.pairs):
            raise ValueError(f"pairs must be (student_block, teacher_block) with 1-based numbers, got {pairs!r}")

    def forward(self, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
        total = torch.zeros((), device=student[0].device, dtype=torch.float32)
        for m, n in self.pairs:
            if m > len(student) or n > len(teacher):
                raise ValueError(
                    f"distillation pair ({m}, {n}) needs student block {m} and teacher block {n}, "
                    f"but the student offers {len(student)} and the teacher {len(teacher)}"
                )
            s, t = student[m - 1], teacher[n - 1]
            if s.shape != t.shape:
                raise ValueError(f"distillation pair ({m}, {n}): student {tuple(s.shape)} vs teacher {tuple(t.shape)}")
            total = total + (s.float() - t.float()).abs().mean()
        return total
