"""Style targets are computed once per job, not per image or per iteration."""

from __future__ import annotations

from pathlib import Path

import pytest

import nst_batch.engine.tiles as work  # style_grams_in_pieces calls style_grams there
from nst_batch.events import Event
from nst_batch.executors.local import LocalExecutor
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.runner import run
from conftest import write_manifest


def test_style_grams_once_per_job(tmp_path: Path, photos: Path, style_image: Path, style_image2: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = work.style_grams

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(work, "style_grams", counting)
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: a, input: photos, style: styles/starry.jpg, output: out/a}
  - name: b
    input: photos
    style: [{image: styles/starry.jpg, weight: 1}, {image: styles/graffiti.jpg, weight: 2}]
    output: out/b
""")
    jobs = load_manifest(m, parse_overrides(["size=32", "iterations=2", "weights=random", "device=cpu"])).jobs
    events: list[Event] = []
    summary = run(jobs, executor=LocalExecutor(), emit=events.append, should_stop=lambda: False)
    assert [j.done for j in summary.jobs] == [3, 3]
    # two jobs, six images, 2 iterations each: one target computation per job and scale (`scales: [0.5, 1.0]`)
    assert len(calls) == 2 * len(jobs[0].settings.scales) == 4
