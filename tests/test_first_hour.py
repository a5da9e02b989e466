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
