"""Files, names and disks that a careful user's worst night holds (issue 23): each fails alone with one line
naming the file, or is read as every viewer reads it; never a traceback, and the summary and report are
always written. Commands run in this process (`nst_here`); settings are tiny (these tests are about files)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image
from cli_helpers import nst_here
from conftest import sample_photo, write_manifest, write_rgb
from videogen import make_clip

from nst_batch.media.atomic import atomic_path, remove_stale_partials
from nst_batch.errors import MediaError
from nst_batch.media.images import read_image, read_thumbnail  # and so Pillow opens HEIC (pillow-heif's opener)

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


# --- item 3 (and issue 24 item 2): decoder errors that are not ours; one bad file in a folder --------------


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height RGB pixels, and no pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def _foreign_error_mutant(path: Path, fmt: str) -> Path | None:
    """A damaged HEIC/AVIF on which Pillow's plugin raises an error of its own (EOFError, RuntimeError: not
    OSError, ValueError or SyntaxError, the errors of a corrupt file Pillow documents): 8 bytes zeroed at the
    first offset that does it. None where the installed decoders raise no such error for any offset."""
    buffer = io.BytesIO()
    Image.fromarray(sample_photo("astronaut.jpg", 48)).save(buffer, format=fmt)
    data = buffer.getvalue()
    for at in range(0, len(data), 11):
        damaged = data[:at] + b"\0" * 8 + data[at + 8:]
        try:
            with Image.open(io.BytesIO(damaged)) as im:
                im.load()
        except (OSError, ValueError, SyntaxError):
            continue
        except Exception:  # noqa: BLE001 - the kind this test is about
            path.write_bytes(damaged)
            return path
    return None


def test_one_unreadable_file_in_a_folder_is_a_warning_and_fails_alone(root: Path) -> None:
    photos = root / "photos"
    write_rgb(photos / "good.png", sample_photo("chelsea.jpg", 40))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    _png_header_only(photos / "huge.png", 40000, 40000)  # past OpenCV's own limit (cv2.error before this fix)
    decode = "cannot decode the image (corrupt or not an image)"
    bad = {"broken.jpg": decode, "huge.png": "the image claims 40000x40000 pixels (1600 Mpx), more than nst-batch"}
    for name, fmt in (("bad.avif", "AVIF"), ("bad.heic", "HEIF")):
        if _foreign_error_mutant(photos / name, fmt) is not None:
            bad[name] = f"{decode}: "  # then the decoder's own error: its type and first line
    _one_job(root, "photos")
    for command, args in (("validate", FAST), ("plan", SMALL)):
        res = nst_here(command, "m.yaml", *args, cwd=root)
        said = _said(res)
        assert res.returncode == 0, said
        _no_traceback(res)
        assert f"warning: job 'j': {len(bad)} of {len(bad) + 1} inputs cannot be read" in said, said
        for name, why in bad.items():
            assert f"warning: job 'j': {photos / name}: {why}" in said, (name, said)
    res = nst_here("run", "m.yaml", *FAST, cwd=root)
    said = _said(res)
    assert res.returncode == 1, said
    _no_traceback(res)
    assert (root / "out" / "good.png").exists() and f"1 done, 0 skipped, {len(bad)} failed" in said
    for name, why in bad.items():
        assert f"{photos / name}: {why}" in said, (name, said)


def test_a_folder_where_nothing_can_be_read_is_still_an_error(root: Path) -> None:
    (root / "photos").mkdir()
    (root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    _one_job(root, "photos")
    res = nst_here("validate", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 2 and "broken.jpg: cannot decode the image" in _said(res), _said(res)


# --- item 6: a JPEG missing its last bytes -------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 2])
def test_a_jpeg_missing_its_end_marker_is_read_as_viewers_read_it(root: Path, cut: int) -> None:
    whole = write_rgb(root / "whole.jpg", sample_photo("astronaut.jpg", 48))
    (root / "photos").mkdir()
    cut_short = root / "photos" / "cut.jpg"
    cut_short.write_bytes(whole.read_bytes()[:-cut])
    assert cv2.imdecode(np.fromfile(cut_short, dtype=np.uint8), cv2.IMREAD_COLOR) is None  # what refused it
    assert np.array_equal(read_image(cut_short), read_image(whole))  # nothing of the picture was lost
    _one_job(root, "photos")
    res = nst_here("run", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 0, _said(res)
    assert (root / "out" / "cut.png").exists()


# --- item 5: long but legal file names -----------------------------------------------------------------


def test_a_long_but_legal_name_is_written(root: Path) -> None:
    """A 249-byte name (é is two bytes): its temporary name would pass 255 bytes with the host, pid and random
    tag; it is shortened (the stem's start and a hash) and the output gets its own, final, name."""
    stem = "é" * 60 + "x" * (249 - 120 - 4)
    photos = root / "photos"
    write_rgb(photos / f"{stem}.jpg", sample_photo("chelsea.jpg", 40))
    assert len(os.fsencode(f"{stem}.png")) == 249
    _one_job(root, "photos")
    res = nst_here("run", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 0, _said(res)
    assert (root / "out" / f"{stem}.png").exists()
    assert not list((root / "out").glob("*.partial-*"))


def test_a_killed_writers_long_temporary_file_is_removed(tmp_path: Path) -> None:
    final = tmp_path / ("y" * 251 + ".png")  # 255 bytes: the longest legal name
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        assert len(os.fsencode(tmp.name)) <= 255 and tmp.suffix == ".png"
        tmp.write_bytes(b"half")
        left = tmp.with_name(tmp.name.replace(".partial-", ".partial-otherhost-", 1))  # as a killed writer's
        left.write_bytes(b"half")
        raise RuntimeError("killed")
    assert remove_stale_partials([final]) == [left] and list(tmp_path.iterdir()) == []


# --- issue 24 item 2: `exclude:` ----------------------------------------------------------------------


def test_exclude_leaves_files_out_of_a_folder(root: Path) -> None:
    photos = root / "photos"
    for name in ("keep.png", "raw/a.png", "raw/deep/b.png", "sub/c.tif", "sub/d.png"):
        write_rgb(photos / name, sample_photo("chelsea.jpg", 32))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    _one_job(root, "photos", exclude="[raw, '*.tif', broken.jpg]")
    res = nst_here("validate", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 0 and "cannot be read" not in _said(res), _said(res)
    res = nst_here("run", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 0, _said(res)
    made = sorted(p.relative_to(root / "out").as_posix() for p in (root / "out").rglob("*.png"))
    assert made == ["keep.png", "sub/d.png"]


@pytest.mark.parametrize(("value", "why"), [
    ("7", "must be a list of globs relative to the input folder"),
    ("[raw, 3]", "must be a list of globs relative to the input folder"),
    ("{a: b}", "must be a list of globs relative to the input folder"),
])
def test_exclude_of_the_wrong_type_is_a_manifest_error(root: Path, value: str, why: str) -> None:
    write_rgb(root / "photos" / "a.png", sample_photo("chelsea.jpg", 32))
    _one_job(root, "photos", exclude=value)
    res = nst_here("validate", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 2, _said(res)
    assert f"m.yaml:7: jobs[0].exclude: {why}" in _said(res), _said(res)
    _no_traceback(res)


def test_exclude_on_a_file_input_is_a_manifest_error(root: Path) -> None:
    write_rgb(root / "a.png", sample_photo("chelsea.jpg", 32))
    _one_job(root, "a.png", exclude="['*.tif']")
    res = nst_here("validate", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 2 and "jobs[0].exclude: leaves files of a folder out, but the input" in _said(res)


# --- item 7: links --------------------------------------------------------------------------------------


def test_linked_folders_are_read_and_broken_links_counted(root: Path) -> None:
    """A folder linked into the input is read as the user who linked it expects; a link back up (a loop) and
    a link that leads nowhere are counted as not read, with what they are; nothing is skipped in silence."""
    elsewhere = root / "elsewhere"
    write_rgb(elsewhere / "far.png", sample_photo("coffee.jpg", 32))
    photos = root / "photos"
    write_rgb(photos / "near.png", sample_photo("chelsea.jpg", 32))
    (photos / "linked").symlink_to(elsewhere, target_is_directory=True)
    (photos / "loop").symlink_to(photos, target_is_directory=True)
    (photos / "gone.png").symlink_to(root / "nowhere.png")
    _one_job(root, "photos")
    res = nst_here("plan", "m.yaml", *SMALL, cwd=root)
    said = _said(res)
    assert res.returncode == 0, said
    assert "ignored: j: 1 (broken link), 1 (link to a folder already read)" in said, said
    res = nst_here("run", "m.yaml", *FAST, cwd=root)
    said = _said(res)
    assert res.returncode == 0, said
    assert (root / "out" / "near.png").exists() and (root / "out" / "linked" / "far.png").exists()
    assert "1 (broken link)" in said


# --- item 4: a file name that is not UTF-8 ----------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_made_and_reported(root: Path) -> None:
    photos = root / "photos"
    write_rgb(photos / "plain.png", sample_photo("coffee.jpg", 32))
    name = os.fsdecode(b"photo_\xe9t\xe9.png")  # Latin-1 bytes on disk, as an old camera or zip leaves them
    # (cv2.imwrite and cv2.VideoCapture crash the process on such a name: written here through Python)
    ok, png = cv2.imencode(".png", cv2.cvtColor(sample_photo("chelsea.jpg", 32), cv2.COLOR_RGB2BGR))
    (photos / name).write_bytes(png.tobytes())
    clip = os.fsdecode(b"cl\xe9.mp4")
    make_clip(photos / "clip.mp4", frames=3, fps=12, size=(32, 24), audio=False).rename(photos / clip)
    _one_job(root, "photos")
    for _ in range(2):  # and again, when everything is skipped
        res = nst_here("run", "m.yaml", *FAST, cwd=root)
        assert res.returncode == 0, _said(res)
        _no_traceback(res)
        assert (root / "out" / name).exists() and (root / "out" / clip).exists()
        page = (root / "out" / "report.html").read_text(encoding="utf-8")  # valid UTF-8
        assert "photo_\ufffdt\ufffd.png" in page  # shown with the bytes replaced
        assert "href='photo_%E9t%E9.png'" in page  # the link leads to the file's real name


# --- item 8: a stop during a segmented video's assembly ----------------------------------------------------


def test_a_stop_during_the_seams_reoptimisation_takes_one_iteration(root: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM's flag, raised as the first seam frame is made again, stops it within one iteration (it ran all
    of them, every seam frame, before); its iterations are shown; the resume makes the same video."""
    import nst_batch.video.assemble as assemble_module
    from nst_batch.events import Event, UnitProgress
    from nst_batch.executors.local import LocalExecutor
    from nst_batch.manifest import load_manifest, parse_overrides
    from nst_batch.runner import run

    make_clip(root / "clip.mp4", frames=8, fps=12, size=(32, 24), audio=False)
    _one_job(root, "clip.mp4", "out/clip.mp4")
    sets = ["size=32", "weights=random", "device=cpu", "style_layers=[conv1_1]", "content_layers=[conv1_1]",
            "video.first_iterations=3", "video.iterations=20", "video.segment_frames=4", "video.overlap=2",
            "video.seam=reoptimize", "tolerance=0"]
    jobs = load_manifest(root / "m.yaml", parse_overrides(sets)).jobs
    stop = {"now": False, "at": -1}
    events: list[Event] = []
    real = assemble_module.stylize_seam_frame

    def seam_frame(*args: object, **kwargs: object) -> object:
        stop.update(now=True, at=len(events))  # as SIGTERM's handler does
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(assemble_module, "stylize_seam_frame", seam_frame)
    summary = run(jobs, executor=LocalExecutor(), emit=events.append, should_stop=lambda: bool(stop["now"]))
    assert stop["at"] >= 0 and summary.interrupted and summary.jobs[0].done == 0
    after = [e for e in events[int(stop["at"]):] if isinstance(e, UnitProgress)]
    assert all(e.iteration <= 1 for e in after), after  # at most the iteration the flag was raised in
    assert not (root / "out" / "clip.mp4").exists()

    monkeypatch.undo()
    resumed = len(events)
    summary = run(jobs, executor=LocalExecutor(), emit=events.append, should_stop=lambda: False)
    assert summary.jobs[0].done == 1
    # The segments' frames were all saved: what this run shows is the seam frames' re-optimisation.
    shown = {e.frame for e in events[resumed:] if isinstance(e, UnitProgress) and e.iterations == 20}
    assert shown == {3, 4}, shown


# --- item 9: decompression bombs ---------------------------------------------------------------------------


def _one_bit_png(path: Path, width: int, height: int) -> Path:
    """A real 1-bit PNG of width x height black pixels: a few hundred KB that decode to gigabytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    squeeze = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the row's bits
    data = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_before_it_is_decoded(root: Path) -> None:
    photos = root / "photos"
    write_rgb(photos / "good.png", sample_photo("chelsea.jpg", 32))
    bomb = _one_bit_png(photos / "bomb.png", 40000, 30000)
    assert bomb.stat().st_size < 1_000_000  # 1200 Mpx in well under a megabyte
    with pytest.raises(MediaError, match=r"bomb\.png: the image claims 40000x30000 pixels \(1200 Mpx\)"):
        read_image(bomb)
    _one_job(root, "photos")
    res = nst_here("run", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 1 and "1 done, 0 skipped, 1 failed" in _said(res), _said(res)
    assert f"{bomb}: the image claims 40000x30000 pixels" in _said(res)
    _no_traceback(res)


def test_an_image_larger_than_the_free_memory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nst_batch.media.images as images

    big = write_rgb(tmp_path / "big.png", np.zeros((1000, 1000, 3), np.uint8))
    monkeypatch.setattr(images, "available_memory", lambda: 10 * 1024 ** 2)  # 10 MiB free
    with pytest.raises(MediaError, match=r"big\.png: the image claims 1000x1000 pixels; decoding it takes about "
                                         r"0\.0 GiB, more than the 0\.0 GiB of memory free"):
        read_image(big)
    monkeypatch.setattr(images, "available_memory", lambda: None)  # unknown: decoded
    assert read_image(big).shape == (1000, 1000, 3)


def test_the_report_decodes_no_input_again_and_a_big_jpeg_at_reduced_size(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nst_batch.media.images as images

    photos = root / "photos"
    big = cv2.resize(sample_photo("astronaut.jpg", 200), (2000, 2000), interpolation=cv2.INTER_CUBIC)
    write_rgb(photos / "big.jpg", big)
    _one_job(root, "photos")
    flags: list[int] = []
    real = cv2.imdecode

    def imdecode(data: np.ndarray, flag: int) -> object:
        flags.append(flag)
        return real(data, flag)

    monkeypatch.setattr(images.cv2, "imdecode", imdecode)
    res = nst_here("run", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 0, _said(res)
    assert cv2.IMREAD_REDUCED_COLOR_4 in flags  # the report's thumbnail of the 2000 px input: 500 px decoded
    thumbs = sorted((root / "out" / "report_files").iterdir())
    flags.clear()
    res = nst_here("report", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 0, _said(res)
    assert flags == [] and sorted((root / "out" / "report_files").iterdir()) == thumbs  # all reused
    reduced = read_thumbnail(photos / "big.jpg", 240)
    whole = cv2.resize(read_image(photos / "big.jpg"), reduced.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert reduced.shape[:2] == (240, 240) and np.abs(reduced.astype(int) - whole).mean() < 2


# --- item 10: smaller ones --------------------------------------------------------------------------------


def test_a_read_only_output_whose_outputs_are_all_done_exits_0(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As `status` says: all done. (Root writes through permissions, so the read-only folder is injected.)"""
    from nst_batch.errors import NstBatchError
    from nst_batch.ledger import RunLock

    write_rgb(root / "photos" / "a.png", sample_photo("chelsea.jpg", 32))
    _one_job(root, "photos")
    assert nst_here("run", "m.yaml", *FAST, cwd=root).returncode == 0

    def read_only(self: RunLock) -> None:
        raise NstBatchError(f"{self.path.parent}: output location is not writable: Read-only file system")

    monkeypatch.setattr(RunLock, "acquire", read_only)
    res = nst_here("run", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 0 and "0 done, 1 skipped, 0 failed" in _said(res), _said(res)
    status = nst_here("status", "m.yaml", *FAST, cwd=root)
    row = next(line for line in status.stdout.splitlines() if line.startswith("│ j "))
    cells = [c.strip() for c in row.split("│")[1:-1]]  # job, done, ..., pending, failed, output
    assert status.returncode == 0 and cells[1] == "1" and cells[-3:-1] == ["0", "0"], status.stdout
    write_rgb(root / "photos" / "b.png", sample_photo("coffee.jpg", 32))  # now there is work: it cannot be written
    res = nst_here("run", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 1 and "output location is not writable" in _said(res), _said(res)


def test_the_report_of_outputs_on_different_trees_lands_in_the_first_jobs_folder(root: Path) -> None:
    write_rgb(root / "proj" / "photos" / "a.png", sample_photo("chelsea.jpg", 32))
    write_rgb(root / "proj" / "s.jpg", sample_photo("coffee.jpg", 32))
    write_manifest(root / "proj" / "m.yaml", "version: 1\njobs:\n"
                   f"  - {{name: one, input: photos, style: s.jpg, output: {root / 'disk1' / 'out'}}}\n"
                   f"  - {{name: two, input: photos, style: s.jpg, output: {root / 'disk2' / 'out'}}}\n")
    res = nst_here("run", "m.yaml", *FAST, cwd=root / "proj")
    assert res.returncode == 0, _said(res)
    assert (root / "disk1" / "out" / "report.html").exists() and not (root / "report.html").exists()
    assert f"report: {root / 'disk1' / 'out' / 'report.html'}" in _said(res)


def test_opencvs_raw_warnings_stay_out_of_the_log(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    png = cv2.imencode(".png", np.zeros((50, 50, 3), np.uint8))[1].tobytes()
    (tmp_path / "cut.png").write_bytes(png[:-30])  # OpenCV warns "PNG input buffer is incomplete"
    with pytest.raises(MediaError, match=r"cut\.png: cannot decode the image"):
        read_image(tmp_path / "cut.png")
    assert "WARN" not in capfd.readouterr().err


@pytest.mark.parametrize(("name", "kind"), [("anim.webp", "WebP"), ("anim.png", "PNG (APNG)")])
def test_an_animation_says_it_became_its_first_frame(root: Path, name: str, kind: str) -> None:
    frames = [Image.fromarray(sample_photo(photo, 32)).resize((32, 24))
              for photo in ("chelsea.jpg", "coffee.jpg", "astronaut.jpg")]
    (root / "photos").mkdir()
    frames[0].save(root / "photos" / name, save_all=True, append_images=frames[1:], duration=100, loop=0)
    _one_job(root, "photos")
    res = nst_here("run", "m.yaml", *FAST, cwd=root)
    said = _said(res)
    assert res.returncode == 0, said
    assert f"an animated {kind} of 3 frames: only its first frame is stylized" in said, said
    ledger = (root / "out" / ".nst-batch" / "ledger.jsonl").read_text()
    assert f"an animated {kind} of 3 frames" in ledger


def test_a_big_jpeg_is_decoded_at_reduced_size_for_a_small_working_size(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run, validate and plan decode a JPEG eight times their working size at 1/4 (never below twice the
    working size); `output_size: original`, which writes every pixel, decodes it whole."""
    import nst_batch.media.images as images

    photos = root / "photos"
    big = write_rgb(photos / "big.jpg", cv2.resize(sample_photo("astronaut.jpg", 64), (256, 256)))  # 8 x 32
    flags: list[int] = []
    real = cv2.imdecode

    def imdecode(data: np.ndarray, flag: int) -> object:
        if data.size == big.stat().st_size:  # big.jpg's decodes only (not the style's)
            flags.append(flag)
        return real(data, flag)

    monkeypatch.setattr(images.cv2, "imdecode", imdecode)
    for output_size, expected in (("working", cv2.IMREAD_REDUCED_COLOR_4), ("original", cv2.IMREAD_COLOR)):
        _one_job(root, "photos", f"out/{output_size}", output_size=output_size)
        for command, args in (("validate", FAST), ("plan", SMALL), ("run", FAST)):
            flags.clear()
            res = nst_here(command, "m.yaml", *args, cwd=root)
            assert res.returncode == 0, _said(res)
            # (after the run, the report's thumbnail: 240 px from 256 px, a whole decode, once)
            assert flags and flags[0] in (expected, expected | cv2.IMREAD_ANYDEPTH), (command, flags)
    assert cv2.imread(str(root / "out" / "original" / "big.png")).shape[:2] == (256, 256)


def test_the_report_decodes_no_video_again(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nst_batch.report as report

    make_clip(root / "clip.mp4", frames=4, fps=12, size=(32, 24), audio=False)
    _one_job(root, "clip.mp4", "out/clip.mp4")
    assert nst_here("run", "m.yaml", *FAST, cwd=root).returncode == 0
    strips = sorted((root / "out" / "report_files").iterdir())
    opened: list[Path] = []
    real = report.read_frames
    monkeypatch.setattr(report, "read_frames", lambda path, **kw: opened.append(path) or real(path, **kw))
    res = nst_here("report", "m.yaml", *FAST, cwd=root)
    assert res.returncode == 0, _said(res)
    assert opened == [] and sorted((root / "out" / "report_files").iterdir()) == strips
    page = (root / "out" / "report.html").read_text()
    assert all(p.name in page for p in strips if "-in-" in p.name or "-out-" in p.name)
