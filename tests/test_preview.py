"""A preview in minutes (issue 21 item 2): a few pictures of each job at a small size, a sheet and a page,
the night's estimate; the real outputs and ledgers never touched."""

from __future__ import annotations

import re
from pathlib import Path

import cv2

from cli_helpers import nst_here
from conftest import sample_photo, write_manifest, write_rgb
from nst_batch.preview import spread
from videogen import make_clip


def test_spread_takes_the_first_and_last_and_evenly_between() -> None:
    assert spread(10, 3) == [0, 4, 9] and spread(2, 3) == [0, 1] and spread(7, 1) == [0] and spread(0, 3) == []


def test_preview_of_photos_and_a_clip(tmp_path: Path, style_image: Path) -> None:
    for i, name in enumerate(["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "astronaut.jpg"]):
        write_rgb(tmp_path / "pics" / f"p{i}.png", sample_photo(name, 64))
    make_clip(tmp_path / "clip.mp4", frames=6, size=(64, 48))
    manifest = write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                              "  - {name: pics, input: pics, style: styles/starry.jpg, output: out/pics}\n"
                              "  - {name: clip, input: clip.mp4, style: styles/starry.jpg, output: out/clip.mp4}\n")
    res = nst_here("preview", manifest, "--weights", "random", "--device", "cpu", "--size", "40", "--images", "2",
                   "--iterations", "3", "--set", "size=40", "--set", "scales=[1.0]", "--set", "video.iterations=2",
                   "--set", "style_layers=[relu1_1]", "--set", "content_layers=[relu2_1]", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    where = tmp_path / "nst-batch-preview"
    assert "preview: 6 pictures" in res.stdout and str(where) in res.stdout and "not touched" in res.stdout
    assert re.search(r"the whole night \(nst-batch plan\): about (\d+h\d\dm|\d+m\d\ds) on cpu", res.stdout), res.stdout
    pictures = sorted(p.relative_to(where).as_posix() for p in where.rglob("*.png") if p.name != "preview.png")
    assert pictures == ["01-pics/p0.png", "01-pics/p3.png",  # the first and last of the folder
                        "02-clip/clip-000001.png", "02-clip/clip-000002.png",  # cold, then warm
                        "02-clip/clip-000005.png", "02-clip/clip-000006.png"], pictures  # and again, later on
    assert max(cv2.imread(str(where / "01-pics" / "p0.png")).shape[:2]) == 40  # at the preview's size
    assert "frame 2 (warm)" in res.stdout and "frame 1 (cold)" in res.stdout
    sheet = cv2.imread(str(where / "preview.png"))
    assert sheet is not None and sheet.shape[0] > 6 * 100
    page = (where / "preview.html").read_text()
    for ref in re.findall(r"src='([^']+)'", page):
        assert (where / ref).exists(), ref
    assert not (tmp_path / "out").exists()  # no output, no ledger of the real jobs
