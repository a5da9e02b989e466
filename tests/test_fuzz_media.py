"""Fuzz: damaged images and clips (byte flips, truncations, zeroed and swapped ranges of small real files)
through the decoders, `validate` and `run` (issue 23).

The property: a damaged file is read, or refused with nst-batch's own one-line error that names it; never
another exception (a traceback), never a crash. Through the commands, one folder of mutants beside a good
photo: `validate` and `run` never show a traceback, `validate` exits 0 (a damaged file of a folder is a
warning), `run` exits 0 or 1 and each failure's reason names its file.

Seeded: the same cases every run. More: `NST_BATCH_MEDIA_FUZZ=2000 python -m pytest tests/test_fuzz_media.py`
(decoder cases; the commands get a tenth of them), another seed with `NST_BATCH_MEDIA_FUZZ_SEED=7`.
"""

from __future__ import annotations

import io
import os
import random
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from PIL import Image
from cli_helpers import nst_here
from conftest import sample_photo, write_manifest, write_rgb
from videogen import make_clip

from nst_batch.errors import MediaError
from nst_batch.media.images import read_image  # and so Pillow opens HEIC (pillow-heif's opener)
from nst_batch.media.video import probe_video, read_frames

CASES = int(os.environ.get("NST_BATCH_MEDIA_FUZZ", "600"))  # decoder cases; the commands run CASES // 10
SEED = int(os.environ.get("NST_BATCH_MEDIA_FUZZ_SEED", "0"))
FAST = ("--weights", "random", "--device", "cpu", "--set", "size=16", "--set", "iterations=1",
        "--set", "style_layers=[conv1_1]", "--set", "content_layers=[conv1_1]",
        "--set", "video.first_iterations=1", "--set", "video.iterations=1")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Small real files of every kind read: suffix -> bytes."""
    folder = tmp_path_factory.mktemp("seeds")
    rgb = sample_photo("astronaut.jpg", 32)
    found: dict[str, bytes] = {}
    for suffix in (".jpg", ".png", ".webp", ".tif", ".bmp"):
        ok, data = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        found[suffix] = data.tobytes()
    for suffix, fmt in ((".heic", "HEIF"), (".avif", "AVIF")):
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format=fmt)
        found[suffix] = buffer.getvalue()
    found[".mp4"] = make_clip(folder / "c.mp4", frames=4, fps=12, size=(32, 24), audio=True).read_bytes()
    found[".mkv"] = _remux(folder / "c.mp4", folder / "c.mkv")
    return found


def _remux(src: Path, dst: Path) -> bytes:
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return dst.read_bytes()


def _flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(len(data))]


def _zero(data: bytes, rng: random.Random) -> bytes:
    at, n = rng.randrange(len(data)), rng.randint(1, 64)
    return data[:at] + bytes(min(n, len(data) - at)) + data[at + n:]


def _swap(data: bytes, rng: random.Random) -> bytes:
    n = rng.randint(4, max(4, len(data) // 8))
    a, b = sorted(rng.randrange(len(data) - n) for _ in range(2))
    if b - a < n:
        return data
    return data[:a] + data[b:b + n] + data[a + n:b] + data[a:a + n] + data[b + n:]


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip": _flip, "truncate": _truncate, "zero": _zero, "swap": _swap}


def _mutants(seeds: dict[str, bytes], n: int, seed: int) -> list[tuple[str, bytes]]:
    """n (name, bytes) mutants, every kind and mutation in turn; the name says how each was made."""
    rng = random.Random(seed)
    kinds, ways = sorted(seeds), sorted(MUTATIONS)
    out = []
    for i in range(n):
        suffix, way = kinds[i % len(kinds)], ways[(i // len(kinds)) % len(ways)]
        out.append((f"m{i:04d}-{way}{suffix}", MUTATIONS[way](seeds[suffix], rng)))
    return out


def _read(path: Path) -> None:
    if path.suffix in (".mp4", ".mkv"):
        probe_video(path)
        for _ in read_frames(path, size=16):
            pass
    else:
        read_image(path)


def test_damaged_files_are_read_or_refused_with_our_one_line(seeds: dict[str, bytes], tmp_path: Path) -> None:
    outcomes: dict[str, int] = {"read": 0, "refused": 0}
    for name, data in _mutants(seeds, CASES, SEED):
        path = tmp_path / name
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a library's raw warning would land in the log naming no file
                _read(path)
        except MediaError as exc:
            message = str(exc)
            assert str(path) in message and "\n" not in message, (name, message)
            outcomes["refused"] += 1
        else:
            outcomes["read"] += 1
        path.unlink()
    assert outcomes["refused"] > CASES // 10 and outcomes["read"] > 0, outcomes  # the mutants reach both sides


def test_a_folder_of_damaged_files_through_validate_and_run(seeds: dict[str, bytes], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write_rgb(photos / "good.png", sample_photo("chelsea.jpg", 24))
    write_rgb(tmp_path / "s.jpg", sample_photo("coffee.jpg", 24))
    mutants = _mutants(seeds, max(CASES // 10, len(seeds)), SEED + 1)
    for name, data in mutants:
        (photos / name).write_bytes(data)
    write_manifest(tmp_path / "m.yaml", "version: 1\njobs:\n  - {name: j, input: photos, style: s.jpg, output: out}\n")
    res = nst_here("validate", "m.yaml", *FAST, cwd=tmp_path)
    output = res.stdout + res.stderr
    assert res.returncode == 0 and "Traceback" not in output, output
    res = nst_here("run", "m.yaml", *FAST, cwd=tmp_path)
    output = res.stdout + res.stderr
    assert res.returncode in (0, 1) and "Traceback" not in output, output
    assert (tmp_path / "out" / "good.png").exists()
    failed = re.findall(r"^failed: j/(\S+): (.*)$", res.stdout, re.M)
    for key, reason in failed:  # each reason names the input it is about
        stem = key.rsplit(".", 1)[0]
        assert f"{photos}/{stem}" in reason, (key, reason)
