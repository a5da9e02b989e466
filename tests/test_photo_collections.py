"""Photo collections as phones and cameras leave them (issue 13): inputs that would share an output,
files that are not read (counted, never silent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import sample_photo, write_manifest, write_rgb
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.plan import PlanError, plan_job
from nst_batch.settings import Job

FAST = ["size=48", "iterations=2", "weights=random", "device=cpu"]


def _job(tmp_path: Path, folder: str, *overrides: str) -> Job:
    m = write_manifest(tmp_path / "p.yaml", f"""
version: 1
jobs:
  - {{name: folder, input: {folder}, style: styles/starry.jpg, output: out/folder}}
""")
    return load_manifest(m, parse_overrides([*FAST, *overrides])).jobs[0]


def test_inputs_with_one_stem_keep_both_outputs(tmp_path: Path, style_image: Path) -> None:
    pic = sample_photo("astronaut.jpg", 32)
    for name in ("photo.png", "photo.tif", "other.jpg", "sub/Photo.JPG", "sub/photo.webp"):
        write_rgb(tmp_path / "in" / name, pic)
    keys = [u.key for u in plan_job(_job(tmp_path, "in")).units]
    # the clashing ones keep their own suffix; the rest as before; names compared without case
    assert keys == ["other.png", "photo.png.png", "photo.tif.png", "sub/Photo.JPG.png", "sub/photo.webp.png"]
    assert len({k.casefold() for k in keys}) == len(keys)

    write_rgb(tmp_path / "in" / "photo.tif.png", pic)  # its plain output is the tif's kept-suffix name
    with pytest.raises(PlanError, match=r"photo\.tif.* and .*photo\.tif\.png would both be written to"):
        plan_job(_job(tmp_path, "in"))


def test_jpg_and_jpeg_clash_with_format_jpg(tmp_path: Path, style_image: Path) -> None:
    pic = sample_photo("astronaut.jpg", 32)
    write_rgb(tmp_path / "in" / "a.jpg", pic)
    write_rgb(tmp_path / "in" / "a.jpeg", pic)
    write_rgb(tmp_path / "in" / "b.jpg", pic)
    keys = [u.key for u in plan_job(_job(tmp_path, "in", "format=jpg")).units]
    assert keys == ["a.jpeg.jpg", "a.jpg.jpg", "b.jpg"]


def test_files_not_read_are_counted(tmp_path: Path, style_image: Path) -> None:
    folder = tmp_path / "in"
    write_rgb(folder / "one.jpg", sample_photo("astronaut.jpg", 32))
    for name in ("a.gif", "b.txt", "sub/c.TXT", "README", ".DS_Store", ".hidden/x.txt", ".nst-batch/ledger.jsonl"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    plan = plan_job(_job(tmp_path, "in"))
    assert plan.ignored == {".txt": 2, ".gif": 1, "(none)": 1}  # hidden entries and our state not counted

    (folder / "one.jpg").unlink()
    with pytest.raises(PlanError, match=r"holds no images or videos .*ignored: 2 \.txt, 1 \(none\), 1 \.gif"):
        plan_job(_job(tmp_path, "in"))
