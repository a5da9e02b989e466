"""How much memory one optimisation needs, counted from the layer shapes before it runs.

The count is of the bytes the optimisation itself allocates on its device (the VGG
weights, loaded once per run, are not in it):

- activations autograd keeps for the backward pass: every convolution's output (an
  in-place ReLU shares it; a ReLU whose convolution is asked for by name makes its own),
  every pooling's output and its int64 indices. With `memory_saving` only each block's
  input and output and the asked-for layers are kept, and the largest block is held
  again while it is recomputed;
- the backward pass's own gradients: about two of the largest activation at once;
- the loss terms: the content targets and the difference to them, the total-variation
  and temporal differences (a few picture-sized tensors);
- the optimiser's state in picture-sized vectors: L-BFGS keeps two per remembered
  step (`history_size` of them, fewer when the run is shorter) and about five more;
  Adam three; the best image so far, the start and the content one each.

Everything scales with the batch and the pixel count. `OVERHEAD` covers what the count
leaves out (the allocator's rounding and fragmentation, small temporaries); it was
fitted against measured peaks (BENCHMARKS.md, "Memory plan": within 25 % at 256-1024 px).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch.nn as nn

from nst_batch.engine.vgg import FeatureExtractor

__all__ = ["LBFGS_HISTORY", "OVERHEAD", "optimisation_bytes", "activation_bytes_per_pixel"]

LBFGS_HISTORY = 50  # the L-BFGS history_size optimize.py uses
OVERHEAD = 1.15
_FLOAT = 4
_INDEX = 8  # max-pooling's int64 indices


def _layer_sizes(extractor: FeatureExtractor) -> list[tuple[str, int, int]]:
    """(kind, channels, downscale) after each layer: kind is "conv", "relu", "relu_copy" or "pool"."""
    out = []
    channels, down = 3, 1
    for module in extractor.layers:
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels
            out.append(("conv", channels, down))
        elif isinstance(module, nn.ReLU):
            out.append(("relu" if module.inplace else "relu_copy", channels, down))
        else:  # MaxPool2d / AvgPool2d, stride 2
            down *= 2
            out.append(("pool_max" if isinstance(module, nn.MaxPool2d) else "pool", channels, down))
    return out


def _bytes(entries: Iterable[tuple[str, int, int]]) -> float:
    """Bytes per input pixel the tensors after these layers hold."""
    total = 0.0
    for kind, channels, down in entries:
        if kind == "relu":
            continue  # in place: shares the convolution's output
        per = channels / (down * down)
        total += per * _FLOAT
        if kind == "pool_max":
            total += per * _INDEX
    return total


def activation_bytes_per_pixel(extractor: FeatureExtractor, *, memory_saving: bool) -> float:
    """Peak bytes per input pixel of the forward and backward passes through `extractor`."""
    sizes = _layer_sizes(extractor)
    largest = max(channels / (down * down) for _, channels, down in sizes) * _FLOAT
    grads = 2 * largest
    if not memory_saving:
        return _bytes(sizes) + grads
    kept = 0.0
    biggest_block = 0.0
    for start, stop in extractor.blocks:
        block = sizes[start:stop]
        kept += _bytes(block[-1:])  # the block's output (the next one's input)
        kept += _bytes(s for s, name in zip(block, extractor.names[start:stop]) if name in extractor.wanted)
        biggest_block = max(biggest_block, _bytes(block))
    return kept + biggest_block + grads


def optimisation_bytes(extractor: FeatureExtractor, *, height: int, width: int, batch: int = 1,
                       optimizer: str = "lbfgs", iterations: int = LBFGS_HISTORY, memory_saving: bool = False,
                       content_layers: Iterable[str] = (), temporal: bool = False) -> int:
    """Estimated peak bytes of one `stylize` of `batch` pictures of height x width on its device."""
    pixels = height * width * batch
    picture = 3 * _FLOAT  # one RGB float tensor, per pixel
    if optimizer == "lbfgs":
        vectors = 2 * min(iterations, LBFGS_HISTORY) + 5
    else:
        vectors = 3
    vectors += 3  # the best image so far, the start, the content
    terms = 4 + (3 if temporal else 0)  # tv differences; the temporal target, its mask and difference
    sizes = dict(zip(extractor.names, _layer_sizes(extractor)))
    content = 2 * _bytes(sizes[name] for name in content_layers if name in sizes)  # target + difference
    per_pixel = activation_bytes_per_pixel(extractor, memory_saving=memory_saving) + content
    per_pixel += (vectors + terms) * picture
    return int(pixels * per_pixel * OVERHEAD)
