"""The one place that chooses the arithmetic of the VGG from the device type.

- `fp32`: plain float32 everywhere (on the CPU bit-identical to no context at all; on
  CUDA cuDNN's TF32, on by PyTorch's default, is turned off).
- `tf32`: on CUDA, the VGG's convolutions use TensorFloat-32 tensor cores (cuDNN);
  elsewhere TF32 does not exist and the math is fp32.
- `bf16`: the VGG forward runs under `torch.autocast(device_type, bfloat16)` on any
  device; the extractor hands back float32 activations.
In every mode the Grams and losses stay fp32: the matmul TF32 flag (they are matmuls,
the VGG has none) is left as PyTorch has it, and autocast covers the VGG alone.

On CUDA every mode also turns on cuDNN's benchmark mode (the frame size is fixed for
a whole job, so the autotuning is paid once). Flags are restored on exit.

Two contexts, because the two kinds of state reach the backward pass differently:
- `precision_flags`: cuDNN's TF32 and benchmark flags. They are process-wide, read
  when an op runs, so they must be set around the backward too (and so around
  `memory_saving`'s recomputation, which runs inside the backward); otherwise the
  backward runs with PyTorch's defaults (TF32 on, benchmark off), whatever `precision` says.
- `forward_precision`: those flags plus bf16 autocast, for the forward alone. Autocast
  need not (and should not) cover the backward: each op's backward runs in the dtype
  its forward ran in, torch.utils.checkpoint re-enters the forward's autocast state
  for its recomputation, and an autocast around `backward()` would cast the backward
  of the fp32 Gram and loss math to bf16.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["PRECISIONS", "forward_precision", "precision_flags"]

PRECISIONS = ("fp32", "tf32", "bf16")


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")


def _has_cuda_flags(device: torch.device) -> bool:
    """Whether `device` reads cuDNN's flags (tests stand a CPU in for CUDA here)."""
    return device.type == "cuda"


@contextmanager
def precision_flags(device: torch.device, precision: str) -> Iterator[None]:
    """cuDNN's TF32 and benchmark flags of `precision` on `device`, for a forward *and* its backward."""
    _check(precision)
    if not _has_cuda_flags(device):
        yield
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = precision == "tf32", True
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


@contextmanager
def forward_precision(device: torch.device, precision: str) -> Iterator[None]:
    """Context for the VGG forward pass on `device` in `precision` (fp32 | tf32 | bf16)."""
    with precision_flags(device, precision):
        if precision == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
