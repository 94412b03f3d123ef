"""fusionkit's reference plugin: the knowledge-distillation fusion method of PAPER.md, its networks and its
training recipe ``distill``."""

from fusionkit import hookimpl

from .attention import NoAttention, SqueezeExcite, StripPooling
from .backbone import KDResNetBackbone
from .distill import L1FeatureDistill
from .head import UpsampleHead, WeightMapHead
from .students import dense_fusion, kd_baseline, se_strip
from .teacher import ae
from .pretrained import se_strip_real
from .recipe import Distillation


@hookimpl
def register_components(register):
    register("attention", "none", NoAttention)
    register("attention", "se", SqueezeExcite)
    register("attention", "strip", StripPooling, "Strip pooling mixed pooling module (Hou et al., CVPR 2020)")
    register("backbone", "kd_resnet", KDResNetBackbone, "Student backbone: base convs (skip), 1/4 down, ResBlocks")
    register("fusion_head", "kd_upsample", UpsampleHead, "Upsample x4, concat skip, channel attention, conv + Tanh (the paper)")
    register("fusion_head", "kd_weights", WeightMapHead, "Upsample x4, concat skip, channel attention, one weight logit map per exposure")
    register("distill_loss", "l1_features", L1FeatureDistill, "L1 between paired ResBlock features (paper: 2-2, 4-4, 6-6)")
    register("student", "kd_baseline", kd_baseline)
    register("student", "dense_fusion", dense_fusion)
    register("student", "se_strip", se_strip)
    register("teacher", "ae", ae)
    register("recipe", "distill", Distillation)
    register("pretrained", "se_strip_real", se_strip_real)
