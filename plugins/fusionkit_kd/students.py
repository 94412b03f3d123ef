"""The paper's student presets, each a recipe over registered backbone, attention and head components."""

from __future__ import annotations

import fusionkit
from fusionkit.api import ComponentOptionError, FusionNet, WeightBlend, head_produces_weights

#: ``mef_opt``'s objective when it refines a student's weights: that of the teacher the shipped student
#: was distilled from (docs/pretrained.md), MEF-SSIM with an edge term and a shadow floor.
REFINE_OBJECTIVE = {"tone_weight": 0.01, "shadow_weight": 3000.0, "edge_weight": 0.15}


def build_student(
    *,
    in_channels: int = 3,
    num_inputs: int = 2,
    width: int = 64,
    num_blocks: int = 6,
    skip: bool = True,
    spatial_attention: str = "strip",
    spatial_blocks: int = 2,
    channel_attention: str = "se",
    backbone: str = "kd_resnet",
    head: str = "kd_weights",
    blend: str = "pyramid",
    prior: str = "mertens",
    keep_balance: bool = False,
    fine_levels: int | None = 2,
    prior_shift: float = 0.0,
    shadow_fill: bool = False,
    refine_steps: int = 0,
) -> FusionNet:
    """Compose backbone -> ``spatial_blocks`` x spatial attention -> head (with channel attention).

    A head that produces weight maps (``kd_weights``) gets a :class:`WeightBlend` (``blend``, ``prior``,
    ``keep_balance``, ``fine_levels``, ``prior_shift``, ``shadow_fill``: by default the learned weights choose
    the two finest pyramid levels' detail and Mertens' weights the tones; ``refine_steps=n``: when fusing,
    n steps of ``mef_opt``'s ascent, with the objective of the teacher the shipped student learned from, start
    from the network's weights and correct each pyramid level's for each photo); the paper's ``kd_upsample``
    regresses the image. ``num_inputs=None`` accepts any number of exposures (shared per-exposure network,
    see FusionNet).
    """
    per_exposure = num_inputs is None
    weights = head_produces_weights(head)
    if per_exposure and not weights:
        raise ComponentOptionError(f"num_inputs=None (any number of exposures) needs a weight-map head, not {head!r}")
    if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or refine_steps < 0:
        raise ComponentOptionError(f"refine_steps must be a whole number >= 0; got {refine_steps!r}")
    if refine_steps and not weights:
        raise ComponentOptionError(f"refine_steps corrects blend weights: it needs a weight-map head, not {head!r}")
    body = fusionkit.create("backbone", backbone, in_channels * (1 if per_exposure else num_inputs), width=width, num_blocks=num_blocks)
    spatial = [fusionkit.create("attention", spatial_attention, body.out_channels) for _ in range(spatial_blocks)]
    fusion_head = fusionkit.create(
        "fusion_head",
        head,
        body.out_channels,
        skip_channels=body.skip_channels if skip else 0,
        out_channels=(1 if per_exposure else num_inputs) if weights else in_channels,
        width=width,
        channel_attention=channel_attention,
    )
    return FusionNet(
        body, spatial, fusion_head, in_channels=in_channels, num_inputs=num_inputs,
        blend=WeightBlend(
            blend, prior, keep_balance=keep_balance, fine_levels=fine_levels, prior_shift=prior_shift, shadow_fill=shadow_fill,
            refine=fusionkit.create("method", "mef_opt", iterations=refine_steps, **REFINE_OBJECTIVE).refine if refine_steps else None,
        )
        if weights else None,
    )


def kd_baseline(
    *, in_channels=3, num_inputs=2, width=64, num_blocks=6, skip=False,
    spatial_attention="none", spatial_blocks=2, channel_attention="none", backbone="kd_resnet", head="kd_weights",
    blend="pyramid", prior="mertens", keep_balance=False, fine_levels=2, prior_shift=0.0, shadow_fill=False,
    refine_steps=0,
) -> FusionNet:
    """KDDN student (Hong et al. 2020): no low-level skip, no attention."""
    return build_student(**locals())


def dense_fusion(
    *, in_channels=3, num_inputs=2, width=64, num_blocks=6, skip=True,
    spatial_attention="none", spatial_blocks=2, channel_attention="se", backbone="kd_resnet", head="kd_weights",
    blend="pyramid", prior="mertens", keep_balance=False, fine_levels=2, prior_shift=0.0, shadow_fill=False,
    refine_steps=0,
) -> FusionNet:
    """Low-level skip + SE channel attention, no strip pooling (the paper's DenseFusion)."""
    return build_student(**locals())


def se_strip(
    *, in_channels=3, num_inputs=2, width=64, num_blocks=6, skip=True,
    spatial_attention="strip", spatial_blocks=2, channel_attention="se", backbone="kd_resnet", head="kd_weights",
    blend="pyramid", prior="mertens", keep_balance=False, fine_levels=2, prior_shift=0.0, shadow_fill=False,
    refine_steps=0,
) -> FusionNet:
    """The paper's Final: low-level skip, SE channel attention, two strip-pooling modules."""
    return build_student(**locals())
