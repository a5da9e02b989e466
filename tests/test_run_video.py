"""Videos end to end: frame count, fps, size, codec, audio, rotation, cuts, bad files, flicker."""

from __future__ import annotations

import json
from pathlib import Path

import av

from cli_helpers import nst_here
from conftest import write_manifest
from videogen import make_clip, make_not_video, make_truncated, make_zero_frames

FAST = ["--set", "size=64", "--set", "video.first_iterations=3", "--set", "video.iterations=2",
        "--weights", "random", "--device", "cpu"]


def _probe(path: Path) -> dict[str, object]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        audio = c.streams.audio[0] if c.streams.audio else None
        info = {"codec": v.codec_context.name, "pix_fmt": v.codec_context.pix_fmt, "fps": v.average_rate,
                "size": (v.codec_context.width, v.codec_context.height), "audio": audio is not None,
                "audio_duration": (float(audio.duration * audio.time_base)
                                   if audio is not None and audio.duration else None)}
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    info.update(frames=len(frames), first=frames[0])
    return info


def _ledger_metrics(state: Path) -> dict[str, object]:
    recs = [json.loads(line) for line in (state / "ledger.jsonl").read_text().splitlines()]
    return [r for r in recs if r["status"] == "done"][-1]["metrics"]


def test_clip_with_audio(tmp_path: Path, style_image: Path) -> None:
    make_clip(tmp_path / "clip.mp4", frames=24, fps=12, size=(64, 48), audio=True)
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: clip, input: clip.mp4, style: styles/starry.jpg, output: out/clip.mp4}
""")
    res = nst_here("run", m, *FAST, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    info = _probe(tmp_path / "out" / "clip.mp4")
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["frames"] == 24 and info["fps"] == 12 and info["size"] == (64, 48)
    assert info["audio"] and abs(info["audio_duration"] - 2.0) < 0.1
    metrics = _ledger_metrics(tmp_path / "out" / ".nst-batch" / "clip.mp4")
    assert metrics["frames"] == 24 and metrics["cuts"] == []
    assert metrics["e_warp"] is not None and metrics["e_warp_input"] is not None
    assert "E_warp" in res.stdout


def test_span_no_audio_rotation_and_cut(tmp_path: Path, style_image: Path) -> None:
    make_clip(tmp_path / "silent.mp4", frames=24, fps=12, audio=False)
    make_clip(tmp_path / "phone.mp4", frames=6, fps=12, size=(64, 48), audio=False, rotation=90)
    make_clip(tmp_path / "cut.mp4", frames=12, fps=12, audio=False, cut_at=6)
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - name: silent
    input: silent.mp4
    style: styles/starry.jpg
    output: out/silent.mp4
    video: {start: 0.5, end: 1.5}
  - {name: phone, input: phone.mp4, style: styles/starry.jpg, output: out/phone.mp4}
  - {name: cut, input: cut.mp4, style: styles/starry.jpg, output: out/cut.mp4}
""")
    res = nst_here("run", m, *FAST, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    silent = _probe(tmp_path / "out" / "silent.mp4")
    assert silent["frames"] == 12 and not silent["audio"]
    phone = _probe(tmp_path / "out" / "phone.mp4")
    assert phone["size"] == (48, 64)  # portrait, as displayed
    corner = phone["first"][:6, :6].reshape(-1, 3).mean(axis=0)  # the red marker is top-left when upright
    assert corner[0] > corner[2] + 40, corner
    metrics = _ledger_metrics(tmp_path / "out" / ".nst-batch" / "cut.mp4")
    assert metrics["cuts"] == [7]  # 1-based frame index of the first frame after the cut


def test_bad_videos_fail_alone(tmp_path: Path, style_image: Path) -> None:
    make_not_video(tmp_path / "text.mp4")
    make_truncated(tmp_path / "truncated.mp4")
    make_zero_frames(tmp_path / "empty.avi")
    make_clip(tmp_path / "good.mp4", frames=4, fps=12, audio=False)
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: text, input: text.mp4, style: styles/starry.jpg, output: out/text.mp4}
  - {name: truncated, input: truncated.mp4, style: styles/starry.jpg, output: out/truncated.mp4}
  - {name: empty, input: empty.avi, style: styles/starry.jpg, output: out/empty.mp4}
  - {name: good, input: good.mp4, style: styles/starry.jpg, output: out/good.mp4}
""")
    res = nst_here("run", m, *FAST, cwd=tmp_path)
    assert res.returncode == 1
    text = res.stdout
    assert "text.mp4" in text and "truncated" in text and "empty.avi" in text
    assert "3 failed" in text and "Traceback" not in text + res.stderr
    assert (tmp_path / "out" / "good.mp4").exists()
    for name in ("text", "truncated", "empty"):
        assert not (tmp_path / "out" / f"{name}.mp4").exists()
