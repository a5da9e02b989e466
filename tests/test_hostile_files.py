"""Files, names and disks that a careful user's worst night holds (issue 23): each fails alone with one line
naming the file, or is read as every viewer reads it; never a traceback, and the summary and report are
always written. Commands run in this process (`nst_here`); settings are tiny (these tests are about files)."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from cli_helpers import nst_here
from conftest import sample_photo, write_manifest, write_rgb
from videogen import make_clip

SMALL = ("--device", "cpu", "--set", "size=32", "--set", "iterations=2",
        "--set", "style_layers=[conv1_1]", "--set", "content_layers=[conv1_1]",
        "--set", "video.first_iterations=2", "--set", "video.iterations=1")
FAST = ("--weights", "random", *SMALL)  # run and validate; plan takes SMALL (it times random weights itself)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    write_rgb(tmp_path / "styles" / "s.jpg", sample_photo("coffee.jpg", 40))
    return tmp_path


def _one_job(root: Path, input: str, output: str = "out", **extra: str) -> Path:  # noqa: A002
    keys = "".join(f"    {k}: {v}\n" for k, v in extra.items())
    return write_manifest(root / "m.yaml", f"version: 1\njobs:\n  - name: j\n    input: {input}\n"
                          f"    style: styles/s.jpg\n    output: {output}\n{keys}")


def _said(res: object) -> str:
    return " ".join((res.stdout + res.stderr).split())  # type: ignore[attr-defined]


def _no_traceback(res: object) -> None:
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr  # type: ignore[attr-defined]


# --- item 2: a video whose metadata is not UTF-8 ----------------------------------------------------


def _clip_with_latin1_tags(path: Path) -> Path:
    """A clip whose container and stream tags hold `C\\xe9m\\xe9` (Latin-1, not UTF-8), as some cameras and
    old encoders write them: tagged through PyAV with a placeholder of the same length, then patched."""
    plain = make_clip(path.with_name("plain.mp4"), frames=6, fps=12, size=(64, 48), audio=False)
    with av.open(str(plain)) as src, av.open(str(path), "w", format="mp4") as out:
        out.metadata["comment"] = "CXmX"
        stream = out.add_stream_from_template(src.streams.video[0])
        stream.metadata["handler_name"] = "CXmX"
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = path.read_bytes()
    assert data.count(b"CXmX") == 2
    path.write_bytes(data.replace(b"CXmX", b"C\xe9m\xe9"))
    plain.unlink()
    return path


def test_a_video_whose_tags_are_not_utf8_is_checked_planned_and_made(root: Path) -> None:
    _clip_with_latin1_tags(root / "clip.mp4")
    _one_job(root, "clip.mp4", "out/clip.mp4")
    for command, args in (("validate", FAST), ("plan", SMALL)):
        res = nst_here(command, "m.yaml", *args, cwd=root)
        assert res.returncode == 0, res.stdout + res.stderr
        _no_traceback(res)
    res = nst_here("run", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    with av.open(str(root / "out" / "clip.mp4")) as made:
        assert made.streams.video[0].frames == 6
