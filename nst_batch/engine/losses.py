"""Loss terms of Gatys et al. (2015), plus total variation and Ruder et al.'s temporal loss.

The feature losses are *relative* squared errors: each layer's squared error divided by
its target's squared norm, per image. Multiplying every activation by a constant k (a
weights file trained on 0-255 inputs, say, whose activations are ~50x torchvision's)
multiplies error and norm alike, by k^2 for content and k^4 for Grams, so the loss, its
gradient direction and the whole optimisation are unchanged. Gatys et al.'s own sums
(content: 1/2 sum (F-P)^2; style: 1/(4 N^2 M^2) sum (G-A)^2) grow with k^2 and k^4,
which is why one set of default weights could not serve two weights files.

The pixel losses (total variation, temporal) act on [0,1] RGB and never see the network.
"""

from __future__ import annotations

import torch

__all__ = ["gram", "guided_gram", "relative_error", "content_loss", "style_loss", "guided_style_loss", "tv_loss",
           "temporal_loss"]

_TINY = 1e-30  # keeps an all-zero target (a black frame through random weights) finite


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by C*H*W so that layers and sizes compare."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def guided_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The Gram of a region (Gatys et al. 2017, guided Grams): (B, C, H, W) and its mask (B, 1, H, W) in [0,1]
    -> (B, C, C), the mask-weighted mean of the outer products, normalised by C times the mask's mass.

    A mask of ones gives `gram`; a uniform soft mask gives it too (a region's statistics do not fade with
    its opacity); an empty mask gives zeros.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    weights = mask.reshape(b, 1, h * w)
    mass = weights.sum(-1, keepdim=True).clamp_min(_TINY)  # (B, 1, 1)
    return torch.bmm(flat * weights, flat.transpose(1, 2)) / (c * mass)


# Every loss is per image; averaged over the batch, or with `per_image` one value per image (B,): the
# pictures of a batch as problems of their own (optimize.py).


def _reduce(per: torch.Tensor, per_image: bool) -> torch.Tensor:
    return per if per_image else per.mean()


def relative_error(x: torch.Tensor, target: torch.Tensor, *, per_image: bool = False) -> torch.Tensor:
    """Per image ||x - target||^2 / ||target||^2, averaged over the batch; x, target: (B, ...)."""
    dims = tuple(range(1, x.ndim))
    return _reduce((x - target).pow(2).sum(dims) / target.pow(2).sum(dims).clamp_min(_TINY), per_image)


def content_loss(features: torch.Tensor, target: torch.Tensor, *, per_image: bool = False) -> torch.Tensor:
    """Relative squared error of activations: (B, C, H, W) against the content's (B, C, H, W)."""
    return relative_error(features, target, per_image=per_image)


def style_loss(features: torch.Tensor, target_gram: torch.Tensor, *, per_image: bool = False) -> torch.Tensor:
    """Relative squared error of the Gram of `features` (B, C, H, W) against a target Gram (1 or B, C, C)."""
    g = gram(features)
    return relative_error(g, target_gram.expand_as(g), per_image=per_image)


def guided_style_loss(features: torch.Tensor, mask: torch.Tensor, target_gram: torch.Tensor, *,
                      per_image: bool = False) -> torch.Tensor:
    """A region's style loss: the relative error of its guided Gram against the target (1 or B, C, C), times
    the region's share of the picture (its mask's mean), per image, averaged over the batch.

    The share makes a region's pixels feel the pull a whole-picture style gives its pixels (the guided Gram
    is a mean over the region alone); the regions' losses of one picture then sum to about one style loss.
    """
    g = guided_gram(features, mask)
    target = target_gram.expand_as(g)
    error = (g - target).pow(2).sum((1, 2)) / target.pow(2).sum((1, 2)).clamp_min(_TINY)  # (B,)
    return _reduce(error * mask.mean((1, 2, 3)), per_image)


def tv_loss(image: torch.Tensor, *, per_image: bool = False) -> torch.Tensor:
    """Squared total variation: mean squared difference of neighbouring pixels."""
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    if per_image:
        return dy.pow(2).mean((1, 2, 3)) + dx.pow(2).mean((1, 2, 3))
    return dy.pow(2).mean() + dx.pow(2).mean()


def temporal_loss(image: torch.Tensor, warped_prev: torch.Tensor, mask: torch.Tensor, *,
                  per_image: bool = False) -> torch.Tensor:
    """Ruder, Dosovitskiy, Brox (2016): (1/D) sum c * (x - warped_prev)^2.

    image, warped_prev: (B, 3, H, W); mask c: (B, 1, H, W) in [0,1], 0 at disocclusions
    and motion boundaries. D is the number of pixel values (B*3*H*W), as in the paper.
    """
    per = mask * (image - warped_prev).pow(2)
    return per.mean((1, 2, 3)) if per_image else per.mean()
