"""Speed and memory options keep the result: checkpointing, in-place ReLU, precision, coarse-to-fine."""

from __future__ import annotations

import importlib
import dataclasses
from pathlib import Path

import pytest
import torch

from torch import nn

from conftest import sample_photo
from nst_batch.engine import (FeatureExtractor, LossWeights, OptimizeConfig, Progress, forward_precision, schedule,
                              style_grams, stylize_multiscale)
from nst_batch.errors import ManifestError
from nst_batch.manifest import parse_overrides
from nst_batch.settings import Job, Settings, StyleSpec, settings_hash
from nst_batch.weights import load_features
from nst_batch.context import JobContext
from nst_batch.stylize import stylize_frame
from nst_batch.models import ModelCache

OPTIMIZE = importlib.import_module("nst_batch.engine.optimize")  # the module: `engine.optimize` is the function

STYLE = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
LAYERS = ("conv4_2",) + STYLE


@pytest.fixture(scope="module")
def features() -> nn.Sequential:
    return load_features("random", seed=0).features


def _loss_and_grad(extractor: FeatureExtractor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = image.clone().requires_grad_(True)
    feats = extractor(x)
    loss = sum((f * torch.linspace(-1, 1, f.numel()).view_as(f)).sum() for f in feats.values())
    loss.backward()
    return loss.detach(), x.grad


def test_memory_saving_gives_the_same_features_and_gradients(features: nn.Sequential) -> None:
    image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    plain = FeatureExtractor(features, LAYERS)
    saving = FeatureExtractor(features, LAYERS, memory_saving=True)
    assert saving.blocks[0] == (0, 5) and saving.blocks[-1][1] == len(saving.layers)
    loss_a, grad_a = _loss_and_grad(plain, image)
    loss_b, grad_b = _loss_and_grad(saving, image)
    assert torch.allclose(loss_a, loss_b) and torch.allclose(grad_a, grad_b, rtol=1e-5, atol=1e-7)
    assert grad_a.abs().sum() > 0


def test_in_place_relu_keeps_conv_outputs(features: nn.Sequential) -> None:
    """A requested convX_Y is the convolution's output, negatives included, as torchvision computes it."""
    ex = FeatureExtractor(features, ["conv1_1", "relu2_1", "conv3_1"])
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x = (image - ex.mean) / ex.std
    expected = {}
    for name, layer in zip(ex.names, list(features.children())):
        x = layer(x)
        if name in ex.wanted:
            expected[name] = x.clone()
    out = ex(image)
    assert all(torch.equal(out[n], expected[n]) for n in expected)
    assert out["conv1_1"].min() < 0 and out["relu2_1"].min() >= 0
    assert all(m.inplace != (n.replace("relu", "conv") in ex.wanted)
               for n, m in zip(ex.names, ex.layers) if isinstance(m, nn.ReLU))
    assert not any(m.inplace for m in features.children() if isinstance(m, nn.ReLU))  # shared stack untouched


def test_precision_on_cpu(features: nn.Sequential) -> None:
    ex = FeatureExtractor(features, LAYERS)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    cpu = torch.device("cpu")
    reference = ex(image)
    for precision in ("fp32", "tf32"):  # no autocast on the CPU: bit-identical
        with forward_precision(cpu, precision):
            out = ex(image)
        assert all(torch.equal(out[n], reference[n]) for n in LAYERS)
    with forward_precision(cpu, "bf16"):
        low = ex(image)
    assert all(low[n].dtype == torch.float32 for n in LAYERS)  # Grams and losses see float32
    assert all(torch.allclose(low[n], reference[n], rtol=0.1, atol=0.1 * reference[n].abs().max().item())
               for n in LAYERS)
    with pytest.raises(ValueError, match="precision"):
        with forward_precision(cpu, "fp8"):
            pass


def test_schedule_splits_iterations() -> None:
    assert schedule([0.25, 0.5, 1.0], 100) == [(0.25, 33), (0.5, 33), (1.0, 34)]
    assert schedule([1.0], 7) == [(1.0, 7)]


def test_coarse_to_fine_reaches_full_size_and_the_loss_falls(features: nn.Sequential,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # progress by iterations alone, not the clock
    monkeypatch.setattr(OPTIMIZE, "READ_AFTER", float("inf"))
    ex = FeatureExtractor(features, LAYERS)
    content = torch.from_numpy(sample_photo("chelsea.jpg", 48)).permute(2, 0, 1)[None].float() / 255
    style = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    weights = LossWeights(content=1.0, style=10.0, tv=1e-3, style_layers={n: 0.2 for n in STYLE},
                          content_layers=("conv4_2",))
    seen_sizes: list[tuple[int, ...]] = []

    def grams_at(scale: float) -> dict[str, torch.Tensor]:
        seen_sizes.append((scale,))
        return style_grams(ex, [(style, 1.0)], STYLE)

    progress: list[Progress] = []
    result = stylize_multiscale(extractor=ex, content=content, grams_at=grams_at, weights=weights,
                                config=OptimizeConfig(iterations=0), init=content, steps=[(0.5, 5), (1.0, 5)],
                                callback=progress.append)
    assert 0 <= result.image.min() and result.image.max() <= 1
    # Progress is read back every READ_EVERY iterations and at the last of each scale: 5 (the coarse scale's
    # last), then 10, counted over the whole schedule.
    assert result.iterations == 10 and [p.iteration for p in progress] == [5, 10]
    assert all(p.total == 10 for p in progress) and seen_sizes == [(0.5,), (1.0,)]
    assert result.image.shape == content.shape
    assert min(result.history[:5]) < result.history[0] and result.loss < result.history[5]  # falls at each scale


def test_scales_setting_drives_cold_starts(style_image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # progress by iterations alone, not the clock
    monkeypatch.setattr(OPTIMIZE, "READ_AFTER", float("inf"))
    s = Settings(size=48, iterations=6, weights="random", device="cpu", tolerance=0.0, scales=(0.5, 1.0))
    ctx = JobContext.create(Job(name="t", input=style_image, styles=(StyleSpec(style_image),),
                                output=Path("unused"), settings=s), ModelCache())
    content = sample_photo("chelsea.jpg", 48)
    steps: list[int] = []
    result = stylize_frame(ctx, content, iterations=6, progress=lambda p: steps.append(p.iteration))
    assert result.image.shape[-2:] == content.shape[:2] and steps == [3, 6]  # the last iteration of each scale
    assert (48, 0.5) in ctx._grams  # style targets at the coarse scale (working side 48), computed once per job
    warm = stylize_frame(ctx, content, iterations=2, init=result.image)  # warm starts stay at full size
    assert len(warm.history) == 2


def test_new_settings_validate_and_hash() -> None:
    assert parse_overrides(["scales=[0.25, 0.5, 1]"])["scales"] == (0.25, 0.5, 1.0)
    for bad, fragment in (("scales=[0.5, 0.25, 1.0]", "rise"), ("scales=[0.5]", "end at 1.0"),
                          ("scales=[0, 1.0]", r"\(0, 1\]"), ("precision=fp16", "must be one of")):
        with pytest.raises(ManifestError, match=fragment):
            parse_overrides([bad])
    base = Settings()
    same = [dataclasses.replace(base, memory_saving=True), dataclasses.replace(base, compile=True)]
    assert {settings_hash(s, ()) for s in [base, *same]} == {settings_hash(base, ())}
    assert settings_hash(dataclasses.replace(base, scales=(1.0,)), ()) != settings_hash(base, ())
    assert settings_hash(dataclasses.replace(base, precision="bf16"), ()) != settings_hash(base, ())
    # Video settings decide a video's pixels, never a photo's: tuning them redoes no finished photo.
    tuned = dataclasses.replace(base, video=dataclasses.replace(base.video, temporal_weight=7.0))
    assert settings_hash(tuned, (), kind="image") == settings_hash(base, (), kind="image")
    assert settings_hash(tuned, (), kind="video") != settings_hash(base, (), kind="video")


def test_batch_size_stylizes_same_size_images_together_like_one_at_a_time(tmp_path: Path) -> None:
    import json

    import cv2

    from cli_helpers import nst_here
    from conftest import write_manifest, write_rgb

    for name in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg"):  # the same working size once cropped
        write_rgb(tmp_path / "photos" / name.replace(".jpg", ".png"), sample_photo(name, 48)[:30, :40])
    write_rgb(tmp_path / "photos" / "z_rocket.png", sample_photo("rocket.jpg", 40))  # another size: alone
    write_rgb(tmp_path / "style.png", sample_photo("coffee.jpg", 48))
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
defaults: {optimizer: adam, learning_rate: 0.05, iterations: 6, tolerance: 0, size: 40}
jobs:
  - {name: one, input: photos, style: style.png, output: out/one}
  - {name: batched, input: photos, style: style.png, output: out/batched, batch_size: 2}
""")
    res = nst_here("run", m, "--weights", "random", "--device", "cpu", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    records = [json.loads(line) for line in (tmp_path / "out/batched/.nst-batch/ledger.jsonl").read_text().splitlines()]
    batch = {r["key"]: r["metrics"]["batch"] for r in records if r["status"] == "done"}
    assert batch == {"astronaut.png": 2, "chelsea.png": 2, "coffee.png": 1, "z_rocket.png": 1}
    losses = {r["key"]: r["loss"] for r in records if r["status"] == "done"}
    assert losses["astronaut.png"] != losses["chelsea.png"]  # each image's own loss, not the batch's
    for name in batch:
        alone = cv2.imread(str(tmp_path / "out/one" / name)).astype(int)
        together = cv2.imread(str(tmp_path / "out/batched" / name)).astype(int)
        assert alone.shape == together.shape
        # Adam is per pixel: a batch (mean of the images' losses) takes the same steps up to rounding
        # (where a gradient is near zero, rounding can flip a step's sign: a few pixels differ more).
        diff = abs(alone - together)
        assert diff.mean() < 0.5 and (diff > 4).mean() < 0.01, (name, diff.mean(), (diff > 4).mean())
