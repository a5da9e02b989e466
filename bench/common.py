"""Shared bits of the benchmarks: machine description and saving results as JSON."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine(device: str) -> dict[str, Any]:
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


# --- the engine on real pictures with random VGG19 weights ---------------------------

REPO = Path(__file__).resolve().parent.parent
CONTENT = REPO / "samples" / "photos" / "astronaut.jpg"
STYLE = REPO / "samples" / "styles" / "starry_night.jpg"
WEIGHTS_NOTE = "random VGG19 weights (same arithmetic cost as ImageNet's)"


def picture(path: Path, size: int, device: str = "cpu") -> torch.Tensor:
    """An image file as (1, 3, H, W) in [0,1], longest side `size`."""
    from nst_batch.media.images import read_image, resize_longest
    from nst_batch.pictures import to_tensor

    return to_tensor(resize_longest(read_image(path), size), torch.device(device))


def default_weights() -> Any:
    """LossWeights as the default Settings build them."""
    from nst_batch.engine import LossWeights
    from nst_batch.settings import Settings

    s = Settings()
    return LossWeights(content=s.content_weight, style=s.style_weight, tv=s.tv_weight,
                       style_layers={n: 1 / len(s.style_layers) for n in s.style_layers},
                       content_layers=s.content_layers)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
