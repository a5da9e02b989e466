"""Weights: torchvision-format files through the real loading path; offline errors; unsafe pickles."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import torchvision

from cli_helpers import nst_here
from nst_batch.errors import WeightsError
from nst_batch.weights import cache_path, import_weights, load_features, load_state_dict_file


def _random_file(tmp_path_factory: pytest.TempPathFactory, model: str) -> Path:
    """A full `model` state dict of random values, in torchvision's own format (tests read it, never change it)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / f"{model}-random.pth"
    torch.save(getattr(torchvision.models, model)(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _random_file(tmp_path_factory, "vgg19")


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _random_file(tmp_path_factory, "vgg16")


def test_full_and_features_only_files_load(torchvision_file: Path, tmp_path: Path) -> None:
    full = torchvision.models.vgg19(weights=None)
    full.load_state_dict(torch.load(torchvision_file, weights_only=True))
    features = load_state_dict_file(torchvision_file)
    assert torch.equal(features["0.weight"], full.features[0].weight)
    only = tmp_path / "features.pth"
    torch.save(full.features.state_dict(), only)
    assert torch.equal(load_state_dict_file(only)["34.bias"], full.features[34].bias)
    loaded = load_features(str(only))
    assert torch.equal(loaded.features[0].weight, full.features[0].weight) and str(only) in loaded.description
    assert loaded.model == "vgg19" and f"VGG19 from {only}" in loaded.description


def test_wrong_files_are_refused(tmp_path: Path, vgg16_file: Path) -> None:
    with pytest.raises(WeightsError, match=r"a VGG16 state dict, but `model` is vgg19: set `model: vgg16`"):
        load_state_dict_file(vgg16_file)
    small = tmp_path / "small.pth"
    torch.save({"0.weight": torch.zeros(64, 3, 3, 3)}, small)
    with pytest.raises(WeightsError, match="not a VGG19 state dict"):
        load_state_dict_file(small)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="cannot read|refused"):
        load_state_dict_file(junk)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /tmp/nst-batch-pwned",))


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as fh:
        pickle.dump({"0.weight": _Evil()}, fh)
    with pytest.raises(WeightsError, match="refused: not a plain tensor state dict"):
        load_state_dict_file(evil)
    assert not Path("/tmp/nst-batch-pwned").exists()


@pytest.mark.parametrize("model", ["vgg19", "vgg16"])
def test_offline_without_weights_says_how_to_fix(model: str) -> None:
    with pytest.raises(WeightsError) as info:
        load_features("imagenet", model=model)
    message = str(info.value)
    assert str(cache_path(model)) in message and "nst-batch weights import" in message
    assert f"{model.upper()} ImageNet weights not found" in message and "\n" not in message


def test_import_then_imagenet_loads(torchvision_file: Path) -> None:
    done = import_weights(torchvision_file)
    assert done.path == cache_path() and done.path.exists() and not done.official and done.model == "vgg19"
    loaded = load_features("imagenet")
    assert "ImageNet VGG19" in loaded.description and loaded.preprocess == "torchvision"
    assert torch.equal(loaded.features[0].weight, load_state_dict_file(torchvision_file)["0.weight"])


def test_random_weights_are_seeded() -> None:
    a = load_features("random", seed=1).features
    b = load_features("random", seed=1).features
    c = load_features("random", seed=2).features
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)


def test_weights_commands(torchvision_file: Path, vgg16_file: Path, tmp_path: Path) -> None:
    env = {"TORCH_HOME": str(tmp_path / "th")}
    info = nst_here("weights", "info", env=env)
    assert info.returncode == 1 and "missing" in info.stdout
    imp = nst_here("weights", "import", torchvision_file, env=env)
    assert imp.returncode == 0, imp.stderr
    assert (tmp_path / "th" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth").exists()
    info = nst_here("weights", "info", env=env)
    assert info.returncode == 0 and "present" in info.stdout and "NOT torchvision's official" in info.stdout
    imp = nst_here("weights", "import", vgg16_file, env=env)
    assert imp.returncode == 0 and "model: vgg16" in imp.stdout, imp.stderr
    assert (tmp_path / "th" / "hub" / "checkpoints" / "vgg16-397923af.pth").exists()
    assert "vgg16-397923af.pth" in nst_here("weights", "info", env=env).stdout
    bad = nst_here("weights", "import", tmp_path / "nothing.pth", env=env)
    assert bad.returncode == 2 and "not found" in bad.stderr and "Traceback" not in bad.stderr


def test_run_offline_without_weights_stops_before_any_job(tmp_path: Path, photos: Path, style_image: Path) -> None:
    """One message for the one missing file (not one per job), exit 2, nothing written: no report, no state."""
    from conftest import write_manifest

    write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: a, input: photos, style: styles/starry.jpg, output: out/a}
  - {name: b, input: photos/astronaut.jpg, style: styles/starry.jpg, output: out/b}
  - {name: c, input: photos/chelsea.png, style: styles/starry.jpg, output: out/c}
  - {name: d, input: photos/chelsea.png, style: styles/starry.jpg, output: out/d, weights: random}
""")
    res = nst_here("run", "p.yaml", "--set", "size=32", cwd=tmp_path)
    output = res.stdout + res.stderr
    assert res.returncode == 2, output
    assert output.count("weights not found") == 1 and "Traceback" not in output, output
    assert "error: jobs 'a', 'b', 'c': VGG19 ImageNet weights not found" in res.stderr, output
    assert "nst-batch weights import FILE" in res.stderr
    assert not (tmp_path / "out").exists()  # no report, no ledger, no lock: nothing was run
