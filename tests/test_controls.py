"""Artistic controls change the output in the way they promise (random weights, tiny images)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import nst_batch.engine.tiles as work  # style_grams_in_pieces calls style_grams there
from nst_batch.engine import gram
from nst_batch.settings import Job, Settings, StyleSpec
from nst_batch.context import JobContext
from nst_batch.pictures import to_tensor, to_uint8
from nst_batch.stylize import stylize_frame
from nst_batch.models import ModelCache
from conftest import sample_photo

# Style 1000x content (the losses are scale-free): the style visibly acts in 6 iterations.
BASE = Settings(size=48, iterations=6, weights="random", device="cpu", tolerance=0.0, style_weight=1e3)


@pytest.fixture(scope="module")
def models() -> ModelCache:
    return ModelCache()


def _ctx(style: Path, models: ModelCache, **changes: object) -> JobContext:
    job = Job(name="t", input=style, styles=(StyleSpec(style),), output=Path("unused"),
              settings=dataclasses.replace(BASE, **changes))
    return JobContext.create(job, models)


def _content() -> np.ndarray:
    return sample_photo("chelsea.jpg", 48)


def test_style_scale_sets_the_style_image_size(style_image: Path, models: ModelCache,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, ...]] = []
    real = work.style_grams
    monkeypatch.setattr(work, "style_grams", lambda ex, styles, layers, **kw: (
        seen.append(tuple(styles[0][0].shape)), real(ex, styles, layers, **kw))[1])
    small = _ctx(style_image, models, style_scale=0.5)
    large = _ctx(style_image, models, style_scale=2.0)
    assert max(seen[0][-2:]) == 24 and max(seen[1][-2:]) == 96
    a = to_uint8(stylize_frame(small, _content(), iterations=6).image)
    b = to_uint8(stylize_frame(large, _content(), iterations=6).image)
    assert np.abs(a.astype(int) - b).mean() > 1.0


def test_noise_init_starts_away_from_the_content(style_image: Path, models: ModelCache) -> None:
    content = _content()
    from_content = to_uint8(stylize_frame(_ctx(style_image, models), content, iterations=3).image)
    from_noise = to_uint8(stylize_frame(_ctx(style_image, models, init="noise"), content, iterations=3).image)
    dist = lambda x: np.abs(x.astype(int) - content).mean()  # noqa: E731
    assert dist(from_noise) > 2 * dist(from_content)


def test_avg_pooling_changes_the_features_and_output(style_image: Path, models: ModelCache) -> None:
    mx, avg = _ctx(style_image, models), _ctx(style_image, models, pooling="avg")
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in avg.extractor.layers)
    assert not any(isinstance(m, torch.nn.AvgPool2d) for m in mx.extractor.layers)
    a = to_uint8(stylize_frame(mx, _content(), iterations=6).image)
    b = to_uint8(stylize_frame(avg, _content(), iterations=6).image)
    assert np.abs(a.astype(int) - b).mean() > 0.5


def test_style_layer_weights_steer_which_layer_is_matched(style_image: Path, models: ModelCache) -> None:
    shallow = _ctx(style_image, models, style_layer_weights=(1.0, 0, 0, 0, 0), iterations=15)
    deep = _ctx(style_image, models, style_layer_weights=(0, 0, 0, 0, 1.0), iterations=15)

    def relu1_1_style_error(ctx: JobContext) -> float:
        out = stylize_frame(ctx, _content(), iterations=15).image
        feats = ctx.extractor(out)
        return float((gram(feats["relu1_1"]) - ctx.grams_at(1.0, ctx.job.settings.size)["relu1_1"]).pow(2).mean())

    assert relu1_1_style_error(shallow) < relu1_1_style_error(deep)


def test_init_image_path(style_image: Path, models: ModelCache) -> None:
    ctx = _ctx(style_image, models, init=str(style_image))
    start = ctx.initial_image(to_tensor(_content(), ctx.device))
    assert start.shape == (1, 3, 32, 48)  # the init image, resized to the content's shape
