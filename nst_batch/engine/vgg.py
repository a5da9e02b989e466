"""VGG19 or VGG16 as a named-layer feature extractor, cut after the deepest layer needed.

The image enters in [0,1] RGB; the preprocessing the weights were trained with
(torchvision's or Caffe's) happens inside the model, so the optimised pixels never
leave image space.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

__all__ = ["MODELS", "PREPROCESSES", "PADDINGS", "LAYER_NAMES", "layer_names", "FeatureExtractor", "build_features",
           "build_vgg19_features", "build_vgg16_features", "IMAGENET_MEAN", "IMAGENET_STD", "CAFFE_MEAN_BGR"]

MODELS = ("vgg19", "vgg16")
PREPROCESSES = ("torchvision", "caffe")
# How a convolution sees past the picture's edge: torchvision's and Caffe's VGG pad with zeros (in the
# preprocessed input: the mean colour at conv1_1, "no activation" deeper), which the optimiser can paint
# against; reflect / replicate (crowsonkb's style-transfer-pytorch) show it the picture itself there.
PADDINGS = ("zeros", "reflect", "replicate")
# torchvision's VGG `features`: (block, convs per block). Index i of the Sequential
# gets the name layer_names(model)[i].
_BLOCKS = {"vgg19": ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)),
           "vgg16": ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))}
_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


def _names(model: str) -> tuple[str, ...]:
    names: list[str] = []
    for block, convs in _BLOCKS[model]:
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


_LAYER_NAMES = {model: _names(model) for model in MODELS}
LAYER_NAMES: tuple[str, ...] = _LAYER_NAMES["vgg19"]  # ('conv1_1', 'relu1_1', 'conv1_2', ..., 'pool5'), 37 names
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Caffe's VGG (Simonyan & Zisserman; jcjohnson/neural-style, neural-style-pt): BGR in
# 0-255 minus this mean pixel, no division by a standard deviation.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def layer_names(model: str = "vgg19") -> tuple[str, ...]:
    """The layer names of `model` in `features` order: VGG19 37 ('conv1_1' ... 'pool5'), VGG16 31.

    Raises:
        ValueError: `model` is not one of MODELS.
    """
    try:
        return _LAYER_NAMES[model]
    except KeyError:
        raise ValueError(f"unknown VGG model {model!r}; expected one of {', '.join(MODELS)}") from None


def build_features(model: str = "vgg19", state_dict: Mapping[str, torch.Tensor] | None = None) -> nn.Sequential:
    """torchvision's `features` layout for `model`; loads `state_dict` (keys '0.weight', ...) if given."""
    layer_names(model)  # validates the name
    layers: list[nn.Module] = []
    in_ch = 3
    for block, convs in _BLOCKS[model]:
        out_ch = _CHANNELS[block]
        for _ in range(convs):
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_ch = out_ch
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    features = nn.Sequential(*layers)
    if state_dict is not None:
        features.load_state_dict(state_dict)
    return features


def build_vgg19_features(state_dict: Mapping[str, torch.Tensor] | None = None) -> nn.Sequential:
    """torchvision's VGG19 `features` layout; loads `state_dict` (keys '0.weight', ...) if given."""
    return build_features("vgg19", state_dict)


def build_vgg16_features(state_dict: Mapping[str, torch.Tensor] | None = None) -> nn.Sequential:
    """torchvision's VGG16 `features` layout; loads `state_dict` (keys '0.weight', ...) if given."""
    return build_features("vgg16", state_dict)


class _EdgeConv(nn.Conv2d):
    """A VGG 3x3 convolution that pads by reflection or replication; reflection falls back to replication
    on a map 1 px across (deep layers of a small picture), where it is undefined."""

    def __init__(self, conv: nn.Conv2d, mode: str) -> None:
        super().__init__(conv.in_channels, conv.out_channels, 3, padding=0, device="meta")
        self.weight = conv.weight  # shared: the trained weights, not a copy
        self.bias = conv.bias
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "replicate" if self.mode == "reflect" and min(x.shape[-2:]) < 2 else self.mode
        return super().forward(F.pad(x, (1, 1, 1, 1), mode=mode))


def _padded(conv: nn.Conv2d, mode: str) -> nn.Conv2d:
    """`conv` padding with `mode` instead of zeros: a new module sharing its weight and bias."""
    return _EdgeConv(conv, mode)


class FeatureExtractor(nn.Module):
    """Returns {layer name: activation} for the requested layers, in one forward pass.

    Layers past the deepest requested one are dropped; parameters are frozen.
    A `convX_Y` activation is the convolution's own output, before its ReLU; `reluX_Y`
    is the ReLU's output. The ReLU after a requested conv layer makes a new tensor,
    every other ReLU works in place (same values, one allocation fewer; autograd allows
    it because ReLU's backward needs only its output and a convolution's backward needs
    only its input).

    `model` ("vgg19" | "vgg16") names the layers of `features` (torchvision's layout).
    `preprocess` is the input the weights were trained on: "torchvision" (RGB in [0,1],
    ImageNet mean/std) or "caffe" (BGR, 0-255, mean pixel subtracted, no std division).
    Either way the extractor takes [0,1] RGB and converts it.

    `memory_saving` checkpoints each VGG block (conv... pool) when a gradient is being
    taken: only block boundaries and requested activations are kept for the backward
    pass, the rest is recomputed. Same values and gradients, about one more forward per
    iteration, much less memory on big frames. Returned activations are always float32
    (under bf16 autocast the convolutions run in bf16; Grams and losses stay fp32).

    `padding` is what each 3x3 convolution sees past the edge: "zeros" (the VGG as trained),
    "reflect" or "replicate" (the picture's own pixels; no rim to paint against). `ceil_pool`
    pools a last odd row or column as a window of its own instead of dropping it (floor, as
    trained): at a side that is not a multiple of 16 the last rows would otherwise get no
    gradient from the deeper layers.

    Raises:
        ValueError: an unknown model, preprocess or layer name, or `features` of another model.
    """

    mean: torch.Tensor  # buffers (1, 3, 1, 1): the preprocessing
    std: torch.Tensor

    def __init__(self, features: nn.Sequential, layers: Iterable[str], *, model: str = "vgg19",
                 preprocess: str = "torchvision", pooling: str = "max", memory_saving: bool = False,
                 padding: str = "zeros", ceil_pool: bool = False) -> None:
        super().__init__()
        all_names = layer_names(model)
        if preprocess not in PREPROCESSES:
            raise ValueError(f"unknown preprocess {preprocess!r}; expected one of {', '.join(PREPROCESSES)}")
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r}; expected one of {', '.join(PADDINGS)}")
        children = list(features.children())
        if len(children) != len(all_names):
            raise ValueError(f"`features` has {len(children)} modules, {model} has {len(all_names)}")
        wanted = set(layers)
        unknown = wanted - set(all_names)
        if unknown:
            raise ValueError(f"unknown {model.upper()} layers: {sorted(unknown)}")
        depth = max(all_names.index(name) for name in wanted) + 1
        mods: list[nn.Module] = []
        for name, module in zip(all_names, children[:depth]):
            if isinstance(module, nn.MaxPool2d):
                if pooling == "avg":
                    module = nn.AvgPool2d(kernel_size=2, stride=2, ceil_mode=ceil_pool)
                elif ceil_pool:
                    module = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
            if isinstance(module, nn.Conv2d) and padding != "zeros":
                module = _padded(module, padding)
            if isinstance(module, nn.ReLU):  # a fresh module: the shared `features` stay untouched
                module = nn.ReLU(inplace=name.replace("relu", "conv") not in wanted)
            mods.append(module)
        self.layers = nn.ModuleList(mods)
        self.model = model
        self.preprocess = preprocess
        self.names = all_names[:depth]
        self.wanted = frozenset(wanted)
        self.memory_saving = memory_saving
        self.padding = padding
        self.ceil_pool = ceil_pool
        # Blocks for checkpointing: index ranges [start, stop) ending after each pool.
        cuts = [i + 1 for i, n in enumerate(self.names) if n.startswith("pool")]
        bounds = [0, *[c for c in cuts if c < depth], depth]
        self.blocks = tuple(zip(bounds[:-1], bounds[1:]))
        # Preprocessing as x' = (x[channels] - mean) / std on [0,1] RGB. Caffe:
        # 255 * x_bgr - mean_bgr = (x_bgr - mean_bgr / 255) / (1 / 255).
        self.bgr = preprocess == "caffe"
        if self.bgr:
            mean, std = [m / 255 for m in CAFFE_MEAN_BGR], [1 / 255] * 3
        else:
            mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """image: (B, 3, H, W) in [0,1] RGB -> {name: (B, C, h, w) float32}."""
        if self.bgr:
            image = image.flip(1)  # RGB -> BGR
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
