"""`model: vgg19 | vgg16` and `preprocess: auto | torchvision | caffe`: layers, loading, detection, manifest, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import jsonschema
import pytest
import torch
import torchvision

from cli_helpers import nst_here
from conftest import sample_photo, write_manifest, write_rgb
from nst_batch.engine.vgg import (CAFFE_MEAN_BGR, IMAGENET_MEAN, IMAGENET_STD, LAYER_NAMES, FeatureExtractor,
                                  build_features, layer_names)
from nst_batch.errors import ManifestError, WeightsError
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.schema import manifest_schema
from nst_batch.settings import Settings
from nst_batch.weights import detect_preprocess, load_features, load_state_dict_file
from nst_batch.pictures import to_tensor
from nst_batch.models import ModelCache

DEV = Path.home() / ".cache" / "nst-batch-dev"


def _state(model: str, seed: int = 0, conv1_1_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """A seeded random `features` state dict in torchvision's layout ('0.weight', ...), Kaiming-scaled."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in build_features(model).state_dict().items():
        if key.endswith("weight"):
            fan_out = value.shape[0] * value.shape[2] * value.shape[3]
            state[key] = torch.randn(value.shape, generator=gen) * (2.0 / fan_out) ** 0.5
        else:
            state[key] = torch.randn(value.shape, generator=gen) * 0.1
    state["0.weight"] = state["0.weight"] * conv1_1_scale
    return state


def _fold_caffe(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same net for torchvision's input: Caffe preprocessing folded into conv1_1 (as trained_vgg.py does).

    x_caffe[bgr] = 255 * (std * x_torch + mean) - caffe_mean, so conv1_1 becomes
    w' = w[:, rgb] * 255 * std and b' = b + sum(w[:, rgb] * (255 * mean - caffe_mean)).
    """
    w, b = state["0.weight"].double(), state["0.bias"].double()
    w_rgb = w.flip(1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    caffe_mean_rgb = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float64).flip(0).view(1, 3, 1, 1)
    folded = dict(state)
    folded["0.weight"] = (w_rgb * 255 * std).float()
    folded["0.bias"] = (b + (w_rgb * (255 * mean - caffe_mean_rgb)).sum((1, 2, 3))).float()
    return folded


def _save(state: dict[str, torch.Tensor], path: Path, *, full: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"features.{k}": v for k, v in state.items()} if full else state, path)
    return path


def _interior(features: dict[str, torch.Tensor], ring: dict[str, int]) -> dict[str, torch.Tensor]:
    return {name: f[..., r:-r, r:-r] for name, f in features.items() for r in [ring[name]]}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# --- layers ---------------------------------------------------------------------------------


def test_layer_names_per_model() -> None:
    v16, v19 = layer_names("vgg16"), layer_names("vgg19")
    assert LAYER_NAMES == v19 and len(v19) == 37 and len(v16) == 31
    assert [n for n in v16 if n.startswith("conv")] == [
        f"conv{b}_{i}" for b, convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, convs + 1)]
    assert set(v16) < set(v19) and set(v19) - set(v16) == {f"{k}{b}_4" for k in ("conv", "relu") for b in (3, 4, 5)}
    ours = build_features("vgg16").state_dict()
    theirs = torchvision.models.vgg16(weights=None).features.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    with pytest.raises(ValueError, match="unknown VGG model"):
        layer_names("vgg11")


def test_vgg16_extractor_names_conv_before_relu_and_refuses_vgg19_layers() -> None:
    features = load_features("random", model="vgg16").features
    ex = FeatureExtractor(features, ["conv5_3", "relu5_3"], model="vgg16")
    assert len(ex.layers) == layer_names("vgg16").index("relu5_3") + 1
    out = ex(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(out["relu5_3"], out["conv5_3"].clamp_min(0)) and (out["conv5_3"] < 0).any()
    with pytest.raises(ValueError, match=r"unknown VGG16 layers: \['conv5_4'\]"):
        FeatureExtractor(features, ["conv5_4"], model="vgg16")
    with pytest.raises(ValueError, match="has 31 modules, vgg19 has 37"):
        FeatureExtractor(features, ["conv1_1"])  # a VGG16 stack named as VGG19
    with pytest.raises(ValueError, match="unknown preprocess"):
        FeatureExtractor(features, ["conv1_1"], model="vgg16", preprocess="rgb")


@pytest.mark.parametrize("model", ["vgg16", "vgg19"])
def test_caffe_preprocessing_equals_the_folded_file(tmp_path: Path, model: str) -> None:
    """A Caffe-input file with `preprocess: caffe` computes what the file with Caffe's preprocessing
    folded into conv1_1 computes with torchvision's: RGB->BGR, x255, the mean pixel, no std."""
    caffe = _state(model, seed=1)
    caffe_file, folded_file = _save(caffe, tmp_path / "caffe.pth"), _save(_fold_caffe(caffe), tmp_path / "folded.pth")
    a = load_features(str(caffe_file), model=model, preprocess="caffe")
    b = load_features(str(folded_file), model=model, preprocess="torchvision")
    layers = ["conv1_1", "relu2_1", "relu4_2"]
    image = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fa, fb = a.extractor(layers)(image), b.extractor(layers)(image)
    # Zero padding differs by the two means (255 * ImageNet mean - Caffe mean = (0.0, -0.50, -0.41) in 0-255 units),
    # so compare where the padding does not reach: 1 px at conv1_1, 2 at relu2_1 (1/2 size), 5 at relu4_2 (1/8).
    ring = {"conv1_1": 1, "relu2_1": 2, "relu4_2": 5}
    for name, (x, y) in zip(layers, zip(_interior(fa, ring).values(), _interior(fb, ring).values())):
        assert _relative(x, y) < 1e-4, name
    # Torchvision's preprocessing on the Caffe file is another network: the setting matters.
    with torch.no_grad():
        wrong = load_features(str(caffe_file), model=model, preprocess="torchvision").extractor(layers)(image)
    assert _relative(_interior(wrong, ring)["relu4_2"], _interior(fa, ring)["relu4_2"]) > 0.1


# --- detection --------------------------------------------------------------------------------


def test_auto_detects_caffe_and_torchvision_scale_files(tmp_path: Path) -> None:
    caffe = _state("vgg16", seed=3, conv1_1_scale=0.169 / 0.046)  # the Oxford VGG16's conv1_1 mean |w|
    caffe_file = _save(caffe, tmp_path / "mine.pth")
    folded_file = _save(_fold_caffe(caffe), tmp_path / "mine-torch.pth", full=False)
    a = load_features(str(caffe_file), model="vgg16")
    b = load_features(str(folded_file), model="vgg16")
    assert (a.preprocess, b.preprocess) == ("caffe", "torchvision")
    assert "caffe preprocessing (auto: conv1_1 mean |w|" in a.description and "VGG16 from" in a.description
    assert "torchvision preprocessing (auto: conv1_1 mean |w|" in b.description
    assert a.extractor(["relu1_1"]).preprocess == "caffe"
    # An explicit setting wins over detection, and says so.
    forced = load_features(str(caffe_file), model="vgg16", preprocess="torchvision")
    assert forced.preprocess == "torchvision" and "set in the settings" in forced.description
    # neural-style-pt's file names are Caffe's whatever the statistic says; `random` and `imagenet` are torchvision's.
    named = _save(_fold_caffe(caffe), tmp_path / "vgg16-00b39a1b.pth")
    assert detect_preprocess(load_state_dict_file(named, "vgg16"), named, model="vgg16")[0] == "caffe"
    assert load_features("random", model="vgg16").preprocess == "torchvision"


def test_a_file_of_the_other_model_is_one_clear_line(tmp_path: Path) -> None:
    vgg16 = _save(_state("vgg16"), tmp_path / "vgg16.pth")
    with pytest.raises(WeightsError) as info:
        load_features(str(vgg16))
    assert str(info.value) == (f"{vgg16}: a VGG16 state dict, but `model` is vgg19: set `model: vgg16` "
                               "(or give a VGG19 file)")
    vgg19 = _save(_state("vgg19"), tmp_path / "vgg19.pth", full=False)
    with pytest.raises(WeightsError, match=r"a VGG19 state dict, but `model` is vgg16: set `model: vgg19`"):
        load_features(str(vgg19), model="vgg16")


def test_model_cache_keys_by_model_and_preprocess() -> None:
    cache = ModelCache()
    base = Settings(weights="random", device="cpu", content_layers=("relu4_2",), style_layers=("relu1_1",))
    cpu = torch.device("cpu")
    a = cache.extractor(replace(base, model="vgg16"), cpu)
    b = cache.extractor(replace(base, model="vgg16", preprocess="caffe"), cpu)
    c = cache.extractor(replace(base, model="vgg16"), cpu)
    assert (a.model, a.preprocess, b.preprocess) == ("vgg16", "torchvision", "caffe")
    assert len(cache.messages) == 2 and c.layers[0] is a.layers[0]  # the third is the first, from the cache


# --- manifest ---------------------------------------------------------------------------------

LAYER_MANIFEST = """
version: 1
defaults:
  model: {model}
jobs:
  - input: photos/astronaut.jpg
    style: styles/starry.jpg
    output: out
    style_layers: [relu1_1, conv5_4]
"""


def test_manifest_names_a_vgg19_only_layer_under_vgg16(tmp_path: Path, photos: Path, style_image: Path) -> None:
    manifest = write_manifest(tmp_path / "pipeline.yaml", LAYER_MANIFEST.format(model="vgg16"))
    with pytest.raises(ManifestError) as info:
        load_manifest(manifest)
    message = str(info.value)
    assert message.startswith(f"{manifest}:8: jobs[0].style_layers: unknown VGG16 layer 'conv5_4' "
                              "(did you mean 'conv5_3'?)") and "\n" not in message
    # The same file is fine for VGG19, and becomes wrong when `--set model=vgg16` is given.
    vgg19 = write_manifest(tmp_path / "vgg19.yaml", LAYER_MANIFEST.format(model="vgg19"))
    assert load_manifest(vgg19).jobs[0].settings.style_layers == ("relu1_1", "conv5_4")
    with pytest.raises(ManifestError, match=r"vgg19.yaml:8: jobs\[0\].style_layers: unknown VGG16 layer 'conv5_4'"):
        load_manifest(vgg19, parse_overrides(["model=vgg16"]))
    with pytest.raises(ManifestError, match=r"--set style_layers=\[conv4_4\]: style_layers: unknown VGG16 layer"):
        load_manifest(manifest, parse_overrides(["style_layers=[conv4_4]"]))
    schema = manifest_schema()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "defaults": {"model": "vgg16", "style_layers": ["conv5_4"]},
                             "jobs": [{"input": "a", "style": "b", "output": "c"}]}, schema)


# --- end to end -----------------------------------------------------------------------------


def test_cli_runs_vgg16_from_a_local_file(tmp_path: Path, style_image: Path) -> None:
    write_rgb(tmp_path / "photos" / "chelsea.png", sample_photo("chelsea.jpg", 48))
    weights = _save(_state("vgg16", seed=4), tmp_path / "weights" / "my-vgg16.pth")
    manifest = write_manifest(tmp_path / "pipeline.yaml", """
version: 1
jobs:
  - {name: cats, input: photos, style: styles/starry.jpg, output: out/cats}
""")
    fast = ["--set", "size=32", "--set", "iterations=3", "--device", "cpu", "--weights", weights]
    wrong = nst_here("run", manifest, *fast, cwd=tmp_path)
    assert wrong.returncode != 0 and "set `model: vgg16`" in wrong.stdout + wrong.stderr
    checked = nst_here("validate", manifest, *fast, "--set", "model=vgg16", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    res = nst_here("run", manifest, *fast, "--set", "model=vgg16", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"VGG16 from {weights}, caffe preprocessing (auto:" in res.stdout.replace("\n", " ")
    assert max(cv2.imread(str(tmp_path / "out" / "cats" / "chelsea.png")).shape[:2]) == 32
    saved = json.loads((tmp_path / "out" / "cats" / "nst-batch.json").read_text())
    assert saved["settings"]["model"] == "vgg16"


# --- the real trained files, where this machine has them ----------------------------------------


@pytest.mark.skipif(not (DEV / "vgg16-caffe.pth").exists() or not (DEV / "vgg16-torch.pth").exists(),
                    reason="~/.cache/nst-batch-dev/vgg16-{caffe,torch}.pth absent (shared/tools/trained_vgg.py)")
def test_real_caffe_and_torchvision_files_agree() -> None:
    caffe = load_features(str(DEV / "vgg16-caffe.pth"), model="vgg16")
    torch_ = load_features(str(DEV / "vgg16-torch.pth"), model="vgg16")
    assert (caffe.preprocess, torch_.preprocess) == ("caffe", "torchvision")
    image = to_tensor(sample_photo("astronaut.jpg", 128), torch.device("cpu"))  # relu4_2: 16 px, 6 clear of padding
    with torch.no_grad():
        a = caffe.extractor(["relu4_2"])(image)["relu4_2"]
        b = torch_.extractor(["relu4_2"])(image)["relu4_2"]
    assert _relative(a[..., 5:-5, 5:-5], b[..., 5:-5, 5:-5]) < 1e-4
    assert _relative(a, b) < 2e-3  # the border too, up to the padding's two means
