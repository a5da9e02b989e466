"""Sweeps (issue 21 item 1): one job per combination of swept values, each a normal output (ledger, resume,
settings file) in a folder named by its values, and per input a contact sheet, beside the outputs and in
report.html."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from cli_helpers import nst_here
from conftest import sample_photo, write_manifest, write_rgb
from nst_batch.errors import ManifestError
from nst_batch.manifest import load_manifest, parse_overrides, parse_sweeps
from videogen import make_clip

FAST = ["--weights", "random", "--device", "cpu", "--set", "size=32", "--set", "iterations=4", "--set", "scales=[1.0]",
        "--set", "tolerance=0", "--set", "style_layers=[relu1_1]", "--set", "content_layers=[relu2_1]",
        "--set", "video.first_iterations=3", "--set", "video.iterations=2"]
SWEEP = ["--sweep", "style_weight=2,5,10", "--sweep", "style_scale=0.5,1.0"]
COMBOS = [f"style_weight-{w}_style_scale-{s}" for w in (2, 5, 10) for s in (0.5, 1.0)]
PHOTOS = ["a.png", "b.png", "sub/c.png"]


@pytest.fixture()
def tree(tmp_path: Path, style_image: Path, style_image2: Path) -> Path:
    for name, photo in zip(PHOTOS, ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")):
        write_rgb(tmp_path / "pics" / name, sample_photo(photo, 40))
    make_clip(tmp_path / "clip.mp4", frames=4, size=(48, 36))
    write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                   "  - {name: pics, input: pics, style: styles/starry.jpg, output: out/pics}\n"
                   "  - {name: clip, input: clip.mp4, style: styles/starry.jpg, output: out/clip.mp4}\n")
    return tmp_path


def _done(root: Path) -> dict[str, int]:
    """Every output recorded done under `root`, with its file's mtime."""
    found = {}
    for ledger in root.rglob("ledger.jsonl"):
        if "work" in ledger.parts:
            continue  # a video's frames
        for line in ledger.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("status") == "done":
                folder = ledger.parent.parent
                dst = folder / rec["key"] if (folder / rec["key"]).exists() else folder.parent / rec["key"]
                if dst.exists():
                    found[str(dst)] = dst.stat().st_mtime_ns
    return found


def test_a_3x2_sweep_over_photos_and_a_clip_resumes_after_a_kill_and_draws_contact_sheets(tree: Path) -> None:
    args = [sys.executable, "-m", "nst_batch", "run", "p.yaml", *FAST, *SWEEP]
    with open(tree / "run.log", "w") as log:
        proc = subprocess.Popen(args, cwd=tree, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"})
    deadline = time.monotonic() + 240
    while len(_done(tree / "out")) < 4:
        assert proc.poll() is None, (tree / "run.log").read_text()
        assert time.monotonic() < deadline, "no outputs in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    before_kill = _done(tree / "out")
    assert 4 <= len(before_kill) < 6 * 4

    resumed = nst_here("run", "p.yaml", *FAST, *SWEEP, cwd=tree)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = _done(tree / "out")
    assert {k: after[k] for k in before_kill} == before_kill, "outputs made before the kill were made again"
    for combo in COMBOS:  # 6 outputs per input, each in its combination's folder
        for photo in PHOTOS:
            assert cv2.imread(str(tree / "out" / "pics" / combo / photo)) is not None, (combo, photo)
        assert (tree / "out" / "clip" / combo / "clip.mp4").stat().st_size > 0
        settings = json.loads((tree / "out" / "pics" / combo / "nst-batch.json").read_text())["settings"]
        assert f"style_weight-{settings['style_weight']:g}_style_scale-{settings['style_scale']}" == combo
    sheets = sorted(p.name for p in (tree / "out" / "pics" / "contact-sheets").iterdir())
    assert sheets == ["a.png", "b.png", "sub_c.png"]  # one per input
    sheet = cv2.imread(str(tree / "out" / "pics" / "contact-sheets" / "a.png"))
    assert sheet.shape[0] > 3 * 150 and sheet.shape[1] > 2 * 150  # 3 rows (style_weight) x 2 columns
    assert (tree / "out" / "clip" / "contact-sheets" / "clip.png").exists()
    page = (tree / "out" / "report.html").read_text()
    assert "Sweep: pics" in page and "Sweep: clip" in page
    assert "<code>style_weight: 5 · style_scale: 0.5</code>" in page  # the lines that make a cell at full size


def test_a_manifest_sweep_of_styles_names_each_folder_by_its_image(tree: Path) -> None:
    manifest = write_manifest(tree / "s.yaml", "version: 1\njobs:\n"
                              "  - name: pics\n    input: pics\n    output: out/s\n"
                              "    sweep: {style: [styles/starry.jpg, styles/graffiti.jpg], tv_weight: [1, 4]}\n")
    jobs = load_manifest(manifest, parse_overrides(["weights=random"])).jobs
    assert [j.output.name for j in jobs] == ["style-starry_tv_weight-1", "style-starry_tv_weight-4",
                                             "style-graffiti_tv_weight-1", "style-graffiti_tv_weight-4"]
    assert [j.styles[0].image.name for j in jobs] == ["starry.jpg", "starry.jpg", "graffiti.jpg", "graffiti.jpg"]
    assert jobs[1].settings.tv_weight == 4 and jobs[1].name == "pics [style=starry, tv_weight=4]"
    assert all(j.sweep is not None and j.sweep.root == tree / "out" / "s" for j in jobs)


@pytest.mark.parametrize(("sweep", "sets", "message"), [
    ("{style_wieght: [1, 2]}", [], "cannot sweep 'style_wieght': not a setting (did you mean 'style_weight'?)"),
    ("{style_weight: 3}", [], "sweep.style_weight: must be a list of values to try"),
    ("{style_weight: [1, -2]}", [], "style_weight"),
    ("[1, 2]", [], "sweep: must be a mapping"),
    ("{style_weight: [1, 2]}", ["style_weight=3"], "style_weight is both swept and set by --set"),
    ("{style_weight: [1, 2, 3, 4, 5, 6, 7, 8, 9], tv_weight: [1, 2, 3, 4, 5, 6, 7, 8, 9], "
     "content_weight: [1, 2, 3, 4]}", [], "324 combinations"),
])
def test_sweep_mistakes_are_manifest_errors(tree: Path, sweep: str, sets: list[str], message: str) -> None:
    manifest = write_manifest(tree / "bad.yaml", "version: 1\njobs:\n  - name: pics\n    input: pics\n"
                              f"    style: styles/starry.jpg\n    output: out/b\n    sweep: {sweep}\n")
    with pytest.raises(ManifestError, match="bad.yaml:") as err:
        load_manifest(manifest, parse_overrides(["weights=random", *sets]))
    assert message in str(err.value)


def test_sweep_on_the_command_line(tree: Path) -> None:
    assert parse_sweeps(["style_weight=2,5", "video.iterations=10,20"]) == {"style_weight": [2, 5],
                                                                          "video.iterations": [10, 20]}
    with pytest.raises(ManifestError, match=r"--sweep style_weight=2,x: must be a number, got .x."):
        parse_sweeps(["style_weight=2,x"])
    with pytest.raises(ManifestError, match="expected KEY=V1,V2"):
        parse_sweeps(["style_weight"])
    res = nst_here("validate", "p.yaml", "--weights", "random",
                   "--sweep", "style=styles/graffiti.jpg,styles/starry.jpg", cwd=tree)
    assert res.returncode == 0 and "manifest OK" in res.stdout, res.stdout + res.stderr
