"""Keep what the user had (issue 13): 16-bit PNG/TIFF stay 16-bit (`bit_depth`), and embedded colour
profiles (Display P3 from phones) are converted to sRGB on reading; outputs say they are sRGB."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from conftest import sample_photo, write_manifest
from nst_batch.errors import MediaError, NstBatchError
from nst_batch.executors.local import LocalExecutor
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.media.colour import srgb_icc, to_srgb
from nst_batch.media.images import read_image, read_image_alpha
from nst_batch.runner import run

FAST = ["size=48", "iterations=2", "weights=random", "device=cpu"]
AS_READ = ["iterations=0", "scales=[1.0]"]  # no optimisation: the output is the working picture as read
# Display P3's colorants, adapted to D50 as ICC profiles store them (Apple's "Display P3" profile)
P3_COLORANTS = {b"rXYZ": (0.515121, 0.241196, -0.001053), b"gXYZ": (0.291977, 0.692245, 0.041885),
                b"bXYZ": (0.157104, 0.066574, 0.784073)}


def _p3_icc() -> bytes:
    """A Display P3 profile: LittleCMS's sRGB profile (same tone curve) with P3's colorants."""
    icc = bytearray(srgb_icc())
    for i in range(struct.unpack_from(">I", icc, 128)[0]):
        sig, offset, _ = struct.unpack_from(">4sII", icc, 132 + 12 * i)
        if sig in P3_COLORANTS:
            struct.pack_into(">3i", icc, offset + 8, *(round(v * 65536) for v in P3_COLORANTS[sig]))
    icc[84:100] = bytes(16)  # the profile ID (an MD5) no longer holds: zero means "not computed"
    return bytes(icc)


def _lcms_srgb(rgb8: np.ndarray, icc: bytes) -> np.ndarray:
    """LittleCMS's conversion to sRGB, the reference."""
    out = ImageCms.profileToProfile(Image.fromarray(rgb8), ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                    ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")),
                                    renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode="RGB")
    return np.asarray(out)


def _deep(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    """A 16-bit photo: values between the 8-bit levels, as a 16-bit scan has them."""
    rgb = cv2.resize(sample_photo("coffee.jpg", max(h, w)), (w, h), interpolation=cv2.INTER_AREA)
    fine = np.random.default_rng(seed).uniform(-120, 120, rgb.shape)
    return (rgb * 257.0 + fine).clip(0, 65535).round().astype(np.uint16)


def _write16(path: Path, rgb: np.ndarray, alpha: np.ndarray | None = None, icc: bytes | None = None) -> Path:
    """A 16-bit PNG/TIFF (OpenCV), with an ICC profile in a PNG's iCCP chunk if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if alpha is not None:
        pixels = np.dstack([pixels, alpha])
    ok, buf = cv2.imencode(path.suffix, pixels)
    assert ok
    data = buf.tobytes()
    if icc is not None:  # after IHDR: name, NUL, compression method 0, the zlib-compressed profile
        chunk = b"iCCP" + b"P3\0\0" + zlib.compress(icc)
        at = 8 + 25
        data = data[:at] + struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[at:]
    path.write_bytes(data)
    return path


def _run(tmp_path: Path, *overrides: str) -> Path:
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: photos, input: in, style: styles/starry.jpg, output: out}
""")
    jobs = load_manifest(m, parse_overrides([*FAST, *overrides])).jobs
    summary = run(list(jobs), executor=LocalExecutor(), emit=lambda e: None, should_stop=lambda: False)
    assert summary.failed == 0, summary
    return tmp_path / "out"


def _read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("batch", ["1", "2"])
def test_16_bit_png_and_tiff_stay_16_bit(tmp_path: Path, style_image: Path, batch: str) -> None:
    """bit_depth auto: 16-bit in, 16-bit out at the original size, alpha kept; 8-bit in stays 8-bit."""
    deep = _deep()
    alpha = np.tile(np.linspace(0, 65535, 56), (40, 1)).round().astype(np.uint16)  # a 16-bit ramp
    _write16(tmp_path / "in" / "photo.png", deep)
    _write16(tmp_path / "in" / "scan.tif", deep[:, ::-1])
    _write16(tmp_path / "in" / "clear.png", deep, alpha)
    cv2.imwrite(str(tmp_path / "in" / "plain.png"), (deep // 257).astype(np.uint8))
    out = _run(tmp_path, "output_size=original", f"batch_size={batch}")

    for name in ("photo.png", "scan.png", "clear.png"):
        pixels = _read(out / name)
        assert pixels.dtype == np.uint16 and pixels.shape[:2] == (40, 56), name
        # really 16 bits: quantized from the stylized float image, not 8-bit levels times 257
        assert (pixels[..., :3] % 257 != 0).mean() > 0.9, name
    assert _read(out / "photo.png").shape == (40, 56, 3)
    clear = _read(out / "clear.png")
    assert clear.shape == (40, 56, 4) and np.array_equal(clear[..., 3], alpha)  # alpha kept at 16 bits
    assert _read(out / "plain.png").dtype == np.uint8


def test_16_bits_go_through_unchanged(tmp_path: Path, style_image: Path) -> None:
    """With no optimisation the 16-bit picture comes out exactly as it went in (no 8-bit step on the way);
    preserve_colors and the resize back to the original size work from the 16-bit original."""
    deep = _deep(48, 36)
    _write16(tmp_path / "in" / "photo.png", deep)
    out = _run(tmp_path, *AS_READ, "size=original")
    assert np.array_equal(cv2.cvtColor(_read(out / "photo.png"), cv2.COLOR_BGR2RGB), deep)

    out = _run(tmp_path, *AS_READ, "size=24", "output_size=original", "preserve_colors=true")
    kept = cv2.cvtColor(_read(out / "photo.png"), cv2.COLOR_BGR2RGB)
    assert kept.dtype == np.uint16 and kept.shape == deep.shape
    chroma = [cv2.cvtColor(p.astype(np.float32) / 65535, cv2.COLOR_RGB2YCrCb)[..., 1:] for p in (kept, deep)]
    assert np.abs(chroma[0] - chroma[1]).max() < 0.02  # the original's chroma, at full size


def test_bit_depth_8_and_16(tmp_path: Path, style_image: Path) -> None:
    _write16(tmp_path / "in" / "deep.png", _deep())
    cv2.imwrite(str(tmp_path / "in" / "plain.png"), sample_photo("astronaut.jpg", 48))
    out = _run(tmp_path, "bit_depth=8")
    assert _read(out / "deep.png").dtype == _read(out / "plain.png").dtype == np.uint8

    out = _run(tmp_path, "bit_depth=16")  # another hash: made again, both at 16 bits
    for name in ("deep.png", "plain.png"):
        pixels = _read(out / name)
        assert pixels.dtype == np.uint16 and (pixels % 257 != 0).mean() > 0.9, name


def test_16_bits_in_a_jpeg_is_a_manifest_error(tmp_path: Path, style_image: Path) -> None:
    _write16(tmp_path / "in" / "deep.png", _deep())
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
defaults:
  format: jpg
  bit_depth: 16
jobs:
  - {name: photos, input: in, style: styles/starry.jpg, output: out}
""")
    with pytest.raises(NstBatchError, match=r"p\.yaml:4: defaults\.bit_depth: 16 bits per channel need format: png "
                                            r"\(jpg holds 8\)"):
        load_manifest(m, parse_overrides(FAST))
    with pytest.raises(NstBatchError, match=r"--set bit_depth=16: bit_depth: 16 bits per channel need format: png"):
        load_manifest(m, parse_overrides([*FAST, "bit_depth=16"]))

    out = _run(tmp_path, "format=jpg")  # auto: the 16-bit input becomes an 8-bit JPEG, as documented
    assert _read(out / "deep.jpg").dtype == np.uint8


# --- colour profiles ----------------------------------------------------------------


def _patches() -> np.ndarray:
    """Saturated and middling colours, 8-bit, 16 x 16 each, 32 x 48 in all."""
    colours = [(200, 60, 40), (60, 200, 60), (40, 70, 210), (230, 200, 40), (128, 128, 128), (250, 120, 180)]
    row = [np.full((16, 16, 3), c, np.uint8) for c in colours]
    return np.concatenate([np.concatenate(row[:3], axis=1), np.concatenate(row[3:], axis=1)], axis=0)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".webp"])
def test_a_display_p3_photo_is_read_as_srgb(tmp_path: Path, suffix: str) -> None:
    stored = _patches()
    path = tmp_path / f"p3{suffix}"
    Image.fromarray(stored).save(path, icc_profile=_p3_icc(), **({"quality": 100} if suffix == ".jpg" else
                                                                  {"lossless": True} if suffix == ".webp" else {}))
    rgb = read_image(path)
    decoded = np.asarray(Image.open(path).convert("RGB"))  # as stored (JPEG: as decoded)
    expected = _lcms_srgb(decoded, _p3_icc())
    assert np.abs(rgb.astype(int) - expected).max() <= 1  # as LittleCMS converts it
    assert np.abs(rgb.astype(int) - decoded).max() > 20  # P3's saturated red is not sRGB's (200, 60, 40)

    srgb_tagged = tmp_path / f"srgb{suffix}"
    Image.fromarray(stored).save(srgb_tagged, icc_profile=srgb_icc(), **({"lossless": True} if suffix == ".webp"
                                                                          else {}))
    plain = np.asarray(Image.open(srgb_tagged).convert("RGB"))
    assert np.array_equal(read_image(srgb_tagged), plain)  # already sRGB: bit for bit


def test_a_16_bit_display_p3_png_is_converted_at_16_bits(tmp_path: Path) -> None:
    deep = _patches().astype(np.uint16) * 257 + 100  # between the 8-bit levels
    rgb, _ = read_image_alpha(_write16(tmp_path / "p3.png", deep, icc=_p3_icc()))
    assert rgb.dtype == np.uint16
    expected = _lcms_srgb((deep / 257).round().astype(np.uint8), _p3_icc())
    assert np.abs(rgb / 257 - expected).max() <= 1.5
    assert (rgb % 257 != 0).mean() > 0.5  # converted in float at 16 bits, not through 8


def test_nclx_display_p3_matches_the_icc_profile() -> None:
    """A HEIF colour description of Display P3 (primaries and white as xy, sRGB's curve), as phones write it."""
    nclx = {"color_primaries": 12, "transfer_characteristics": 13, "color_primary_red_x": 0.680,
            "color_primary_red_y": 0.320, "color_primary_green_x": 0.265, "color_primary_green_y": 0.690,
            "color_primary_blue_x": 0.150, "color_primary_blue_y": 0.060, "color_primary_white_x": 0.3127,
            "color_primary_white_y": 0.3290}
    stored = _patches()
    by_icc = to_srgb(stored, icc=_p3_icc())
    assert np.abs(to_srgb(stored, nclx=nclx).astype(int) - by_icc).max() <= 1
    assert to_srgb(stored, nclx={**nclx, "color_primaries": 1}) is stored  # BT.709: sRGB's own primaries
    assert to_srgb(stored, nclx={**nclx, "transfer_characteristics": 16}) is stored  # PQ (HDR): as stored


def test_a_broken_profile_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    Image.fromarray(_patches()).save(path, icc_profile=_p3_icc()[:300])
    with pytest.raises(MediaError, match=r"broken\.png: the embedded colour profile cannot be read"):
        read_image(path)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_outputs_are_srgb_and_say_so(tmp_path: Path, style_image: Path, fmt: str) -> None:
    """A P3 phone photo through the pipeline: its pixels in sRGB, the output tagged sRGB."""
    stored = _patches()
    (tmp_path / "in").mkdir()
    Image.fromarray(stored).save(tmp_path / "in" / "phone.png", icc_profile=_p3_icc())
    out = _run(tmp_path, *AS_READ, "size=original", f"format={fmt}")
    with Image.open(out / f"phone.{fmt}") as im:
        written = np.asarray(im.convert("RGB"))
        if fmt == "png":
            assert im.info.get("srgb") == 0 and "icc_profile" not in im.info  # PNG's sRGB chunk
        else:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
            assert im.info["icc_profile"] == srgb_icc() and ImageCms.getProfileDescription(profile).startswith("sRGB")
    expected = _lcms_srgb(stored, _p3_icc())
    centres = (slice(8, None, 16), slice(8, None, 16))  # of the patches: JPEG's chroma blurs their edges
    assert np.abs(written[centres].astype(int) - expected[centres]).max() <= (1 if fmt == "png" else 6)


@pytest.mark.parametrize("batch", ["1", "2"])
def test_a_16_bit_input_written_at_8_bits_says_so(tmp_path: Path, style_image: Path, batch: str) -> None:
    """bit_depth auto with format jpg (or bit_depth 8): the 16-bit input's output is 8-bit, with a warning in
    the ledger and the log line; an 8-bit input's has none."""
    import json

    from rich.console import Console

    from nst_batch.events import UnitFinished
    from nst_batch.progress import ProgressView
    from nst_batch.results import ImageMetrics

    _write16(tmp_path / "in" / "deep.png", _deep())
    cv2.imwrite(str(tmp_path / "in" / "plain.png"), sample_photo("astronaut.jpg", 48))
    out = _run(tmp_path, "format=jpg", f"batch_size={batch}")
    records = {r["key"]: r for r in map(json.loads, (out / ".nst-batch" / "ledger.jsonl").read_text().splitlines())
               if r.get("status") == "done"}
    assert "16-bit input written at 8 bits" in records["deep.jpg"]["metrics"]["image_warning"]
    assert "format: jpg" in records["deep.jpg"]["metrics"]["image_warning"]
    assert "image_warning" not in records["plain.jpg"]["metrics"]
    console = Console(file=io.StringIO(), width=300)
    ProgressView(console)(UnitFinished(job="photos", key="deep.jpg", status="done", seconds=1.0, loss=0.5,
                                       metrics=ImageMetrics.from_record(records["deep.jpg"]["metrics"])))
    assert "WARNING: a 16-bit input written at 8 bits" in console.file.getvalue()  # type: ignore[attr-defined]


def test_bit_depth_16_leaves_a_video_8_bit(tmp_path: Path, style_image: Path) -> None:
    """Found by the fuzz: `bit_depth: 16` on a folder with a clip sent 16-bit frames to the H.264 encoder."""
    from videogen import make_clip

    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "clip.mp4", frames=3, size=(32, 24), audio=False)
    cv2.imwrite(str(tmp_path / "in" / "plain.png"), sample_photo("astronaut.jpg", 48))
    out = _run(tmp_path, "bit_depth=16", "video.first_iterations=2", "video.iterations=1")
    assert _read(out / "plain.png").dtype == np.uint16
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()
