"""Photo collections as phones and cameras leave them (issue 13): inputs that would share an output,
files that are not read (counted, never silent), HEIC/AVIF, EXIF orientation, transparency."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from conftest import sample_photo, write_manifest, write_rgb
from nst_batch.errors import NstBatchError
from nst_batch.executors.local import LocalExecutor
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.media.images import read_image, read_image_alpha, write_image
from nst_batch.plan import PlanError, plan_job
from nst_batch.progress import print_summary
from nst_batch.report import write_report
from nst_batch.runner import run
from nst_batch.settings import Job

FAST = ["size=48", "iterations=2", "weights=random", "device=cpu"]
# EXIF orientation -> the Pillow transpose that turns the stored pixels upright
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def _job(tmp_path: Path, folder: str, *overrides: str) -> Job:
    m = write_manifest(tmp_path / "p.yaml", f"""
version: 1
jobs:
  - {{name: folder, input: {folder}, style: styles/starry.jpg, output: out/folder}}
""")
    return load_manifest(m, parse_overrides([*FAST, *overrides])).jobs[0]


def _save(path: Path, pixels: np.ndarray, orientation: int = 1, **kw: object) -> Path:
    """Write with Pillow (HEIC through pillow-heif), EXIF orientation tag set."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), **kw)
    return path


def _rgba(h: int = 40, w: int = 56) -> np.ndarray:
    rgb = cv2.resize(sample_photo("chelsea.jpg", max(h, w)), (w, h), interpolation=cv2.INTER_AREA)
    alpha = np.zeros((h, w), np.uint8)
    alpha[:, w // 2:] = 255  # right half opaque, a soft ramp on the left
    alpha[:, :w // 2] = np.linspace(0, 200, w // 2, dtype=np.uint8)
    return np.dstack([rgb, alpha])


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


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif", ".jpg", ".heic", ".avif"])
def test_exif_orientation_is_honoured(tmp_path: Path, suffix: str) -> None:
    stored = cv2.resize(sample_photo("astronaut.jpg", 48), (48, 32), interpolation=cv2.INTER_AREA)
    lossy = suffix in (".jpg", ".heic", ".avif")
    for orientation in range(1, 9):
        path = _save(tmp_path / f"o{orientation}{suffix}", stored, orientation,
                     **({"quality": 95} if lossy else {"lossless": True} if suffix == ".webp" else {}))
        rgb, alpha = read_image_alpha(path)
        upright = np.asarray(Image.fromarray(stored).transpose(UPRIGHT[orientation])) if orientation > 1 else stored
        assert rgb.shape == upright.shape, (suffix, orientation)
        assert np.abs(rgb.astype(int) - upright).mean() < (6 if lossy else 0.5), (suffix, orientation)
        assert alpha is None


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif", ".heic"])
def test_alpha_is_read_upright(tmp_path: Path, suffix: str) -> None:
    rgba = _rgba()
    path = _save(tmp_path / f"a{suffix}", rgba, 6, **({"lossless": True, "exact": True} if suffix == ".webp"
                                                      else {"quality": 100} if suffix == ".heic" else {}))
    rgb, alpha = read_image_alpha(path)
    upright = np.asarray(Image.fromarray(rgba).transpose(UPRIGHT[6]))
    assert alpha is not None and alpha.shape == rgb.shape[:2] == upright.shape[:2]
    assert np.abs(alpha.astype(int) - upright[..., 3]).max() <= (8 if suffix == ".heic" else 0)
    seen = upright[..., 3] > 128  # where the colour counts (TIFF's come back from premultiplied 8-bit)
    assert np.abs(rgb.astype(int) - upright[..., :3])[seen].mean() < (6 if suffix == ".heic" else 1)


def test_alpha_written_resized_and_16_bit_read(tmp_path: Path) -> None:
    rgba = _rgba()
    write_image(tmp_path / "o.png", rgba[::2, ::2, :3], alpha=rgba[..., 3])
    out = cv2.imread(str(tmp_path / "o.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (20, 28, 4)
    expected = cv2.resize(rgba[..., 3], (28, 20), interpolation=cv2.INTER_AREA)
    assert np.abs(out[..., 3].astype(int) - expected).max() <= 1
    write_image(tmp_path / "o.jpg", rgba[..., :3], alpha=rgba[..., 3])  # jpg has no alpha: dropped
    assert cv2.imread(str(tmp_path / "o.jpg"), cv2.IMREAD_UNCHANGED).shape == (40, 56, 3)

    deep = rgba.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "deep.png"), cv2.cvtColor(deep, cv2.COLOR_RGBA2BGRA))
    rgb, alpha = read_image_alpha(tmp_path / "deep.png")  # the depth kept (tests/test_photo_formats.py)
    assert rgb.dtype == np.uint16 and np.array_equal(rgb, deep[..., :3]) and np.array_equal(alpha, deep[..., 3])
    assert np.array_equal(read_image(tmp_path / "deep.png"), rgba[..., :3])  # style images: 8 bits


def test_heic_output_name_is_a_manifest_error(tmp_path: Path, style_image: Path) -> None:
    write_rgb(tmp_path / "one.jpg", sample_photo("astronaut.jpg", 32))
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: one, input: one.jpg, style: styles/starry.jpg, output: out/one.heic}
""")
    with pytest.raises(NstBatchError, match=r"\.heic is read, not written: name the output one\.png"):
        load_manifest(m, parse_overrides(FAST))


@pytest.mark.parametrize("batch", ["1", "2"])
def test_a_phone_folder_end_to_end(tmp_path: Path, style_image: Path, batch: str) -> None:
    """Same-stem pair, an RGBA PNG, a turned HEIC and AVIF, files not read: every output made, alpha
    kept, the rest named in the summary and the report."""
    folder = tmp_path / "phone"
    pic = sample_photo("astronaut.jpg", 48)
    write_rgb(folder / "photo.png", pic)
    write_rgb(folder / "photo.tif", pic[:, ::-1])
    rgba = _rgba()
    _save(folder / "clear.png", rgba)
    landscape = cv2.resize(sample_photo("coffee.jpg", 48), (48, 32), interpolation=cv2.INTER_AREA)
    _save(folder / "IMG_0001.HEIC", landscape, 6, quality=90)  # a phone held upright
    _save(folder / "IMG_0002.avif", landscape, 8, quality=90)
    for name in ("live.gif", "notes.txt", ".DS_Store"):
        (folder / name).write_bytes(b"x")
    job = _job(tmp_path, "phone", f"batch_size={batch}")
    summary = run([job], executor=LocalExecutor(), emit=lambda e: None, should_stop=lambda: False)
    assert summary.failed == 0 and summary.jobs[0].done == 5

    out = tmp_path / "out" / "folder"
    assert sorted(p.name for p in out.glob("*.png")) == ["IMG_0001.png", "IMG_0002.png", "clear.png",
                                                       "photo.png.png", "photo.tif.png"]
    assert cv2.imread(str(out / "IMG_0001.png")).shape[:2] == (48, 32)  # turned upright: portrait
    assert cv2.imread(str(out / "IMG_0002.png")).shape[:2] == (48, 32)
    clear = cv2.imread(str(out / "clear.png"), cv2.IMREAD_UNCHANGED)
    assert clear.shape == (34, 48, 4)  # working size, alpha carried and resized with it
    expected = cv2.resize(rgba[..., 3], (48, 34), interpolation=cv2.INTER_AREA)
    assert np.abs(clear[..., 3].astype(int) - expected).max() <= 1
    assert cv2.imread(str(out / "photo.png.png"), cv2.IMREAD_UNCHANGED).shape == (48, 48, 3)  # opaque stays RGB

    buf = io.StringIO()
    print_summary(Console(file=buf, width=200), summary)
    assert "ignored: folder: 1 .gif, 1 .txt (not images or videos nst-batch reads)" in buf.getvalue()
    page = write_report([job]).read_text()
    assert "ignored: 1 .gif, 1 .txt" in page


def test_plan_command_names_files_not_read(tmp_path: Path, style_image: Path) -> None:
    from cli_helpers import nst

    write_rgb(tmp_path / "in" / "one.jpg", sample_photo("astronaut.jpg", 32))
    (tmp_path / "in" / "IMG_0001.dng").write_bytes(b"raw")
    _job(tmp_path, "in")  # writes the manifest
    res = nst("plan", tmp_path / "p.yaml", "--set", "size=32", "--set", "iterations=2", "--device", "cpu",
              cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ignored: folder: 1 .dng (not images or videos nst-batch reads)" in res.stdout
