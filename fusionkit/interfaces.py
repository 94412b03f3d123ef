"""The contracts components implement, written down as types the core relies on."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class BackboneOutput(NamedTuple):
    """What a backbone returns.

    ``bottleneck``: deepest features; ``skip``: low-level features for the head (or None);
    ``features``: intermediate features offered for distillation, in network order.
    """

    bottleneck: Tensor
    skip: Tensor | None
    features: list[Tensor]


# A backbone module also declares, so heads and losses can be sized without running it:
#   out_channels (bottleneck), skip_channels (0 when it offers none), feature_channels (list),
#   reduction (how many times smaller the bottleneck is than the input, per side).
# A fusion head is built from (in_channels, skip_channels, out_channels, ...) and maps
#   (bottleneck, skip) to an image in [-1, 1].
# An attention block is built from (channels, ...) and maps (N, C, H, W) -> (N, C, H, W); one that
#   pools over the whole image does so with fusionkit.wholeimage.WholeImagePool, so tiles stay exact.
# A distill loss maps (student_features, teacher_features) -> scalar tensor.
