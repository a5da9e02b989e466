"""VGG19 as a named-layer feature extractor, cut after the deepest layer needed.

The image enters in [0,1] RGB; ImageNet normalisation happens inside the model,
so the optimised pixels never leave image space.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["LAYER_NAMES", "FeatureExtractor", "build_vgg19_features", "IMAGENET_MEAN", "IMAGENET_STD"]

# torchvision's VGG19 `features`: (block, convs per block). Index i of the
# Sequential gets the name LAYER_NAMES[i].
_BLOCKS = ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, convs in _BLOCKS:
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES: tuple[str, ...] = _layer_names()  # ('conv1_1', 'relu1_1', 'conv1_2', ..., 'pool5'), 37 names
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_vgg19_features(state_dict: Mapping[str, torch.Tensor] | None = None) -> nn.Sequential:
    """torchvision's VGG19 `features` layout; loads `state_dict` (keys '0.weight', ...) if given."""
    layers: list[nn.Module] = []
    in_ch = 3
    for block, convs in _BLOCKS:
        out_ch = _CHANNELS[block]
        for _ in range(convs):
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_ch = out_ch
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    features = nn.Sequential(*layers)
    if state_dict is not None:
        features.load_state_dict(state_dict)
    return features


class FeatureExtractor(nn.Module):
    """Returns {layer name: activation} for the requested layers, in one forward pass.

    Layers past the deepest requested one are dropped; parameters are frozen.
    A `convX_Y` activation is the convolution's own output (Gatys et al. name layers
    by their convolution, and we keep that meaning): the ReLU after a requested conv
    layer makes a new tensor, every other ReLU works in place (same values, one
    allocation fewer; autograd allows it because ReLU's backward needs only its output
    and a convolution's backward needs only its input).

    `memory_saving` checkpoints each VGG block (conv... pool) when a gradient is being
    taken: only block boundaries and requested activations are kept for the backward
    pass, the rest is recomputed. Same values and gradients, about one more forward per
    iteration, much less memory on big frames. Returned activations are always float32
    (under bf16 autocast the convolutions run in bf16; Grams and losses stay fp32).
    """

    def __init__(self, features: nn.Sequential, layers: Iterable[str], *, pooling: str = "max",
                 memory_saving: bool = False) -> None:
        super().__init__()
        wanted = set(layers)
        unknown = wanted - set(LAYER_NAMES)
        if unknown:
            raise ValueError(f"unknown VGG19 layers: {sorted(unknown)}")
        depth = max(LAYER_NAMES.index(name) for name in wanted) + 1
        mods: list[nn.Module] = []
        for name, module in zip(LAYER_NAMES, list(features.children())[:depth]):
            if pooling == "avg" and isinstance(module, nn.MaxPool2d):
                module = nn.AvgPool2d(kernel_size=2, stride=2)
            if isinstance(module, nn.ReLU):  # a fresh module: the shared `features` stay untouched
                module = nn.ReLU(inplace=name.replace("relu", "conv") not in wanted)
            mods.append(module)
        self.layers = nn.ModuleList(mods)
        self.names = LAYER_NAMES[:depth]
        self.wanted = frozenset(wanted)
        self.memory_saving = memory_saving
        # Blocks for checkpointing: index ranges [start, stop) ending after each pool.
        cuts = [i + 1 for i, n in enumerate(self.names) if n.startswith("pool")]
        bounds = [0, *[c for c in cuts if c < depth], depth]
        self.blocks = tuple(zip(bounds[:-1], bounds[1:]))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """image: (B, 3, H, W) in [0,1] RGB -> {name: (B, C, h, w) float32}."""
        x = (image - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        if self.memory_saving and torch.is_grad_enabled() and x.requires_grad:
            for start, stop in self.blocks:
                x, *feats = checkpoint(self._block, x, start, stop, use_reentrant=False)
                out.update(zip([n for n in self.names[start:stop] if n in self.wanted], feats))
        else:
            x, *feats = self._block(x, 0, len(self.layers))
            out.update(zip([n for n in self.names if n in self.wanted], feats))
        return out

    def _block(self, x: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, ...]:
        """Run layers [start, stop): (output, requested activations in layer order)."""
        feats: list[torch.Tensor] = []
        for i in range(start, stop):
            x = self.layers[i](x)
            if self.names[i] in self.wanted:
                feats.append(x.float())  # no copy when x is already float32
        return (x, *feats)
