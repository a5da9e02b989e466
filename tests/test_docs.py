"""The front door stays true: README documents every setting; the shipped manifest validates."""

from __future__ import annotations

from conftest import REPO
from cli_helpers import nst
from nst_batch.checks import check_jobs
from nst_batch.manifest import SETTING_FIELDS, VIDEO_FIELDS, load_manifest, parse_overrides


def test_readme_documents_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    keys = [k for k in SETTING_FIELDS if k != "video"] + [f"video.{k}" for k in VIDEO_FIELDS]
    missing = [k for k in keys if f"| `{k}` |" not in readme]
    assert not missing, f"README's settings table lacks {missing}"


def test_shipped_pipeline_validates() -> None:
    manifest = load_manifest(REPO / "pipeline.yaml", parse_overrides(["weights=random"]))
    plans, problems = check_jobs(manifest.jobs)
    assert not problems
    kinds = sorted(u.kind for p in plans for u in p.units)
    assert kinds.count("image") >= 4 and kinds.count("video") == 1


def test_version_and_help() -> None:
    version = nst("--version")
    assert version.returncode == 0 and version.stdout.startswith("nst-batch ")
    for args in (["--help"], ["run", "--help"], ["validate", "--help"], ["weights", "import", "--help"]):
        res = nst(*args)
        assert res.returncode == 0 and "Usage" in res.stdout, args
