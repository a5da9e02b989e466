"""Image files: decode, list, resize, encode (atomically). Pixels are sRGB (H, W, 3), uint8, or uint16 where a
16-bit PNG/TIFF is read as it is stored (`read_image_alpha`); an image's transparency, where it has one, travels
beside them as an alpha plane (H, W) of the same depth. Embedded colour profiles are applied on reading
(`colour.py`); outputs are written tagged sRGB."""

from __future__ import annotations

import contextlib
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageOps

from nst_batch.host_memory import cpu_available
from nst_batch.errors import MediaError
from nst_batch.media.atomic import atomic_path
from nst_batch.media.colour import srgb_icc, to_srgb

__all__ = ["IMAGE_SUFFIXES", "PILLOW_SUFFIXES", "is_image_file", "read_image", "read_image_alpha", "read_thumbnail",
           "image_shape", "available_memory", "animation_frames", "write_image",
           "resize_longest", "longest_side_shape", "resize_exact", "keep_colors", "to_bits",
           "DEEP_SUFFIXES"]

PILLOW_SUFFIXES = (".heic", ".heif", ".avif")  # phone formats: read (by Pillow, pillow-heif), never written
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp") + PILLOW_SUFFIXES
_ALPHA_SUFFIXES = (".png", ".tif", ".tiff", ".webp")  # OpenCV-read formats that can carry transparency
DEEP_SUFFIXES = (".png", ".tif", ".tiff")  # formats that hold 16 bits per channel, read and written as such
MAX_PIXELS = 1 << 30  # the most pixels a header may claim: OpenCV's own limit (CV_IO_MAX_IMAGE_PIXELS), 1074 Mpx

pillow_heif.register_heif_opener()  # HEIC/HEIF for Pillow; Pillow reads AVIF itself
# Pillow's decompression-bomb guard refuses to open a header above 179 Mpx without saying its size; ours
# (`_check_pixels`, on every header before any decode) names the size and holds for OpenCV's formats too.
Image.MAX_IMAGE_PIXELS = None
# OpenCV's own warnings on a damaged file ("[ WARN:0@6.2] global grfmt_png.cpp:792 ... PNG input buffer is
# incomplete") name no file and land raw in the night's log; the read fails with our line naming the file.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

# EXIF orientation (1-8) -> the numpy steps that show the picture upright, as OpenCV's IMREAD_COLOR does.
_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 1)[:, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path, *, reduce_for: int | None = None) -> np.ndarray:
    """Decode an image file (EXIF orientation applied, colours in sRGB) → (H, W, 3) uint8 RGB (`reduce_for`:
    see `read_image_alpha`)."""
    return to_bits(read_image_alpha(path, reduce_for=reduce_for)[0], 8)


def read_image_alpha(path: Path, *, reduce_for: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode an image file, EXIF orientation applied, colours converted to sRGB by its embedded profile →
    (H, W, 3) RGB and its (H, W) alpha, or None for an opaque image: uint16 for a 16-bit PNG or TIFF (its
    depth kept), uint8 otherwise.

    `reduce_for`: the longest side the picture will be shrunk to. A JPEG of at least four times that is
    decoded at 1/2, 1/4 or 1/8 of its size by libjpeg's DCT scaling, never below twice that side (so the
    shrink that follows still averages): a 30000 px photo for a 512 px working size costs a 64th of its
    full decode, in memory and time."""
    path = Path(path)
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not an image")
    if not path.is_file():
        raise MediaError(f"{path}: image not found")
    try:
        if path.suffix.lower() in PILLOW_SUFFIXES:
            rgb, alpha, info = _read_pillow(path)
        else:
            rgb, alpha, info = _read_opencv(path, reduce_for)
        rgb = to_srgb(rgb, icc=info.get("icc_profile"), nclx=info.get("nclx_profile"), source=str(path))
    except (MediaError, MemoryError):
        raise  # ours already name the file; a failed allocation is the memory policy's to retry
    except Exception as exc:  # noqa: BLE001 - a decoder's own error (OpenCV's cv2.error, libavif's RuntimeError,
        # pillow-heif's EOFError, Pillow's bomb guard): one line naming the file, never a traceback
        raise MediaError(f"{path}: cannot decode the image (corrupt or not an image): {_short(exc)}") from exc
    if alpha is not None:
        alpha = np.ascontiguousarray(to_bits(alpha, 16 if rgb.dtype == np.uint16 else 8))
    return np.ascontiguousarray(rgb), alpha


def _short(exc: BaseException) -> str:
    """A library's error as one short line: OpenCV's `OpenCV(5.1.0) /src/loadsave.cpp:77: error: (-215:Assertion
    failed) pixels <= CV_IO_MAX_IMAGE_PIXELS in function ...` becomes `pixels <= CV_IO_MAX_IMAGE_PIXELS ...`."""
    text = " ".join(str(exc).split())
    if isinstance(exc, cv2.error) and ") " in text.partition("error: ")[2]:
        text = text.partition("error: ")[2].partition(") ")[2]
    return f"{type(exc).__name__}: {text[:200] or 'no message'}"


def _check_pixels(path: Path, width: int, height: int, factor: int = 1) -> None:
    """Refuse, before decoding, a picture whose header claims more pixels than nst-batch decodes, or than the
    memory free now holds decoded at 1/`factor` of its size (a decompression bomb would otherwise meet the
    OOM killer, on every resume)."""
    if width * height > MAX_PIXELS:
        raise MediaError(f"{path}: the image claims {width}x{height} pixels ({width * height / 1e6:.0f} Mpx), more "
                         f"than nst-batch decodes ({MAX_PIXELS / 1e6:.0f} Mpx): a damaged header or a decompression "
                         "bomb; shrink it first if it is real")
    need = -(-width // factor) * -(-height // factor) * _DECODE_BYTES_PER_PIXEL
    free = available_memory()
    if free is not None and need > free:
        raise MediaError(f"{path}: the image claims {width}x{height} pixels; decoding it takes about "
                         f"{need / 1024 ** 3:.1f} GiB, more than the {free / 1024 ** 3:.1f} GiB of memory free")


_DECODE_BYTES_PER_PIXEL = 16  # 16-bit RGBA decoded (8 bytes) and one converted copy of it


def available_memory() -> int | None:
    """Bytes of memory a decode may take now: MemAvailable within a container's limit (`host_memory`)."""
    return cpu_available()


def image_shape(path: Path) -> tuple[int, int]:
    """(height, width) of an image file as `read_image` gives it (EXIF orientation applied), from its header
    where Pillow reads one, else by decoding it."""
    try:
        with _quiet(), Image.open(path) as im:
            width, height = im.size
            if path.suffix.lower() in (".jpg", ".jpeg") and im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                width, height = height, width  # turned a quarter by its orientation
            return height, width
    except Exception:  # noqa: BLE001 - what Pillow cannot open, OpenCV may (or says why not)
        rgb = read_image(path)
        return rgb.shape[0], rgb.shape[1]


def animation_frames(path: Path) -> int:
    """How many frames an animated WebP or PNG (APNG) holds, from its header (1 for a still picture): such
    a file is read as its first frame, and says so."""
    if Path(path).suffix.lower() not in (".webp", ".png"):
        return 1
    try:
        with _quiet(), Image.open(path) as im:
            return int(getattr(im, "n_frames", 1)) if getattr(im, "is_animated", False) else 1
    except Exception:  # noqa: BLE001 - a header Pillow cannot read: the decode says what is wrong
        return 1


def read_thumbnail(path: Path, side: int) -> np.ndarray:
    """An image file as (h, w, 3) uint8 sRGB with its longest side `side` px (or less), for the report; a big
    JPEG decoded at reduced size (`read_image_alpha`'s `reduce_for`)."""
    rgb = read_image(path, reduce_for=side)
    return resize_longest(rgb, min(side, max(rgb.shape[:2])))


def _read_opencv(path: Path, reduce_for: int | None = None) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    info = _header(path, reduce_for)  # refuses a bomb before any decode
    data = np.fromfile(path, dtype=np.uint8)
    if info.get("factor", 1) > 1:  # a big JPEG for a small working size: DCT-scaled (8 bits, orientation applied)
        bgr = cv2.imdecode(data, _REDUCED[info["factor"]])
        if bgr is None and _lacks_jpeg_end(path, data):  # cut short: as below, at the reduced size
            bgr = cv2.imdecode(np.concatenate([data, np.frombuffer(b"\xff\xd9", dtype=np.uint8)]),
                               _REDUCED[info["factor"]])
        if bgr is None:  # never a full-size decode: the memory check allowed the reduced one only
            raise MediaError(f"{path}: cannot decode the image (corrupt or not an image)")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None, info
    # IMREAD_COLOR applies EXIF orientation itself; with ANYDEPTH a 16-bit file stays 16-bit
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    if bgr is None and _lacks_jpeg_end(path, data):
        # A JPEG cut short by a byte or two (its end-of-image marker lost, as a copy or upload can leave it):
        # every viewer, and OpenCV's own imread, shows it; decoding from memory refuses it without the marker.
        data = np.concatenate([data, np.frombuffer(b"\xff\xd9", dtype=np.uint8)])
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if bgr is not None and bgr.dtype not in (np.uint8, np.uint16):
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)  # float samples: at 8 bits, as OpenCV converts them
    if bgr is None:
        raise MediaError(f"{path}: cannot decode the image (corrupt or not an image)")
    rgba = _with_alpha(path, data, info["orientation"]) if info["alpha"] else None
    if rgba is not None and rgba.shape[:2] == bgr.shape[:2]:
        return rgba[..., :3], rgba[..., 3], info
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None, info


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def _jpeg_factor(path: Path, size: tuple[int, int] | None, side: int | None) -> int:
    """The DCT scaling a JPEG of `size` may be decoded at for a picture of longest side `side`: 1, 2, 4 or 8,
    keeping at least twice `side`."""
    if side is None or size is None or path.suffix.lower() not in (".jpg", ".jpeg"):
        return 1
    return next((f for f in (8, 4, 2) if max(size) >= 2 * f * side), 1)


def _header(path: Path, reduce_for: int | None = None) -> dict[str, Any]:
    """What Pillow reads from the header of a file OpenCV decodes: transparency, orientation, ICC profile, size."""
    info: dict[str, Any] = {"alpha": False, "orientation": 1}  # where Pillow cannot tell: opaque, as stored
    try:
        with _quiet(), Image.open(path) as im:  # reads the header only
            width, height = info["size"] = im.size
            info["factor"] = _jpeg_factor(path, im.size, reduce_for)
            _check_pixels(path, width, height, info["factor"])  # before anything that could decode
            info.update(alpha=path.suffix.lower() in _ALPHA_SUFFIXES and _has_alpha(im),
                        icc_profile=im.info.get("icc_profile"))
            if info["alpha"]:  # only the alpha path turns pixels itself; a PNG's getexif decodes the whole image
                info["orientation"] = im.getexif().get(0x0112, 1)
    except MediaError:
        raise
    except Exception:  # noqa: BLE001 - OpenCV decodes what Pillow does not (or refuses it, saying so)
        pass
    return info


def _lacks_jpeg_end(path: Path, data: np.ndarray) -> bool:
    return (path.suffix.lower() in (".jpg", ".jpeg") and data.size > 4 and bytes(data[:2]) == b"\xff\xd8"
            and bytes(data[-2:]) != b"\xff\xd9")


def _read_pillow(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    try:
        with _quiet(), Image.open(path) as im:
            _check_pixels(path, *im.size)
            info = dict(im.info)  # the ICC profile (or HEIF nclx colour description) that to_srgb reads
            im = ImageOps.exif_transpose(im)  # pillow-heif has already turned HEIC upright (orientation 1)
            if _has_alpha(im):
                rgba = np.asarray(im.convert("RGBA"))
                return rgba[..., :3].copy(), rgba[..., 3].copy(), info
            return np.array(im.convert("RGB")), None, info  # a writable copy, as OpenCV's decode gives
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for a corrupt or unknown file
        why = " ".join(str(exc).split())  # one line: pillow-heif's messages end in a newline
        raise MediaError(f"{path}: cannot decode the image (corrupt or not an image): {why}") from exc


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Pillow's own warnings ("Corrupt EXIF data. Expecting to read 2 bytes ...") kept out of the night's log:
    they name no file; such a file is read as Pillow reads it (its EXIF orientation taken as 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def _with_alpha(path: Path, data: np.ndarray, orientation: int) -> np.ndarray | None:
    """A PNG/TIFF/WebP with transparency as (H, W, 4) RGBA (uint8, or uint16 for 16 bits), upright; None
    where OpenCV gives no alpha plane.

    OpenCV's colour decode drops the alpha plane, so such a file is decoded unchanged and turned upright
    here as the colour decode would have done (OpenCV's TIFF decoder does it itself)."""
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # BGRA or gray+alpha, any depth
    if raw is None or raw.ndim != 3 or raw.shape[2] not in (2, 4):
        return None  # a palette's transparent colour: OpenCV gives no plane; the output stays opaque
    tiff = path.suffix.lower() in (".tif", ".tiff")
    if tiff and raw.dtype == np.uint8 and raw.shape[2] == 4:
        # OpenCV reads an 8-bit RGBA TIFF through libtiff's TIFFReadRGBA*, which premultiplies the colours
        # by alpha: divided back here, so transparent regions keep their colour (to 8-bit precision).
        a = raw[..., 3:].astype(np.float32)
        raw = np.dstack([np.where(a > 0, raw[..., :3] * (255.0 / np.maximum(a, 1)), 0).clip(0, 255).round()
                         .astype(np.uint8), raw[..., 3:]])
    if raw.dtype not in (np.uint8, np.uint16):
        return None  # float samples: the colour decode is used, the output stays opaque
    if raw.shape[2] == 4:
        rgba = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGBA)
    else:
        rgba = np.dstack([raw[..., :1].repeat(3, axis=2), raw[..., 1:]])
    if not tiff:
        rgba = _ORIENT.get(orientation, lambda a: a)(rgba)
    return np.ascontiguousarray(rgba)


def write_image(path: Path, rgb: np.ndarray, *, quality: int = 95, alpha: np.ndarray | None = None) -> None:
    """Encode sRGB pixels by the path's suffix (png or jpg) and write atomically, tagged as sRGB. `rgb` is
    uint8, or uint16 for 16 bits per channel (png, tif). `alpha` (any size and depth: made the picture's) is
    written with it where the format carries one (png, tif, webp); jpg drops it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if rgb.dtype != np.uint8 and (rgb.dtype != np.uint16 or suffix not in DEEP_SUFFIXES):
        raise MediaError(f"{path}: {suffix or 'this format'} is written at 8 bits per channel, not from "
                         f"{rgb.dtype} pixels (16 bits: png or tif)")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else []
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if alpha is not None and suffix in _ALPHA_SUFFIXES:
        plane = to_bits(resize_exact(alpha, rgb.shape[1], rgb.shape[0]), 16 if rgb.dtype == np.uint16 else 8)
        pixels = np.dstack([pixels, plane])
    ok, buf = cv2.imencode(path.suffix, pixels, params)
    if not ok:
        raise MediaError(f"{path}: cannot encode the image")
    data = _tagged_srgb(buf.tobytes(), suffix)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise MediaError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def _tagged_srgb(data: bytes, suffix: str) -> bytes:
    """An encoded PNG or JPEG that says its colours are sRGB: PNG's sRGB chunk after the header (rendering
    intent 0, perceptual); JPEG's ICC profile segment (APP2), after the JFIF segment. Others as they are."""
    if suffix == ".png" and data[12:16] == b"IHDR":
        at = 8 + 4 + 4 + 13 + 4  # the signature, then IHDR: its length, type, 13 bytes and CRC
        chunk = b"sRGB\x00"
        return data[:at] + struct.pack(">I", 1) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[at:]
    if suffix in (".jpg", ".jpeg") and data[:2] == b"\xff\xd8":
        at = 4 + int.from_bytes(data[4:6], "big") if data[2:4] == b"\xff\xe0" else 2
        icc = srgb_icc()
        segment = b"\xff\xe2" + struct.pack(">H", 2 + 14 + len(icc)) + b"ICC_PROFILE\x00\x01\x01" + icc
        return data[:at] + segment + data[at:]
    return data


def to_bits(pixels: np.ndarray, bits: int) -> np.ndarray:
    """Pixels (uint8, uint16, or float in [0, 1]) at `bits` (8 or 16) per channel, rounded: 8 → 16 bits is
    x 257, exactly; float is quantized directly (a stylized image at 16 bits is not an 8-bit one scaled)."""
    dtype = np.uint16 if bits == 16 else np.uint8
    if pixels.dtype == dtype:
        return pixels
    top = float(np.iinfo(pixels.dtype).max) if pixels.dtype.kind in "ui" else 1.0
    scaled = pixels.astype(np.float32) * np.float32(np.iinfo(dtype).max / top)
    return np.round(np.clip(scaled, 0, np.iinfo(dtype).max)).astype(dtype)


def resize_longest(rgb: np.ndarray, size: int, *, even: bool = False) -> np.ndarray:
    """Resize so the longest side is `size` px, keeping the aspect ratio (area filter when shrinking);
    `even`: both sides rounded to even numbers, as video frames are (see `longest_side_shape`)."""
    h, w = rgb.shape[:2]
    new_h, new_w = longest_side_shape(h, w, size, even=even)
    if (new_h, new_w) == (h, w):
        return rgb
    return cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA if size < max(h, w) else cv2.INTER_CUBIC)


def longest_side_shape(height: int, width: int, size: int, *, even: bool = False) -> tuple[int, int]:
    """(height, width) of a `height` x `width` picture whose longest side is made `size` px, as
    `resize_longest` makes it: each side rounded (at least 1 px), or with `even` rounded to an even
    number (at least 2 px: H.264's 4:2:0 needs even sides)."""
    scale = size / max(height, width)
    if even:
        return max(2, 2 * round(height * scale / 2)), max(2, 2 * round(width * scale / 2))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_exact(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if width < w else cv2.INTER_CUBIC)


def keep_colors(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Luminance of `stylized`, chroma of `content` (colour preservation, Gatys et al. 2016,
    done as jcjohnson/neural-style's `-original_colors`: a swap in YCrCb). Same sizes. Two uint8 pictures
    give uint8; float `stylized` pixels in [0, 1] (with `content` of any depth) give float32."""
    if stylized.dtype != np.uint8 or content.dtype != np.uint8:
        stylized, content = _unit(stylized), _unit(content)  # OpenCV's float YCrCb: [0, 1], chroma around 0.5
    y = cv2.cvtColor(stylized, cv2.COLOR_RGB2YCrCb)
    y[..., 1:] = cv2.cvtColor(content, cv2.COLOR_RGB2YCrCb)[..., 1:]
    return cv2.cvtColor(y, cv2.COLOR_YCrCb2RGB)


def _unit(pixels: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] from pixels of any depth (float pixels are taken as in [0, 1] already)."""
    top = np.iinfo(pixels.dtype).max if pixels.dtype.kind in "ui" else 1
    return pixels.astype(np.float32) / np.float32(top)
