"""End to end through the command (in this process): image folders, a blended style, validate, resume, failures."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from cli_helpers import nst_here
from conftest import write_manifest

FAST = ["--set", "size=64", "--set", "iterations=4", "--weights", "random", "--device", "cpu"]


@pytest.fixture()
def manifest(tmp_path: Path, photos: Path, style_image: Path, style_image2: Path) -> Path:
    return write_manifest(tmp_path / "pipeline.yaml", """
version: 1
defaults:
  format: png
jobs:
  - name: folder
    input: photos
    style: styles/starry.jpg
    output: out/folder
  - name: blend
    input: photos/astronaut.jpg
    style:
      - {image: styles/starry.jpg, weight: 0.7}
      - {image: styles/graffiti.jpg, weight: 0.3}
    output: out/blend
    format: jpg
    iterations: 3
""")


def test_run_folder_and_blend(manifest: Path, tmp_path: Path) -> None:
    result = nst_here("run", manifest, *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    sources = {"folder/astronaut.png": "astronaut.jpg", "folder/chelsea.png": "chelsea.png",
               "folder/sub/coffee.png": "sub/coffee.jpg", "blend/astronaut.jpg": "astronaut.jpg"}
    for rel, src in sources.items():
        h, w = cv2.imread(str(tmp_path / "photos" / src)).shape[:2]
        expected = (round(h * 64 / max(h, w)), round(w * 64 / max(h, w)))  # longest side = size
        img = cv2.imread(str(out / rel))
        assert img is not None, rel
        assert img.shape[:2] == expected, rel
    saved = json.loads((out / "folder" / "nst-batch.json").read_text())
    assert saved["settings"]["size"] == 64 and saved["settings"]["weights"] == "random"
    blend = json.loads((out / "blend" / "nst-batch.json").read_text())
    assert blend["settings"]["iterations"] == 4  # --set applies to every job, over the job's own value
    assert [s["weight"] for s in blend["styles"]] == [0.7, 0.3]
    assert "RANDOM weights" in result.stdout  # never silent about untrained weights
    assert "4 done, 0 skipped, 0 failed" in result.stdout

    again = nst_here("run", manifest, *FAST, cwd=tmp_path)
    assert again.returncode == 0 and "0 done, 4 skipped, 0 failed" in again.stdout
    changed = nst_here("run", manifest, *FAST, "--set", "seed=3", cwd=tmp_path)
    assert "4 done, 0 skipped" in changed.stdout  # changed settings redo the outputs
    forced = nst_here("run", manifest, *FAST, "--set", "seed=3", "--force", cwd=tmp_path)
    assert "4 done, 0 skipped" in forced.stdout


def test_bad_image_fails_alone(manifest: Path, tmp_path: Path) -> None:
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    result = nst_here("run", manifest, *FAST, cwd=tmp_path)
    assert result.returncode == 1
    assert "broken.jpg" in result.stdout and "cannot decode" in result.stdout
    assert (tmp_path / "out" / "folder" / "sub" / "coffee.png").exists()  # the rest of the night went on
    assert "Traceback" not in result.stdout + result.stderr
    status = nst_here("status", manifest, *FAST[:4], cwd=tmp_path)
    assert status.returncode == 0 and "folder" in status.stdout


def test_validate(manifest: Path, tmp_path: Path) -> None:
    ok = nst_here("validate", manifest, "--weights", "random", cwd=tmp_path)
    assert ok.returncode == 0 and "manifest OK" in ok.stdout and "folder" in ok.stdout
    no_weights = nst_here("validate", manifest, cwd=tmp_path)
    assert no_weights.returncode == 2 and "nst-batch weights import" in no_weights.stderr
    cuda = nst_here("validate", manifest, "--weights", "random", "--device", "cuda", cwd=tmp_path)
    assert cuda.returncode == 2 and "CUDA is not available" in cuda.stderr
    bad = write_manifest(tmp_path / "bad.yaml", "version: 1\njobs:\n  - input: photos\n    style: styles/starry.jpg\n"
                                                "    output: o\n    optimizer: sgd\n")
    res = nst_here("validate", bad, cwd=tmp_path)
    assert res.returncode == 2 and "bad.yaml:6: jobs[0].optimizer" in res.stderr and "Traceback" not in res.stderr
    debug = nst_here("--debug", "validate", bad, cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_empty_folder_and_unwritable_output(tmp_path: Path, style_image: Path, photos: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "blocker").write_text("a file where a folder should be")
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: empty, input: empty, style: styles/starry.jpg, output: out/e}
  - {name: blocked, input: photos/chelsea.png, style: styles/starry.jpg, output: blocker/out}
  - {name: fine, input: photos/astronaut.jpg, style: styles/starry.jpg, output: out/f}
""")
    res = nst_here("run", m, *FAST, cwd=tmp_path)
    assert res.returncode == 1 and "holds no images or videos" in res.stdout
    assert "blocker" in res.stdout and "not writable" in res.stdout
    assert (tmp_path / "out" / "f" / "astronaut.png").exists()


def test_preserve_colors_and_original_size(tmp_path: Path, photos: Path, style_image: Path) -> None:
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: plain, input: photos/astronaut.jpg, style: styles/starry.jpg, output: out/plain}
  - {name: kept, input: photos/astronaut.jpg, style: styles/starry.jpg, output: out/kept,
     preserve_colors: true, output_size: original}
""")
    res = nst_here("run", m, *FAST, "--set", "iterations=8", "--set", "style_weight=1e9", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    content = cv2.imread(str(tmp_path / "photos" / "astronaut.jpg"))
    kept = cv2.imread(str(tmp_path / "out" / "kept" / "astronaut.png"))
    plain = cv2.imread(str(tmp_path / "out" / "plain" / "astronaut.png"))
    assert kept.shape == content.shape and plain.shape[:2] == (64, 64)  # original vs working size

    def chroma_error(img):  # type: ignore[no-untyped-def]
        small = cv2.resize(content, img.shape[1::-1], interpolation=cv2.INTER_AREA)
        a = cv2.cvtColor(img, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(float)
        b = cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(float)
        return abs(a - b).mean()

    assert chroma_error(kept) < 2.0 < chroma_error(plain)  # colours kept only when asked


def test_size_original_works_at_each_inputs_own_size(tmp_path: Path, style_image: Path) -> None:
    from conftest import sample_photo, write_rgb
    from videogen import make_clip

    write_rgb(tmp_path / "mixed" / "wide.png", sample_photo("rocket.jpg", 44))
    write_rgb(tmp_path / "mixed" / "tall.png", sample_photo("astronaut.jpg", 36)[:, :20])
    make_clip(tmp_path / "mixed" / "clip.mp4", frames=4, fps=12, size=(40, 30), audio=False)
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: mixed, input: mixed, style: styles/starry.jpg, output: out, size: original}
""")
    res = nst_here("run", m, "--set", "iterations=2", "--set", "video.first_iterations=2",
                   "--set", "video.iterations=1", "--weights", "random", "--device", "cpu", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("wide.png", "tall.png"):
        assert cv2.imread(str(tmp_path / "out" / name)).shape == cv2.imread(str(tmp_path / "mixed" / name)).shape
    video = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert (video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (40, 30)
    saved = json.loads((tmp_path / "out" / "nst-batch.json").read_text())
    assert saved["settings"]["size"] == "original"
