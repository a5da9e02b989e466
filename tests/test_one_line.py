"""The one-line form (issue 24 item 4): `nst-batch run INPUT --style S -o OUT`, as the peers' users type it.

It runs exactly what the manifest `nst-batch init --input INPUT --style S -o OUT` writes: the same job,
settings hash and ledger, so either resumes the other; a kill -9 resumes like any run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import nst_here
from conftest import sample_photo, write_rgb

SETTINGS = ["size=40", "iterations=16", "tolerance=0", "style_layers=[conv1_1, conv2_1]", "content_layers=[conv2_1]"]
ARGS = ["--weights", "random", "--device", "cpu", *(a for s in SETTINGS for a in ("--set", s))]
PHOTOS = ["a.png", "b.png", "c.png", "sub/d.png"]


@pytest.fixture()
def tree(tmp_path: Path, style_image: Path) -> Path:
    for i, name in enumerate(PHOTOS):
        write_rgb(tmp_path / "pics" / name, sample_photo(["astronaut.jpg", "chelsea.jpg", "coffee.jpg",
                                                          "astronaut.jpg"][i], 40 + 4 * i))
    return tmp_path


def _done(ledger: Path) -> list[str]:
    records = []
    for line in ledger.read_text().splitlines() if ledger.exists() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line, killed mid-write
            continue
    return [r["key"] for r in records if r["status"] == "done"]


def test_one_line_run_resumes_after_a_kill_and_is_the_manifest_init_writes(tree: Path) -> None:
    command = ["run", "pics", "--style", "styles/starry.jpg", "-o", "res", *ARGS]
    ledger = tree / "res" / ".nst-batch" / "ledger.jsonl"
    out, err = tree / "first.out", tree / "first.err"
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen([sys.executable, "-m", "nst_batch", *command], cwd=tree, stdout=o, stderr=e,
                                env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    while not _done(ledger):
        assert proc.poll() is None, f"the run ended before its first output: {out.read_text()}{err.read_text()}"
        assert time.monotonic() < deadline, "no output recorded in time"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    first = _done(ledger)
    assert 1 <= len(first) < len(PHOTOS), first
    kept = {k: (tree / "res" / k).stat().st_mtime_ns for k in first}

    resumed = nst_here(*command, cwd=tree)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert sorted(_done(ledger)) == sorted(PHOTOS)  # each recorded once: nothing made twice
    assert {k: (tree / "res" / k).stat().st_mtime_ns for k in first} == kept, "finished outputs made again"
    assert (tree / "res" / "report.html").is_file()

    # The manifest init writes for the same words is the same job: its run has nothing left to make.
    made = nst_here("init", "--input", "pics", "--style", "styles/starry.jpg", "-o", "res", cwd=tree)
    assert made.returncode == 0, made.stdout + made.stderr
    text = (tree / "pipeline.yaml").read_text()
    assert 'input: "pics"' in text and 'output: "res"' in text  # relative to the manifest's folder
    again = nst_here("run", "pipeline.yaml", *ARGS, cwd=tree)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 to make" in again.stdout and "4 skipped" in again.stdout, again.stdout
    status = nst_here("status", "pics", "--style", "styles/starry.jpg", "-o", "res", *ARGS, cwd=tree)
    assert status.returncode == 0 and "pics" in status.stdout
    row = next(line for line in status.stdout.splitlines() if "pics" in line and "res" in line)
    assert row.split("│")[2].strip() == "4", status.stdout  # done


def test_two_styles_blend_equally_and_a_video_or_image_gets_its_kind_of_output(tree: Path) -> None:
    res = nst_here("validate", "pics/a.png", "--style", "styles/starry.jpg", "--style", "styles/starry.jpg",
                   "-o", "one.png", *ARGS, cwd=tree)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "starry.jpgx1, starry.jpgx1" in res.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["run", "pics/a.png"], "pics/a.png: to stylize it directly, give --style STYLE_IMAGE"),
    (["run", "nothere.jpg", "--style", "styles/starry.jpg"], "nothere.jpg: not found"),
    (["run", "pics", "--style", "nope.jpg"], "--style: style image not found"),
    (["run", "pics/a.png", "--style", "styles/starry.jpg", "-o", "x.mp4"],
     "--output: the input a.png is an image, so the output is an image"),
    (["run"], "no manifest given, and no pipeline.yaml here"),
    (["validate", "p.yaml", "--style", "styles/starry.jpg"], "--style and --output are for the one-line form"),
    (["init", "--style", "styles/starry.jpg"], "give its --input too"),
])
def test_one_line_mistakes_name_the_argument(tree: Path, args: list[str], message: str) -> None:
    (tree / "p.yaml").write_text("version: 1\njobs:\n  - {input: pics, style: styles/starry.jpg, output: o}\n")
    res = nst_here(*args, cwd=tree)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in res.stderr, res.stderr


def test_no_argument_uses_the_pipeline_yaml_here_and_init_force_overwrites(tree: Path) -> None:
    assert nst_here("init", "--input", "pics", "--style", "styles/starry.jpg", cwd=tree).returncode == 0
    checked = nst_here("validate", "--weights", "random", cwd=tree)
    assert checked.returncode == 0 and "manifest OK" in checked.stdout, checked.stdout + checked.stderr
    refused = nst_here("init", cwd=tree)
    assert refused.returncode == 2 and "already exists" in refused.stderr and "--force" in refused.stderr
    forced = nst_here("init", "--force", cwd=tree)
    assert forced.returncode == 0 and "input: photos" in (tree / "pipeline.yaml").read_text()
