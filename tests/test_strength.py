"""`strength` (issue 21 item 3): a content distance to aim at instead of one style weight for every picture.

The search itself on known curves (engine/strength.py), the manifest's checks, and the setting end to end:
each picture's weight and probes in the ledger, the same weight for the same photo on a fresh run, one
weight for every frame of a clip (segments too), a changed strength redoing the outputs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from cli_helpers import nst_here
from conftest import sample_photo, write_manifest, write_rgb
from nst_batch.engine.strength import HIGHEST, LOWEST, search_weight
from videogen import make_clip

FAST = ["--weights", "random", "--device", "cpu", "--set", "size=40", "--set", "iterations=8",
        "--set", "tolerance=0", "--set", "video.first_iterations=6", "--set", "video.iterations=2"]


def _recorder(curve):
    calls: list[float] = []

    def distance(weight: float) -> float:
        calls.append(weight)
        return curve(weight)

    return distance, calls


def test_search_lands_on_a_log_linear_curve_in_three_probes() -> None:
    distance, calls = _recorder(lambda w: 0.1 + 0.25 * math.log(w))  # another slope than the prior's
    found = search_weight(distance, 0.6, 5.0)
    assert len(calls) == 3 and calls[0] == 5.0
    assert found.weight == pytest.approx(math.exp(2.0), rel=1e-6)  # 0.1 + 0.25 * 2 = 0.6
    assert [w for w, _ in found.probes] == calls


def test_search_on_a_saturating_curve_lands_near_the_target() -> None:
    curve = lambda w: w / (w + 10.0)  # noqa: E731 - 0.5 at w = 10
    found = search_weight(_recorder(curve)[0], 0.5, 2.0)
    assert curve(found.weight) == pytest.approx(0.5, abs=0.03)


def test_a_probe_on_the_target_ends_the_search() -> None:
    distance, calls = _recorder(lambda w: 0.5 + 0.2 * math.log(w / 5.0))
    found = search_weight(distance, 0.505, 5.0)
    assert calls == [5.0] and found.weight == 5.0


def test_weaker_and_stronger_targets_move_the_weight_each_way_and_stay_in_bounds() -> None:
    curve = lambda w: 0.2 + 0.2 * math.log(w)  # noqa: E731
    assert search_weight(curve, 0.3, 5.0).weight < 5.0 < search_weight(curve, 0.8, 5.0).weight
    flat = lambda w: 0.1  # noqa: E731 - a photo the style cannot move: the weight climbs, at most 10x a guess
    found = search_weight(flat, 0.5, 5.0)
    assert 5.0 < found.weight <= HIGHEST and all(LOWEST <= w <= HIGHEST for w, _ in found.probes)
    assert all(b / a <= 10.0 + 1e-9 for (a, _), (b, _) in zip(found.probes, found.probes[1:]))


@pytest.fixture()
def pics(tmp_path: Path, style_image: Path) -> Path:
    write_rgb(tmp_path / "pics" / "busy.png", sample_photo("coffee.jpg", 40))
    smooth = np.zeros((30, 40, 3), np.uint8)
    smooth[:] = np.linspace(60, 200, 40)[None, :, None].astype(np.uint8)  # a smooth sky
    write_rgb(tmp_path / "pics" / "smooth.png", smooth)
    write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                   "  - {name: pics, input: pics, style: styles/starry.jpg, output: out, strength: 0.3}\n")
    return tmp_path


def _records(ledger: Path) -> dict[str, dict]:
    out = {}
    for line in ledger.read_text().splitlines():
        rec = json.loads(line)
        out[rec["key"]] = rec
    return out


def test_each_picture_gets_its_own_weight_recorded_and_a_fresh_run_finds_the_same(pics: Path) -> None:
    r = nst_here("run", "p.yaml", *FAST, cwd=pics)
    assert r.returncode == 0, r.stderr
    recs = _records(pics / "out/.nst-batch/ledger.jsonl")
    assert set(recs) == {"busy.png", "smooth.png"}
    for rec in recs.values():
        m = rec["metrics"]
        assert 1 <= len(m["strength_probes"]) <= 3
        assert m["strength_probes"][0][0] == 5.0  # the search starts at style_weight
        assert LOWEST <= m["style_weight"] <= HIGHEST
    assert recs["busy.png"]["metrics"]["style_weight"] != recs["smooth.png"]["metrics"]["style_weight"]
    first = {k: (pics / "out" / k).read_bytes() for k in recs}

    # the same photos in a fresh output: the same weights, the same pixels (identical inputs, identical search)
    write_manifest(pics / "q.yaml", (pics / "p.yaml").read_text().replace("output: out", "output: again"))
    assert nst_here("run", "q.yaml", *FAST, cwd=pics).returncode == 0
    again = _records(pics / "again/.nst-batch/ledger.jsonl")
    assert {k: v["metrics"]["style_weight"] for k, v in again.items()} == {
        k: v["metrics"]["style_weight"] for k, v in recs.items()}
    assert {k: (pics / "again" / k).read_bytes() for k in again} == first

    # resumed: done under these settings, nothing made again; another strength redoes both
    r = nst_here("run", "p.yaml", *FAST, cwd=pics)
    assert r.returncode == 0 and "2 skipped" in r.stdout
    r = nst_here("run", "p.yaml", *FAST, "--set", "strength=0.6", cwd=pics)
    assert r.returncode == 0 and "2 done" in r.stdout, r.stdout


def test_a_stronger_strength_finds_a_larger_weight_on_the_same_photo(pics: Path) -> None:
    weights = {}
    for strength in (0.15, 0.6):
        out = f"out{strength}"
        write_manifest(pics / "q.yaml", (pics / "p.yaml").read_text().replace("output: out", f"output: {out}"))
        r = nst_here("run", "q.yaml", *FAST, "--set", f"strength={strength}", cwd=pics)
        assert r.returncode == 0, r.stderr
        weights[strength] = _records(pics / out / ".nst-batch/ledger.jsonl")["busy.png"]["metrics"]["style_weight"]
    assert weights[0.15] < weights[0.6]


def test_a_clip_has_one_weight_for_all_its_frames_and_segments(tmp_path: Path, style_image: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import nst_batch.video.frames as frames

    searched: list[tuple[int, ...]] = []
    real = frames.find_style_weight

    def counted(ctx, rgb, *args):  # type: ignore[no-untyped-def]
        searched.append(rgb.shape)
        return real(ctx, rgb, *args)

    monkeypatch.setattr(frames, "find_style_weight", counted)
    make_clip(tmp_path / "clip.mp4", frames=6, size=(48, 36))
    write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                   "  - {name: clip, input: clip.mp4, style: styles/starry.jpg, output: out/clip.mp4, strength: 0.3,\n"
                   "     video: {segment_frames: 3, overlap: 1}}\n")
    r = nst_here("run", "p.yaml", *FAST, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rec = _records(tmp_path / "out/.nst-batch/clip.mp4/ledger.jsonl")["clip.mp4"]
    m = rec["metrics"]
    assert m["segments"] == 2 and LOWEST <= m["style_weight"] <= HIGHEST and m["strength_probes"]
    assert len(searched) == 1  # found on the first frame once; the second segment and the seams read it
    cap = cv2.VideoCapture(str(tmp_path / "out/clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    cap.release()


@pytest.mark.parametrize(("line", "message"), [
    ("strength: 0", "strength: must be between 0"),
    ("strength: 2.5", "strength: must be between 0"),
    ("{strength: 0.5, batch_size: 2}", "cannot share a batch"),
    ("{strength: 0.5, style_weight: 0}", "strength needs content_weight and style_weight above 0"),
])
def test_bad_strength_is_a_manifest_error(tmp_path: Path, style_image: Path, line: str, message: str) -> None:
    write_rgb(tmp_path / "pics" / "a.png", sample_photo("coffee.jpg", 32))
    body = line if line.startswith("{") else "{" + line + "}"
    write_manifest(tmp_path / "p.yaml", "version: 1\ndefaults: " + body + "\njobs:\n"
                   "  - {name: pics, input: pics, style: styles/starry.jpg, output: out}\n")
    r = nst_here("run", "p.yaml", *FAST, cwd=tmp_path)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "p.yaml:" in r.stderr


def test_strength_needs_the_photo_as_its_start(tmp_path: Path, style_image: Path) -> None:
    write_rgb(tmp_path / "pics" / "a.png", sample_photo("coffee.jpg", 32))
    write_manifest(tmp_path / "p.yaml", "version: 1\ndefaults: {strength: 0.5, init: noise}\njobs:\n"
                   "  - {name: pics, input: pics, style: styles/starry.jpg, output: out}\n")
    r = nst_here("run", "p.yaml", *FAST, cwd=tmp_path)
    assert r.returncode == 2 and "it needs init: content" in r.stderr, r.stderr
