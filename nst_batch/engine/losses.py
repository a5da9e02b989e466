"""Loss terms of Gatys et al. (2015), plus total variation and Ruder et al.'s temporal loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gram", "content_loss", "style_loss", "tv_loss", "temporal_loss"]


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by C*H*W so that layers and sizes compare."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of activations (normalised by their size)."""
    return F.mse_loss(features, target)


def style_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the Gram matrix of `features` and a target Gram."""
    return F.mse_loss(gram(features), target_gram.expand(features.shape[0], -1, -1))


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Squared total variation: mean squared difference of neighbouring pixels."""
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


def temporal_loss(image: torch.Tensor, warped_prev: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ruder, Dosovitskiy, Brox (2016): (1/D) sum c * (x - warped_prev)^2.

    image, warped_prev: (B, 3, H, W); mask c: (B, 1, H, W) in [0,1], 0 at disocclusions
    and motion boundaries. D is the number of pixel values (B*3*H*W), as in the paper.
    """
    return (mask * (image - warped_prev).pow(2)).mean()
