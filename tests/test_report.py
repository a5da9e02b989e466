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
    _check_page_for_a_person(page)


def _check_page_for_a_person(page: str) -> None:
    """Issue 24 item 7: a header, the random-weights banner, failures first and by input, axes, labels, alt."""
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.imgs: list[dict[str, str | None]] = []
            self.meta: list[dict[str, str | None]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "img":
                self.imgs.append(dict(attrs))
            elif tag == "meta":
                self.meta.append(dict(attrs))

    parsed = Page()
    parsed.feed(page)
    assert any(m.get("name") == "viewport" for m in parsed.meta)
    assert parsed.imgs and all(img.get("alt") for img in parsed.imgs), [i for i in parsed.imgs if not i.get("alt")]
    header = page[page.index("<header>"):page.index("</header>")]
    assert "manifest " in header and "p.yaml" in header and "4 done, 1 failed, 0 pending" in header
    assert "device cpu" in header and "weights random" in header
    assert "class=banner role=alert>RANDOM WEIGHTS" in header  # a banner, not grey text
    failures = header[header.index("class=failures"):]
    assert "<b>broken.jpg</b> (folder)" in failures and "broken.png" not in failures  # by the input's own name
    assert page.index("class=failures") < page.index("<section>")  # gathered at the top
    assert ">iteration</text>" in page and "finer scale" in page  # axes, and the coarse-to-fine switch marked
    assert "<span class=label>before</span>" in page and "<span class=label>after</span>" in page
    assert re.search(r"<figcaption>0:00\.\d</figcaption>", page)  # the strips' frames carry their time
