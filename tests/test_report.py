"""report.html: built from the ledgers, references only files that exist, shows each job."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import write_manifest
from nst_batch.executors.local import LocalExecutor
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.report import write_report
from nst_batch.runner import run
from videogen import make_clip


def test_report_references_existing_files(tmp_path: Path, photos: Path, style_image: Path) -> None:
    make_clip(tmp_path / "clip.mp4", frames=8, fps=8, audio=False)
    (photos / "broken.jpg").write_bytes(b"not an image")
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: folder, input: photos, style: styles/starry.jpg, output: out/folder}
  - {name: clip, input: clip.mp4, style: styles/starry.jpg, output: out/clip.mp4}
""")
    jobs = load_manifest(m, parse_overrides(["size=48", "iterations=3", "weights=random", "device=cpu",
                                             "video.first_iterations=2", "video.iterations=1"])).jobs
    run(jobs, executor=LocalExecutor(), emit=lambda e: None, should_stop=lambda: False)
    page_path = write_report(jobs)
    assert page_path == tmp_path / "out" / "report.html"
    page = page_path.read_text()
    refs = re.findall(r"(?:src|href)='([^']+)'", page)
    assert len(refs) >= 3 * 3 + 2 * 6  # 3 images x (before, after, link) + video strips
    for ref in refs:
        assert (page_path.parent / ref).exists(), ref
    assert "clip.mp4" in page and "E_warp" in page and "<svg" in page
    assert "broken.jpg" in page and "failed" in page
