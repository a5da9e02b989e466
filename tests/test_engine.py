"""The engine alone: Gram matrix, losses, optimisation, determinism — random VGG19, tiny images."""

from __future__ import annotations

import pytest
import torch

from nst_batch.engine import (FeatureExtractor, LossWeights, NonFiniteLoss, OptimizeConfig, Temporal, content_loss,
                              gram, optimize, style_grams, style_loss, stylize, temporal_loss, tv_loss)
from nst_batch.engine.vgg import LAYER_NAMES
from nst_batch.weights import load_features

STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    features = load_features("random", seed=0).features
    return FeatureExtractor(features, ("relu4_2",) + STYLE)


def _weights(**kw: float) -> LossWeights:
    base = dict(content=1.0, style=10.0, tv=1e-3, style_layers={n: 1 / 5 for n in STYLE}, content_layers=("relu4_2",))
    return LossWeights(**{**base, **kw})


def test_gram_matches_hand_computation() -> None:
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]])  # (1, 2, 2, 2)
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    b = torch.tensor([0.0, 1.0, 1.0, 0.0])
    expected = torch.tensor([[a @ a, a @ b], [b @ a, b @ b]]) / (2 * 2 * 2)
    assert torch.allclose(gram(f)[0], expected)


def test_feature_losses_are_relative_squared_errors() -> None:
    x = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # (1, 2, 1, 2)
    t = torch.tensor([[[[1.0, 0.0]], [[1.0, 1.0]]]])
    assert content_loss(x, t).item() == pytest.approx((0 + 4 + 4 + 1) / (1 + 0 + 1 + 1))
    g, a = gram(x), gram(t)
    assert style_loss(x, a).item() == pytest.approx(float((g - a).pow(2).sum() / a.pow(2).sum()))
    batch = torch.cat([x, t])  # per image, then the mean: the target image's own error is 0
    assert content_loss(batch, torch.cat([t, t])).item() == pytest.approx(content_loss(x, t).item() / 2)
    for k in (0.02, 50.0):  # the same number whatever the activations' scale
        assert content_loss(k * x, k * t).item() == pytest.approx(content_loss(x, t).item(), rel=1e-5)
        assert style_loss(k * x, gram(k * t)).item() == pytest.approx(style_loss(x, a).item(), rel=1e-5)


def test_tv_and_temporal_loss_formulas() -> None:
    x = torch.zeros(1, 3, 2, 2)
    x[..., 0, 0] = 1.0  # one bright corner: 1 vertical and 1 horizontal step per channel
    assert tv_loss(x).item() == pytest.approx(3 / 6 + 3 / 6)
    prev = torch.zeros_like(x)
    mask = torch.ones(1, 1, 2, 2)
    assert temporal_loss(x, prev, mask).item() == pytest.approx(3 / 12)
    mask[..., 0, 0] = 0.0  # the differing pixel is occluded: no penalty
    assert temporal_loss(x, prev, mask).item() == 0.0


def test_extractor_is_cut_after_deepest_layer() -> None:
    features = load_features("random", seed=0).features
    ex = FeatureExtractor(features, ["conv1_1", "conv3_1"])
    assert len(ex.layers) == LAYER_NAMES.index("conv3_1") + 1
    out = ex(torch.rand(1, 3, 32, 32))
    assert set(out) == {"conv1_1", "conv3_1"} and out["conv3_1"].shape == (1, 256, 8, 8)
    assert not any(p.requires_grad for p in ex.parameters())
    avg = FeatureExtractor(features, ["conv3_1"], pooling="avg")
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in avg.layers)
    with pytest.raises(ValueError):
        FeatureExtractor(features, ["conv9_9"])


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_losses_fall(extractor: FeatureExtractor, optimizer: str) -> None:
    gen = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, 48, 64, generator=gen)
    style = torch.rand(1, 3, 64, 64, generator=gen)
    grams = style_grams(extractor, [(style, 1.0)], STYLE)
    result = stylize(extractor=extractor, content=content, grams=grams, weights=_weights(),
                     config=OptimizeConfig(iterations=15, optimizer=optimizer, learning_rate=0.02),
                     init=content)
    assert result.iterations == 15 and len(result.history) == 15
    assert result.history[-1] < 0.7 * result.history[0]
    assert result.terms["style"] > 0 and result.image.min() >= 0 and result.image.max() <= 1


def test_same_settings_same_output(extractor: FeatureExtractor) -> None:
    content = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    grams = style_grams(extractor, [(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)), 1.0)], STYLE)
    runs = [stylize(extractor=extractor, content=content, grams=grams, weights=_weights(),
                    config=OptimizeConfig(iterations=5), init=content).image for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_blended_grams_are_weighted_mean(extractor: FeatureExtractor) -> None:
    a, b = (torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(s)) for s in (4, 5))
    ga, gb = style_grams(extractor, [(a, 1.0)], STYLE), style_grams(extractor, [(b, 1.0)], STYLE)
    blend = style_grams(extractor, [(a, 0.7), (b, 0.3)], STYLE)
    for name in STYLE:
        assert torch.allclose(blend[name], 0.7 * ga[name] + 0.3 * gb[name], rtol=1e-5, atol=1e-8)


def test_temporal_term_pulls_towards_previous_frame(extractor: FeatureExtractor) -> None:
    gen = torch.Generator().manual_seed(6)
    content = torch.rand(1, 3, 32, 32, generator=gen)
    prev = torch.rand(1, 3, 32, 32, generator=gen)
    grams = style_grams(extractor, [(torch.rand(1, 3, 32, 32, generator=gen), 1.0)], STYLE)
    mask = torch.ones(1, 1, 32, 32)

    def distance(weight: float) -> float:
        r = stylize(extractor=extractor, content=content, grams=grams, weights=_weights(temporal=weight),
                    config=OptimizeConfig(iterations=10), init=content, temporal=Temporal(prev, mask))
        return float((r.image - prev).pow(2).mean())

    assert distance(1e4) < 0.5 * distance(0.0)


def test_stop_request_interrupts(extractor: FeatureExtractor) -> None:
    from nst_batch.engine import Interrupted

    content = torch.rand(1, 3, 32, 32)
    grams = style_grams(extractor, [(content, 1.0)], STYLE)
    calls = []
    with pytest.raises(Interrupted):
        stylize(extractor=extractor, content=content, grams=grams, weights=_weights(),
                config=OptimizeConfig(iterations=50), init=content,
                callback=calls.append, should_stop=lambda: len(calls) >= 3)
    assert len(calls) == 3


def scaled_features(features: torch.nn.Sequential, k: float) -> torch.nn.Sequential:
    """The same network with every activation times k: conv1_1 (weight and bias) and every other bias times k.

    ReLU and max pooling commute with a positive factor, so each layer's output is exactly k x the original's.
    """
    import copy

    out = copy.deepcopy(features)
    convs = [m for m in out if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[0].weight.mul_(k)
        for conv in convs:
            conv.bias.mul_(k)
    return out


@pytest.mark.parametrize("k", [0.02, 50.0])
def test_the_optimisation_does_not_depend_on_the_activations_scale(k: float) -> None:
    features = load_features("random", seed=0).features
    with torch.no_grad():  # random weights have zero biases; give them some, as trained ones have
        for m in features:
            if isinstance(m, torch.nn.Conv2d):
                m.bias.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(7))
    layers = ("relu4_2",) + STYLE
    plain, scaled = FeatureExtractor(features, layers), FeatureExtractor(scaled_features(features, k), layers)
    gen = torch.Generator().manual_seed(8)
    content = torch.rand(1, 3, 40, 48, generator=gen)
    a, b = torch.rand(1, 3, 48, 48, generator=gen), torch.rand(1, 3, 40, 40, generator=gen)
    assert torch.allclose(scaled(content)["relu3_1"], k * plain(content)["relu3_1"], rtol=1e-4, atol=1e-6 * k)
    for styles in ([(a, 1.0)], [(a, 0.7), (b, 0.3)]):  # one style, and a blend
        outs = []
        for ex in (plain, scaled):
            grams = style_grams(ex, styles, STYLE)
            r = stylize(extractor=ex, content=content, grams=grams, weights=_weights(tv=1e-2),
                        config=OptimizeConfig(iterations=6, precision="fp32"), init=content)
            outs.append(r)
        assert outs[0].history[-1] < 0.8 * outs[0].history[0]  # it did optimise
        assert outs[1].history == pytest.approx(outs[0].history, rel=1e-3)
        # Equal up to float32 rounding, which L-BFGS amplifies (measured: mean 4e-4 to 1.5e-3, max 0.01-0.02,
        # by thread count); losses that were not scale-free would shift the balance by k^2 and differ wholesale.
        diff = (outs[0].image - outs[1].image).abs()
        assert diff.mean() < 4e-3 and diff.max() < 0.05, (float(diff.mean()), float(diff.max()))


@pytest.mark.parametrize("clamp", [True, False])
def test_pixels_are_projected_onto_0_1_after_each_step_unless_asked_not_to(extractor: FeatureExtractor,
                                                                             clamp: bool) -> None:
    from nst_batch.engine import build_objective, optimize

    gen = torch.Generator().manual_seed(9)
    content = torch.rand(1, 3, 32, 32, generator=gen)
    grams = style_grams(extractor, [(torch.rand(1, 3, 32, 32, generator=gen), 1.0)], STYLE)
    objective = build_objective(extractor=extractor, content=content, grams=grams, weights=_weights(style=1e3))
    seen: list[tuple[float, float]] = []

    def watched(image: torch.Tensor, rows: slice = slice(None), **kw: bool) -> dict[str, torch.Tensor]:
        seen.append((float(image.min()), float(image.max())))
        return objective(image, rows, **kw)

    result = optimize(watched, init=content, config=OptimizeConfig(iterations=12, clamp_each_step=clamp))  # type: ignore[arg-type]
    inside = all(lo >= 0.0 and hi <= 1.0 for lo, hi in seen)
    assert inside == clamp, seen  # unconstrained L-BFGS leaves [0,1] on this problem
    assert 0.0 <= float(result.image.min()) and float(result.image.max()) <= 1.0  # the output always is in range


def test_a_non_finite_start_with_no_iteration_to_run_is_an_error_not_an_empty_image() -> None:
    """A coarse scale can get no iteration (`iterations: 1` over two scales); a loss already infinite there
    gave back an empty image, and an IndexError further on (found by tests/test_fuzz.py)."""
    def objective(image: torch.Tensor, batch: slice | None = None, **kw: bool) -> dict[str, torch.Tensor]:
        return {"style": image.sum((1, 2, 3)) * 0 + float("inf")}

    with pytest.raises(NonFiniteLoss, match="at the start"):
        optimize(objective, init=torch.rand(1, 3, 16, 16), config=OptimizeConfig(iterations=0))  # type: ignore[arg-type]
