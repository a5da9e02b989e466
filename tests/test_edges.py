"""The edges of a picture: a style image's uniform border trimmed on read, the VGG's padding, the last rows a
floor pooling drops."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cli_helpers import nst_here
from conftest import sample_photo, write_manifest, write_rgb
from nst_batch.context import JobContext
from nst_batch.engine.vgg import FeatureExtractor, build_features
from nst_batch.media.borders import Border, find_border, trim_border
from nst_batch.models import ModelCache
from nst_batch.settings import Job, Settings, StyleSpec

FAST = ["--set", "size=32", "--set", "iterations=2", "--weights", "random", "--device", "cpu"]


def _painting(h: int = 120, w: int = 160) -> np.ndarray:
    """A real photo (busy everywhere) at h x w."""
    return cv2.resize(sample_photo("astronaut.jpg", max(h, w)), (w, h), interpolation=cv2.INTER_AREA)


def _framed(picture: np.ndarray, sides: tuple[int, int, int, int], colour: tuple[int, int, int]) -> np.ndarray:
    top, bottom, left, right = sides
    h, w = picture.shape[:2]
    out = np.empty((h + top + bottom, w + left + right, 3), np.uint8)
    out[:] = colour
    out[top:top + h, left:left + w] = picture
    return out


@pytest.mark.parametrize("sides,colour", [((7, 7, 7, 7), (0, 0, 0)), ((5, 9, 3, 6), (250, 250, 245)),
                                          ((10, 10, 0, 0), (0, 0, 0))])  # a frame, a white mat, letterbox bars
def test_a_uniform_border_is_trimmed_by_its_width(sides: tuple[int, int, int, int],
                                                  colour: tuple[int, int, int]) -> None:
    picture = _painting()
    framed = _framed(picture, sides, colour)
    trimmed, border = trim_border(framed)
    assert border == Border(*sides)
    assert np.array_equal(trimmed, picture)


def test_a_16_bit_style_is_measured_on_its_own_scale() -> None:
    framed = _framed(_painting(), (5, 5, 8, 8), (255, 255, 255)).astype(np.uint16) * 257  # white at 65535
    trimmed, border = trim_border(framed)
    assert border == Border(5, 5, 8, 8) and trimmed.dtype == np.uint16


def test_a_jpeg_frame_with_a_blurred_edge_goes_whole() -> None:
    """As scans are: the frame's edge blurred into the painting, then JPEG."""
    framed = _framed(_painting(), (7, 7, 7, 7), (0, 0, 0))
    blurred = cv2.GaussianBlur(framed, (5, 5), 1.2)
    ok, data = cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    jpeg = cv2.imdecode(data, cv2.IMREAD_COLOR)
    border = find_border(jpeg)
    # the 7 rows of frame, give or take the one the blur made half frame, half picture
    assert all(6 <= side <= 8 for side in (border.top, border.bottom, border.left, border.right)), border


def test_a_photo_with_a_dark_flat_top_is_not_trimmed() -> None:
    picture = _painting()
    for rows in (4, 40):  # a thin dark strip (one side only), a night sky (runs past the cap)
        dark_top = picture.copy()
        dark_top[:rows] = (8, 10, 20)
        assert find_border(dark_top) == Border()
        trimmed, border = trim_border(dark_top)
        assert not border and trimmed is dark_top


def test_a_flat_band_that_runs_into_the_picture_is_not_a_border() -> None:
    """Dark on two sides, but the dark goes on inside them (the picture's, not a frame's)."""
    picture = _painting()
    picture[:, :30] = (5, 5, 5)  # a dark left third ...
    picture[:6] = (5, 5, 5)  # ... and a dark top strip that joins it
    picture[:, 30:36] = (5, 5, 5)
    border = find_border(picture)
    assert border.left == 0


def test_describe() -> None:
    assert Border(7, 7, 7, 7).describe() == "a 7 px border"
    assert Border(4, 6, 5, 5).describe() == "a border of 4/6/5/5 px (top/bottom/left/right)"


def test_the_sample_starry_night_has_its_frame_trimmed() -> None:
    """samples/styles/starry_night.jpg (opencv-doc's, at 384 px) carries a 4-6 px black frame."""
    rgb = cv2.cvtColor(cv2.imread(str(Path(__file__).parent.parent / "samples/styles/starry_night.jpg")),
                       cv2.COLOR_BGR2RGB)
    trimmed, border = trim_border(rgb)
    assert all(3 <= side <= 8 for side in (border.top, border.bottom, border.left, border.right)), border
    rows = trimmed.astype(float).mean(axis=(1, 2))
    cols = trimmed.astype(float).mean(axis=(0, 2))
    assert min(rows[0], rows[-1], cols[0], cols[-1]) > 30  # no black row or column left at an edge


def test_style_border_trim_and_keep_through_the_context(tmp_path: Path) -> None:
    style = write_rgb(tmp_path / "framed.png", _framed(_painting(), (6, 6, 6, 6), (0, 0, 0)))
    base = Settings(size=32, iterations=1, weights="random", device="cpu")
    models = ModelCache()

    def ctx(**changes: object) -> JobContext:
        job = Job(name="j", input=style, styles=(StyleSpec(style),), output=tmp_path / "out",
                  settings=dataclasses.replace(base, **changes))
        return JobContext.create(job, models)

    trimmed = ctx()
    assert trimmed.style_images[0][0].shape == (120, 160, 3)
    assert "j: style framed.png: trimmed a 6 px border (style_border: keep keeps it)" in models.messages
    shown = len(models.messages)
    kept = ctx(style_border="keep")
    assert kept.style_images[0][0].shape == (132, 172, 3)
    assert not any("trimmed" in line for line in models.messages[shown:])


def test_style_border_end_to_end(tmp_path: Path) -> None:
    write_rgb(tmp_path / "photos" / "a.png", sample_photo("chelsea.jpg", 40))
    write_rgb(tmp_path / "framed.jpg", _framed(_painting(), (7, 7, 7, 7), (0, 0, 0)))
    manifest = write_manifest(tmp_path / "pipeline.yaml", """
version: 1
jobs:
  - {name: trim, input: photos, style: framed.jpg, output: out/trim}
  - {name: keep, input: photos, style: framed.jpg, output: out/keep, style_border: keep}
""")
    result = nst_here("run", manifest, *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trim: style framed.jpg: trimmed a 7 px border" in result.stdout
    assert "keep: style framed.jpg: trimmed" not in result.stdout
    assert (tmp_path / "out/trim/a.png").is_file() and (tmp_path / "out/keep/a.png").is_file()


def test_a_bad_style_border_names_the_line(tmp_path: Path, style_image: Path) -> None:
    write_rgb(tmp_path / "photos" / "a.png", sample_photo("chelsea.jpg", 40))
    manifest = write_manifest(tmp_path / "pipeline.yaml", """
version: 1
jobs:
  - name: a
    input: photos
    style: styles/starry.jpg
    output: out
    style_border: crop
""")
    result = nst_here("validate", manifest, cwd=tmp_path)
    assert result.returncode != 0
    assert "pipeline.yaml:7" in result.stderr and "style_border" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def features() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return build_features("vgg16")  # PyTorch's default init: random, enough for where gradients reach


def test_padding_changes_only_what_sees_past_the_edge(features: torch.nn.Sequential) -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    zeros = FeatureExtractor(features, ["conv1_1"], model="vgg16")(x)["conv1_1"]
    for mode in ("reflect", "replicate"):
        padded = FeatureExtractor(features, ["conv1_1"], model="vgg16", padding=mode)
        out = padded(x)["conv1_1"]
        assert torch.allclose(out[..., 1:-1, 1:-1], zeros[..., 1:-1, 1:-1], atol=1e-5)  # the inside: the same
        assert (out[..., 0, :] - zeros[..., 0, :]).abs().max() > 1e-3  # the edge row: another neighbour
        assert padded.layers[0].weight is features[0].weight  # the trained weights, shared, not copied
        # a 16 px picture: relu5_1's map is 1 x 1, where a reflection is undefined (replicated instead)
        deep = FeatureExtractor(features, ["relu5_1"], model="vgg16", padding=mode)
        assert deep(torch.rand(1, 3, 16, 16))["relu5_1"].shape == (1, 512, 1, 1)
    with pytest.raises(ValueError, match="unknown padding"):
        FeatureExtractor(features, ["conv1_1"], model="vgg16", padding="circle")


def _last_rows_share(extractor: FeatureExtractor, height: int) -> float:
    """The gradient relu5_1 sends to each of the picture's last 2 rows over what it sends to a middle row."""
    x = torch.rand(1, 3, height, 64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    extractor(x)["relu5_1"].pow(2).sum().backward()
    assert x.grad is not None
    rows = x.grad.abs().sum(dim=(0, 1, 3))  # (height,)
    return float(rows[-2:].mean() / rows[height // 3:2 * height // 3].mean())


def test_ceil_pooling_reaches_the_rows_a_floor_pooling_drops(features: torch.nn.Sequential) -> None:
    # 90 rows: 90 -> 45 -> 22 (pool2 drops row 44, pixels 88-89) -> 11 -> 5 (pool4 drops pixels 80-87): the last
    # rows reach relu5_1 only through their neighbours' 3x3 convolutions.
    floor = FeatureExtractor(features, ["relu5_1"], model="vgg16")
    ceil = FeatureExtractor(features, ["relu5_1"], model="vgg16", ceil_pool=True)
    assert _last_rows_share(ceil, 90) > 1.2 * _last_rows_share(floor, 90)
    x = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(3))  # sides of whole pooling cells
    assert torch.equal(floor(x)["relu5_1"], ceil(x)["relu5_1"])


def test_only_a_framed_styles_outputs_are_made_again_after_the_trim(tmp_path: Path) -> None:
    """The trim is in the settings hash by what it trimmed: a style without a border hashes as before the trim
    existed (an upgrade keeps those outputs done), a framed one does not (its pixels changed)."""
    from nst_batch.context import style_trims
    from nst_batch.settings import settings_hash

    plain = write_rgb(tmp_path / "plain.png", _painting())
    framed = write_rgb(tmp_path / "framed.png", _framed(_painting(), (6, 6, 6, 6), (0, 0, 0)))

    def job(style: Path, border: str) -> Job:
        return Job(name="j", input=style, styles=(StyleSpec(style),), output=tmp_path / "out",
                   settings=Settings(size=32, weights="random", style_border=border))

    def digest(j: Job) -> str:
        return settings_hash(j.settings, j.styles, kind="image", trimmed=style_trims(j))

    before_trim = settings_hash(job(plain, "trim").settings, job(plain, "trim").styles, kind="image")
    assert style_trims(job(plain, "trim")) == ((0, 0, 0, 0),)
    assert digest(job(plain, "trim")) == digest(job(plain, "keep")) == before_trim
    assert style_trims(job(framed, "trim")) == ((6, 6, 6, 6),) and style_trims(job(framed, "keep")) == ()
    assert digest(job(framed, "trim")) != digest(job(framed, "keep"))
    assert digest(job(framed, "keep")) == settings_hash(job(framed, "keep").settings, job(framed, "keep").styles,
                                                        kind="image")  # keep: what it always made
