"""The Gatys et al. optimisation, usable as a library: tensors in, tensors out."""

from nst_batch.engine.losses import content_loss, gram, relative_error, style_loss, temporal_loss, tv_loss
from nst_batch.engine.objective import Objective, build_objective
from nst_batch.engine.optimize import (
    Interrupted,
    LossWeights,
    NonFiniteLoss,
    OptimizeConfig,
    Progress,
    Regions,
    Result,
    Temporal,
    content_targets,
    optimize,
    style_grams,
    stylize,
)
from nst_batch.engine.multiscale import schedule, stylize_multiscale
from nst_batch.engine.precision import PRECISIONS, forward_precision
from nst_batch.engine.vgg import (LAYER_NAMES, FeatureExtractor, build_features, build_vgg16_features,
                                  build_vgg19_features, layer_names)

__all__ = ["content_loss", "gram", "relative_error", "Objective", "build_objective", "optimize", "style_loss",
           "temporal_loss", "tv_loss", "Interrupted", "LossWeights", "NonFiniteLoss", "OptimizeConfig", "Progress",
           "Regions", "Result", "Temporal", "content_targets", "style_grams", "stylize", "schedule",
           "stylize_multiscale", "PRECISIONS", "forward_precision", "LAYER_NAMES", "FeatureExtractor",
           "build_vgg19_features", "build_vgg16_features", "build_features", "layer_names"]
