"""fusionkit plugin offering timm's attention blocks (``timm.layers.create_attn``) as attention components."""

from __future__ import annotations

from functools import partial

from fusionkit import hookimpl
from fusionkit.api import ComponentOptionError

#: timm name -> (name in fusionkit, summary). timm's "se" and "strip" are registered with a
#: ``timm_`` prefix so they do not collide with the reference plugin's blocks of the same names.
TIMM_ATTENTION = {
    "eca": ("eca", "Efficient channel attention (Wang et al., CVPR 2020), from timm"),
    "ecam": ("ecam", "ECA with an MLP gate, from timm"),
    "ceca": ("ceca", "Circular-padded ECA, from timm"),
    "ese": ("ese", "Effective squeeze-excitation (one FC), from timm"),
    "se": ("timm_se", "timm's squeeze-excitation module"),
    "cbam": ("cbam", "CBAM channel + spatial attention (Woo et al., ECCV 2018), from timm"),
    "lcbam": ("lcbam", "Lightweight CBAM, from timm"),
    "gc": ("gc", "Global context block (Cao et al., 2019), from timm"),
    "gca": ("gca", "Global context block, additive fusion only, from timm"),
    "coord": ("coord", "Coordinate attention (Hou et al., CVPR 2021), from timm"),
    "scoord": ("scoord", "Simplified coordinate attention, from timm"),
    "ela": ("ela", "Efficient local attention, from timm"),
    "strip": ("timm_strip", "timm's minimal strip attention"),
    "nl": ("nl", "Non-local spatial block (Wang et al., CVPR 2018), from timm"),
}


def timm_attention(timm_name: str, channels: int, **options):
    """Build timm's attention block ``timm_name`` for ``channels`` (options go to timm).

    timm is imported here, not when the plugin loads: importing it takes about a second (it pulls
    in torchvision), which every command would otherwise pay.
    """
    from timm.layers import create_attn

    try:
        return create_attn(timm_name, channels, **options)
    except TypeError as exc:  # timm reports a misspelt option as a plain TypeError
        raise ComponentOptionError(f"attention {timm_name!r} (timm): {exc}") from None


@hookimpl
def register_components(register):
    for timm_name, (name, summary) in TIMM_ATTENTION.items():
        register("attention", name, partial(timm_attention, timm_name), summary)
