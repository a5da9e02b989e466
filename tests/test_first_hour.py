"""The first hour's conventions (issue 24 item 8): -h, --debug after the command, shell completion,
the offline weights error that offers a smoke test, and `plan` in words a user reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import nst, nst_here
from conftest import write_manifest


@pytest.fixture()
def manifest(tmp_path: Path, photos: Path, style_image: Path) -> Path:
    return write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                          "  - {name: pics, input: photos, style: styles/starry.jpg, output: out}\n")


def test_dash_h_is_help_for_the_program_and_its_commands() -> None:
    for args in (["-h"], ["run", "-h"], ["init", "-h"], ["weights", "import", "-h"]):
        res = nst_here(*args)
        assert res.returncode == 0 and "Usage" in res.stdout, (args, res.stdout + res.stderr)
    assert "--install-completion" in nst_here("--help").stdout  # typer's shell completion is on


def test_debug_after_the_command_shows_the_traceback(tmp_path: Path) -> None:
    bad = write_manifest(tmp_path / "bad.yaml", "version: 1\njobs: [\n")
    plain = nst("validate", bad)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    after = nst("validate", bad, "--debug")
    assert after.returncode != 0 and "Traceback" in after.stderr and "ManifestError" in after.stderr


def test_offline_without_weights_offers_the_smoke_test(manifest: Path) -> None:
    res = nst_here("validate", manifest)  # the tests' TORCH_HOME is empty and NST_BATCH_OFFLINE is set
    assert res.returncode == 2
    assert "nst-batch weights import FILE" in res.stderr and "--weights random" in res.stderr, res.stderr


def test_plan_gives_each_outputs_budget_and_the_device_it_resolves_to(manifest: Path) -> None:
    res = nst_here("plan", manifest, "--set", "size=32", "--set", "iterations=7", "--set", "scales=[1.0]",
                   "--device", "auto")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "iterations each" in res.stdout
    row = next(line for line in res.stdout.splitlines() if line.startswith("│ pics"))
    assert row.split("│")[4].strip() == "7", res.stdout  # each photo's budget, beside the total
    total = res.stdout.strip().splitlines()[-1]
    assert total.startswith("total: about") and total.endswith(" on cpu"), total  # `auto`, said as what it is


def test_the_sample_manifest_points_at_readme_sections_that_exist() -> None:
    """Issue 24 item 9: pipeline.yaml's comments name README sections; each must be a heading there."""
    import re

    from conftest import REPO

    named = re.findall(r'README "([^"]+)"', (REPO / "pipeline.yaml").read_text())
    headings = {line.lstrip("#").strip() for line in (REPO / "README.md").read_text().splitlines()
                if line.startswith("#")}
    assert named and not [n for n in named if n not in headings], (named, sorted(headings))


def test_status_and_report_say_what_the_ledger_recorded_not_what_they_were_given(manifest: Path) -> None:
    """Issue 24 item 1: after `run --set size=40 --weights random`, a plain `status` and `report` tell the truth."""
    made = ["--weights", "random", "--set", "size=40", "--set", "iterations=4", "--set", "scales=[1.0]",
            "--set", "style_layers=[relu1_1]", "--set", "content_layers=[relu2_1]"]
    res = nst_here("run", manifest, *made)
    assert res.returncode == 0, res.stdout + res.stderr

    plain = nst_here("status", manifest, "--set", "style_layers=[relu1_1]", "--set", "content_layers=[relu2_1]")
    assert plain.returncode == 0, plain.stderr
    row = next(line for line in plain.stdout.splitlines() if line.startswith("│ pics"))
    assert [c.strip() for c in row.split("│")[2:6]] == ["0", "3", "0", "0"], plain.stdout  # not "3 pending"
    note = next(line for line in plain.stdout.splitlines() if line.startswith("pics: 3 output(s) were made with"))
    assert "size=40" in note and "weights=random" in note and "iterations=4" in note, note

    same = nst_here("status", manifest, *made)
    row = next(line for line in same.stdout.splitlines() if line.startswith("│ pics"))
    assert [c.strip() for c in row.split("│")[2:6]] == ["3", "0", "0", "0"], same.stdout

    page = nst_here("report", manifest)  # without the run's options, as a user types it the morning after
    assert page.returncode == 0, page.stdout + page.stderr
    html = (manifest.parent / "out" / "report.html").read_text()
    assert "made at size 40px · model vgg19 · weights random · 4 iterations" in html
    assert "size 256px" not in html and "weights imagenet" not in html
    assert nst_here("report", manifest, "--weights", "random", "--device", "cpu").returncode == 0  # run's flags
