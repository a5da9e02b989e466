"""The one place that chooses the arithmetic of the VGG forward from the device type.

- `fp32`: plain float32 everywhere (the default; bit-identical to no context at all).
- `tf32`: on CUDA, convolutions and matmuls use TensorFloat-32 tensor cores; elsewhere
  TF32 does not exist and the math is fp32.
- `bf16`: the VGG forward runs under `torch.autocast(device_type, bfloat16)` on any
  device; the extractor hands back float32 activations, so Grams and losses stay fp32.

On CUDA every mode also turns on cuDNN's benchmark mode (the frame size is fixed for
a whole job, so the autotuning is paid once). Flags are restored on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["PRECISIONS", "forward_precision"]

PRECISIONS = ("fp32", "tf32", "bf16")


@contextmanager
def forward_precision(device: torch.device, precision: str) -> Iterator[None]:
    """Context for the VGG forward pass on `device` in `precision` (fp32 | tf32 | bf16)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        if precision == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        if precision == "bf16":
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved
