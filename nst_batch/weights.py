"""Where the VGG19 weights come from: torchvision's ImageNet file, a local file, or seeded random.

- `imagenet`: torchvision's `VGG19_Weights.IMAGENET1K_V1`, read from the torch hub
  cache (`$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`); downloaded when missing
  and online. Offline and missing: a WeightsError that says how to provide it.
- a path: a torchvision-format VGG19 state dict, the full model (`features.0.weight`,
  ..., `classifier.*`) or the features alone (`0.weight`, ...).
- `random`: seeded random weights, for tests and smoke runs only; never chosen silently.

Every file is read with `torch.load(..., weights_only=True)`: a pickle that carries
code is refused.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nst_batch.engine.vgg import build_vgg19_features
from nst_batch.errors import WeightsError
from nst_batch.media.atomic import atomic_path

__all__ = ["IMAGENET_FILE", "WeightsInfo", "cache_path", "load_features", "load_state_dict_file",
           "fetch_imagenet", "import_weights", "weights_info", "OFFLINE_ENV"]

# torchvision.models.VGG19_Weights.IMAGENET1K_V1: file name and URL (the name's
# hex part is the start of the file's sha256, which torchvision checks on download).
IMAGENET_FILE = "vgg19-dcbb9e9d.pth"
IMAGENET_URL = f"https://download.pytorch.org/models/{IMAGENET_FILE}"
_IMAGENET_SHA_PREFIX = "dcbb9e9d"
OFFLINE_ENV = "NST_BATCH_OFFLINE"  # set to 1 to never try a download


def cache_path() -> Path:
    """Where torchvision keeps (and looks for) the ImageNet VGG19 file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


def load_features(spec: str, *, seed: int = 0) -> tuple[nn.Sequential, str]:
    """VGG19 `features` for a `weights` setting, and a one-line description of the source."""
    if spec == "random":
        return _random_features(seed), f"RANDOM weights (seed {seed}): for tests only, not trained, results are not art"
    if spec == "imagenet":
        path = cache_path()
        if not path.exists():
            fetch_imagenet()
        return build_vgg19_features(load_state_dict_file(path)), f"ImageNet VGG19 ({path})"
    path = Path(spec)
    return build_vgg19_features(load_state_dict_file(path)), f"VGG19 from {path}"


def _random_features(seed: int) -> nn.Sequential:
    # torchvision's own VGG initialisation (Kaiming normal, fan_out), so that
    # activations neither vanish nor explode through 16 convolutions.
    gen = torch.Generator().manual_seed(seed)
    features = build_vgg19_features()
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            with torch.no_grad():
                module.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=gen)
                module.bias.zero_()
    return features


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a torchvision-format VGG19 state dict safely → the `features` part ('0.weight', ...)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Never torch's own advice (load with weights_only=False): that would run the file's code.
        found = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        why = (f"it would import code ({found[0].rstrip('.')}), which a weights file never needs" if found
               else "not a PyTorch weights file")
        raise WeightsError(f"{path}: refused: not a plain tensor state dict: {why}") from exc
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise WeightsError(f"{path}: cannot read as a PyTorch state dict: {type(exc).__name__}: {first}") from exc
    return _features_state_dict(raw, path)


def _features_state_dict(raw: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors)")
    if any(str(k).startswith("features.") for k in raw):
        state = {k[len("features."):]: v for k, v in raw.items() if k.startswith("features.")}
    else:
        state = dict(raw)
    expected = build_vgg19_features().state_dict()
    missing = sorted(set(expected) - set(state), key=_key_order)
    extra = sorted(set(state) - set(expected), key=_key_order)
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise WeightsError(f"{path}: not a VGG19 state dict ({detail}); expected torchvision's vgg19 layout")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise WeightsError(f"{path}: not a VGG19 state dict: {key} has shape {tuple(state[key].shape)}, "
                               f"expected {tuple(tensor.shape)}")
    return {k: v.float() for k, v in state.items()}


def _key_order(key: str) -> tuple[int, str]:
    head, _, tail = key.partition(".")
    return (int(head) if head.isdigit() else 1 << 30, tail)


def fetch_imagenet() -> Path:
    """Download torchvision's ImageNet VGG19 into the cache, or say how to provide it."""
    path = cache_path()
    how = (f"download {IMAGENET_URL} on a machine with internet and run `nst-batch weights import FILE`, "
           "or set `weights:` to a local .pth file")
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise WeightsError(f"VGG19 ImageNet weights not found at {path} ({OFFLINE_ENV} is set, so no download): {how}")
    try:
        from torchvision.models import VGG19_Weights

        VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - network errors come in many types
        raise WeightsError(f"VGG19 ImageNet weights not found at {path} and the download failed "
                           f"({type(exc).__name__}: {str(exc)[:120]}): {how}") from exc
    return path


def import_weights(source: Path) -> tuple[Path, bool]:
    """Check `source` is a VGG19 state dict and copy it into the cache. Returns (path, is_official)."""
    load_state_dict_file(source)
    target = cache_path()
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target, _sha256(target).startswith(_IMAGENET_SHA_PREFIX)


@dataclass(frozen=True)
class WeightsInfo:
    path: Path
    exists: bool
    size: int
    official: bool | None  # sha256 matches torchvision's file; None when absent


def weights_info() -> WeightsInfo:
    path = cache_path()
    if not path.exists():
        return WeightsInfo(path, False, 0, None)
    return WeightsInfo(path, True, path.stat().st_size, _sha256(path).startswith(_IMAGENET_SHA_PREFIX))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
