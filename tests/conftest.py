"""Shared fixtures: isolated caches, tiny real-looking images, a manifest writer, a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"

# Tests use tiny images: one thread avoids oversubscription on a shared 2-core machine
# (helpers measured a small convolution ~200x slower with 2 threads under load).
torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow` tests (the soak) run only when asked: NST_BATCH_SOAK=1, or a -m expression naming `slow`."""
    if os.environ.get("NST_BATCH_SOAK") == "1" or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run it with NST_BATCH_SOAK=1 or -m slow")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's torch cache or tries the network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
    monkeypatch.setenv("NST_BATCH_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "200")


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def sample_photo(name: str, size: int = 96) -> np.ndarray:
    """A real photo from samples/, shrunk so tests stay fast."""
    bgr = cv2.imread(str(next(SAMPLES.glob(f"photos/**/{name}"))))
    h, w = bgr.shape[:2]
    scale = size / max(h, w)
    return cv2.cvtColor(cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_BGR2RGB)


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """A folder of 3 photos, one in a subfolder, of different sizes."""
    root = tmp_path / "photos"
    write_rgb(root / "astronaut.jpg", sample_photo("astronaut.jpg", 96))
    write_rgb(root / "chelsea.png", sample_photo("chelsea.jpg", 80))
    write_rgb(root / "sub" / "coffee.jpg", sample_photo("coffee.jpg", 72))
    return root


@pytest.fixture()
def style_image(tmp_path: Path) -> Path:
    return write_rgb(tmp_path / "styles" / "starry.jpg",
                     cv2.cvtColor(cv2.imread(str(SAMPLES / "styles" / "starry_night.jpg")), cv2.COLOR_BGR2RGB))


@pytest.fixture()
def style_image2(tmp_path: Path) -> Path:
    return write_rgb(tmp_path / "styles" / "graffiti.jpg",
                     cv2.cvtColor(cv2.imread(str(SAMPLES / "styles" / "graffiti.jpg")), cv2.COLOR_BGR2RGB))


def write_manifest(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path
