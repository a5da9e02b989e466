"""Where the VGG weights come from: torchvision's ImageNet file, a local file, or seeded random.

- `imagenet`: torchvision's ImageNet file for the `model`, `VGG19_Weights.IMAGENET1K_V1`
  or `VGG16_Weights.IMAGENET1K_V1`, read from the torch hub cache
  (`$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth` or `vgg16-397923af.pth`); downloaded
  when missing and online. Offline and missing: a WeightsError that says how to provide it.
- a path: a torchvision-layout state dict of the `model`, the full model (`features.0.weight`,
  ..., `classifier.*`) or the features alone (`0.weight`, ...). A file of the other model
  is refused with a line that says which model it is.
- `random`: seeded random weights, for tests and smoke runs only; never chosen silently.

The input the weights expect (`preprocess`): torchvision's (RGB in [0,1], ImageNet
mean/std) or Caffe's (BGR, 0-255, mean pixel subtracted; the files of jcjohnson's
neural-style and neural-style-pt). `imagenet` and `random` are torchvision's; for a local
file `auto` detects it (see `detect_preprocess`) and the run log says what was decided.

Every file is read with `torch.load(..., weights_only=True)`: a pickle that carries
code is refused.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nst_batch.engine.vgg import MODELS, FeatureExtractor, build_features
from nst_batch.errors import WeightsError
from nst_batch.media.atomic import atomic_path

__all__ = ["IMAGENET_FILE", "IMAGENET_FILES", "IMAGENET_URL", "LoadedVGG", "WeightsInfo", "Imported", "cache_path",
           "imagenet_url", "load_features", "load_state_dict_file", "detect_model", "detect_preprocess",
           "fetch_imagenet", "import_weights", "weights_info", "check_weights", "OFFLINE_ENV"]

# torchvision.models.VGG19_Weights / VGG16_Weights.IMAGENET1K_V1: file names (the hex part
# is the start of the file's sha256, which torchvision checks on download).
IMAGENET_FILES = {"vgg19": "vgg19-dcbb9e9d.pth", "vgg16": "vgg16-397923af.pth"}
IMAGENET_FILE = IMAGENET_FILES["vgg19"]
OFFLINE_ENV = "NST_BATCH_OFFLINE"  # set to 1 to never try a download
# neural-style-pt's Caffe-converted VGGs (BGR, 0-255, mean pixel subtracted).
_CAFFE_FILES = frozenset({"vgg19-d01eb7cb.pth", "vgg16-00b39a1b.pth"})

# `preprocess: auto` for a file of unknown name: the mean |weight| of conv1_1. Folding
# torchvision's preprocessing into a Caffe net multiplies conv1_1 by 255 * std (about 58).
# Measured (shared/tools/trained_vgg.py, the Oxford VGG16): vgg16-caffe.pth 0.169,
# vgg16-torch.pth (the same net, preprocessing folded in) 9.72; the threshold is their
# geometric mean, a factor 7.5 from each. A conv1_1 trained on torchvision's input is NOT
# at the folded scale: torchvision's own VGG16 is about 0.22 (6 of its 64 filters, from a
# public printout), a fresh torchvision init 0.046. So below the threshold the statistic
# cannot tell the two trainings apart: torchvision's official files are recognised by
# name or sha256 instead, and the log line says how to override the guess.
_FOLDED_CONV1_1 = 1.25


def imagenet_url(model: str = "vgg19") -> str:
    return f"https://download.pytorch.org/models/{IMAGENET_FILES[model]}"


IMAGENET_URL = imagenet_url("vgg19")


def cache_path(model: str = "vgg19") -> Path:
    """Where torchvision keeps (and looks for) the ImageNet file of `model`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILES[model]


def _sha_prefix(model: str) -> str:
    return IMAGENET_FILES[model].split("-", 1)[1].split(".", 1)[0]


@dataclass(frozen=True)
class LoadedVGG:
    """A VGG `features` stack, the model it is, the input it expects, and where it came from."""

    features: nn.Sequential
    model: str  # vgg19 | vgg16
    preprocess: str  # torchvision | caffe (resolved: never auto)
    description: str  # one line for the run log

    def extractor(self, layers: Iterable[str], *, pooling: str = "max", padding: str = "zeros",
                  memory_saving: bool = False) -> FeatureExtractor:
        """A FeatureExtractor over these features, with this model's layer names and preprocessing."""
        return FeatureExtractor(self.features, layers, model=self.model, preprocess=self.preprocess,
                                pooling=pooling, padding=padding, memory_saving=memory_saving)


def load_features(spec: str, *, model: str = "vgg19", preprocess: str = "auto", seed: int = 0) -> LoadedVGG:
    """The VGG `features` for a `weights` setting, with its model, preprocessing and a description.

    `preprocess` "auto" is torchvision's for `imagenet` and `random`, detected for a file;
    "torchvision" or "caffe" is taken as given.

    Raises:
        WeightsError: the file is missing, unreadable, unsafe, or not a `model` state dict.
    """
    name = model.upper()
    chosen = preprocess != "auto"
    if spec in ("random", "imagenet"):  # torchvision's preprocessing unless set otherwise
        pre = preprocess if chosen else "torchvision"
        how = f"{pre} preprocessing" + (" (set in the settings)" if chosen else "")
        if spec == "random":
            return LoadedVGG(_random_features(model, seed), model, pre,
                             f"RANDOM weights ({name}, seed {seed}, {how}): for tests only, not trained, "
                             "results are not art")
        path = cache_path(model)
        if not path.exists():
            fetch_imagenet(model)
        return LoadedVGG(build_features(model, load_state_dict_file(path, model)), model, pre,
                         f"ImageNet {name} ({path}), {how}")
    path = Path(spec)
    state = load_state_dict_file(path, model)
    if chosen:
        pre, why = preprocess, "set in the settings"
    else:
        pre, why = detect_preprocess(state, path, model=model)
        why = f"auto: {why}"
    return LoadedVGG(build_features(model, state), model, pre, f"{name} from {path}, {pre} preprocessing ({why})")


def check_weights(spec: str, model: str = "vgg19", *, fetch: bool) -> None:
    """Raise a WeightsError unless `spec` gives `model` weights: `random`; `imagenet` in the cache
    (downloaded now if `fetch`, when online); a file that is a safe `model` state dict (read whole).

    Raises:
        WeightsError: what is missing or wrong, and how to provide it.
    """
    if spec == "random":
        return
    if spec == "imagenet":
        path = cache_path(model)
        if path.exists():
            return
        if fetch:
            fetch_imagenet(model)
            return
        command = "nst-batch weights fetch" + ("" if model == "vgg19" else f" --model {model}")
        raise WeightsError(f"ImageNet {model.upper()} weights not found at {path}: run `{command}` "
                           f"(online) or `nst-batch weights import FILE`; {SMOKE_TEST}")
    load_state_dict_file(Path(spec), model)


def detect_preprocess(state: Mapping[str, torch.Tensor], path: Path | None = None, *,
                      model: str = "vgg19") -> tuple[str, str]:
    """("torchvision" | "caffe", why) for a `features` state dict ('0.weight', ...) read from `path`.

    In order: a known file name (neural-style-pt's are Caffe's, torchvision's are torchvision's);
    conv1_1 at the folded-preprocessing scale (torchvision); torchvision's official sha256
    (torchvision); otherwise Caffe, said to be a guess.
    """
    if path is not None:
        if path.name in _CAFFE_FILES:
            return "caffe", f"{path.name} is neural-style-pt's Caffe-converted file"
        if path.name in IMAGENET_FILES.values():
            return "torchvision", f"{path.name} is torchvision's file"
    stat = float(state["0.weight"].abs().mean())
    if stat > _FOLDED_CONV1_1:
        return "torchvision", f"conv1_1 mean |w| {stat:.3g} > {_FOLDED_CONV1_1}: torchvision's input scale"
    if path is not None and _sha256(path).startswith(_sha_prefix(model)):
        return "torchvision", f"sha256 of torchvision's {IMAGENET_FILES[model]}"
    return "caffe", (f"conv1_1 mean |w| {stat:.3g} <= {_FOLDED_CONV1_1}: Caffe's scale; files trained on "
                     "torchvision's input can look alike, `preprocess: torchvision` overrides")


def _random_features(model: str, seed: int) -> nn.Sequential:
    # torchvision's own VGG initialisation (Kaiming normal, fan_out), so that
    # activations neither vanish nor explode through 13 or 16 convolutions.
    gen = torch.Generator().manual_seed(seed)
    features = build_features(model)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            with torch.no_grad():
                module.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=gen)
                if module.bias is not None:
                    module.bias.zero_()
    return features


def load_state_dict_file(path: Path, model: str = "vgg19") -> dict[str, torch.Tensor]:
    """Read a torchvision-layout `model` state dict safely → the `features` part ('0.weight', ...)."""
    state = _read_features(Path(path))
    found = detect_model(state)
    if found != model:
        if found is not None:
            raise WeightsError(f"{path}: a {found.upper()} state dict, but `model` is {model}: "
                               f"set `model: {found}` (or give a {model.upper()} file)")
        raise _layout_error(state, path, model)
    return {k: v.float() for k, v in state.items()}


def detect_model(state: Mapping[str, torch.Tensor]) -> str | None:
    """The model whose torchvision `features` layout `state` has exactly (keys and shapes), or None."""
    for model in MODELS:
        expected = _layout(model)
        if set(state) == set(expected) and all(state[k].shape == s for k, s in expected.items()):
            return model
    return None


def _layout(model: str) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in build_features(model).state_dict().items()}


def _read_features(path: Path) -> dict[str, torch.Tensor]:
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
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors)")
    if any(str(k).startswith("features.") for k in raw):
        return {k[len("features."):]: v for k, v in raw.items() if k.startswith("features.")}
    return dict(raw)


def _layout_error(state: Mapping[str, torch.Tensor], path: Path, model: str) -> WeightsError:
    """What keeps `state` (which detect_model matched to no model) from being a `model` state dict."""
    name = model.upper()
    expected = _layout(model)
    missing = sorted(set(expected) - set(state), key=_key_order)
    extra = sorted(set(state) - set(expected), key=_key_order)
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        return WeightsError(f"{path}: not a {name} state dict ({detail}); expected torchvision's {model} layout")
    key = next(k for k, shape in expected.items() if state[k].shape != shape)
    return WeightsError(f"{path}: not a {name} state dict: {key} has shape {tuple(state[key].shape)}, "
                        f"expected {tuple(expected[key])}")


def _key_order(key: str) -> tuple[int, str]:
    head, _, tail = key.partition(".")
    return (int(head) if head.isdigit() else 1 << 30, tail)


SMOKE_TEST = "to smoke-test without them, `--weights random` (runs end to end; the pictures are not art)"


def fetch_imagenet(model: str = "vgg19") -> Path:
    """Download torchvision's ImageNet `model` file into the cache, or say how to provide it."""
    path = cache_path(model)
    name = model.upper()
    how = (f"download {imagenet_url(model)} on a machine with internet and run `nst-batch weights import FILE`, "
           f"or set `weights:` to a local .pth file; {SMOKE_TEST}")
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise WeightsError(f"{name} ImageNet weights not found at {path} ({OFFLINE_ENV} is set, so no download): {how}")
    try:
        from torchvision.models import VGG16_Weights, VGG19_Weights

        enum = VGG19_Weights if model == "vgg19" else VGG16_Weights
        enum.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - network errors come in many types
        raise WeightsError(f"{name} ImageNet weights not found at {path} and the download failed "
                           f"({type(exc).__name__}: {str(exc)[:120]}): {how}") from exc
    return path


@dataclass(frozen=True)
class Imported:
    path: Path  # where it now is: the `imagenet` file of `model`
    model: str
    official: bool  # sha256 matches torchvision's file
    preprocess: str  # what `preprocess: auto` makes of the source file
    why: str


def import_weights(source: Path) -> Imported:
    """Check `source` is a VGG19 or VGG16 state dict and copy it into the cache as that model's `imagenet` file."""
    source = Path(source)
    state = _read_features(source)
    model = detect_model(state)
    if model is None:
        raise _layout_error(state, source, "vgg19")
    target = cache_path(model)
    preprocess, why = detect_preprocess(state, source, model=model)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return Imported(target, model, _sha256(target).startswith(_sha_prefix(model)), preprocess, why)


@dataclass(frozen=True)
class WeightsInfo:
    path: Path
    exists: bool
    size: int
    official: bool | None  # sha256 matches torchvision's file; None when absent
    model: str = "vgg19"


def weights_info(model: str = "vgg19") -> WeightsInfo:
    path = cache_path(model)
    if not path.exists():
        return WeightsInfo(path, False, 0, None, model)
    return WeightsInfo(path, True, path.stat().st_size, _sha256(path).startswith(_sha_prefix(model)), model)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
