"""Device choice: one place, a setting, never a silent fallback."""

from __future__ import annotations

import torch

from nst_batch.errors import DeviceError

__all__ = ["resolve_device"]


def resolve_device(spec: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; an explicit device that is missing is an error."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device '{spec}' was asked for but CUDA is not available here "
                              f"(torch {torch.__version__}); use --device cpu or device: auto")
        index = int(spec.split(":", 1)[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device '{spec}' does not exist: {torch.cuda.device_count()} CUDA device(s) here")
    if spec == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device 'mps' was asked for but Apple MPS is not available here; use --device cpu")
    return torch.device(spec)
