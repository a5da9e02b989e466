"""Image files: decode, list, resize, encode (atomically). Pixels are uint8 RGB (H, W, 3); an image's
transparency, where it has one, travels beside them as a uint8 alpha plane (H, W)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageOps

from nst_batch.errors import MediaError
from nst_batch.media.atomic import atomic_path

__all__ = ["IMAGE_SUFFIXES", "PILLOW_SUFFIXES", "is_image_file", "read_image", "read_image_alpha", "write_image",
           "list_media", "resize_longest", "longest_side_shape", "resize_exact", "keep_colors"]

PILLOW_SUFFIXES = (".heic", ".heif", ".avif")  # phone formats: read (by Pillow, pillow-heif), never written
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp") + PILLOW_SUFFIXES
_ALPHA_SUFFIXES = (".png", ".tif", ".tiff", ".webp")  # OpenCV-read formats that can carry transparency

pillow_heif.register_heif_opener()  # HEIC/HEIF for Pillow; Pillow reads AVIF itself

# EXIF orientation (1-8) -> the numpy steps that show the picture upright, as OpenCV's IMREAD_COLOR does.
_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 1)[:, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path) -> np.ndarray:
    """Decode an image file (EXIF orientation applied) → (H, W, 3) uint8 RGB."""
    return read_image_alpha(path)[0]


def read_image_alpha(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode an image file, EXIF orientation applied → (H, W, 3) uint8 RGB and its (H, W) uint8 alpha,
    or None for an opaque image. 16-bit files are read at 8 bits."""
    path = Path(path)
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not an image")
    if not path.is_file():
        raise MediaError(f"{path}: image not found")
    if path.suffix.lower() in PILLOW_SUFFIXES:
        return _read_pillow(path)
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None  # applies EXIF orientation itself
    if bgr is None:
        raise MediaError(f"{path}: cannot decode the image (corrupt or not an image)")
    rgba = _with_alpha(path, data) if path.suffix.lower() in _ALPHA_SUFFIXES else None
    if rgba is not None and rgba.shape[:2] == bgr.shape[:2]:
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None


def _read_pillow(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)  # pillow-heif has already turned HEIC upright (orientation 1)
            if _has_alpha(im):
                rgba = np.asarray(im.convert("RGBA"))
                return rgba[..., :3].copy(), rgba[..., 3].copy()
            return np.array(im.convert("RGB")), None  # a writable copy, as OpenCV's decode gives
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for a corrupt or unknown file
        raise MediaError(f"{path}: cannot decode the image (corrupt or not an image): {exc}") from exc


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def _with_alpha(path: Path, data: np.ndarray) -> np.ndarray | None:
    """A PNG/TIFF/WebP with transparency as (H, W, 4) uint8 RGBA, upright; None if it has none.

    OpenCV's colour decode drops the alpha plane, so such a file is decoded unchanged and turned upright
    here as the colour decode would have done (OpenCV's TIFF decoder does it itself)."""
    try:
        with Image.open(path) as im:  # reads the header only: mode and EXIF
            if not _has_alpha(im):
                return None
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError):
        return None
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
    if raw.dtype == np.uint16:  # outputs are 8-bit
        raw = (raw / 257.0).round().astype(np.uint8)
    elif raw.dtype != np.uint8:
        return None  # float samples: the colour decode is used, the output stays opaque
    if raw.shape[2] == 4:
        rgba = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGBA)
    else:
        rgba = np.dstack([raw[..., :1].repeat(3, axis=2), raw[..., 1:]])
    if not tiff:
        rgba = _ORIENT.get(orientation, lambda a: a)(rgba)
    return np.ascontiguousarray(rgba)


def write_image(path: Path, rgb: np.ndarray, *, quality: int = 95, alpha: np.ndarray | None = None) -> None:
    """Encode by the path's suffix (png or jpg) and write atomically. `alpha` (any size: resized to the
    picture's) is written with it where the format carries one (png, tif, webp); jpg drops it."""
    path = Path(path)
    suffix = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else []
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if alpha is not None and suffix in _ALPHA_SUFFIXES:
        pixels = np.dstack([pixels, resize_exact(alpha, rgb.shape[1], rgb.shape[0])])
    ok, buf = cv2.imencode(path.suffix, pixels, params)
    if not ok:
        raise MediaError(f"{path}: cannot encode the image")
    try:
        with atomic_path(path) as tmp:
            buf.tofile(tmp)
    except OSError as exc:
        raise MediaError(f"{path}: cannot write: {exc.strerror or exc}") from exc


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
    done as jcjohnson/neural-style's `-original_colors`: a swap in YCrCb). Same sizes."""
    y = cv2.cvtColor(stylized, cv2.COLOR_RGB2YCrCb)
    y[..., 1:] = cv2.cvtColor(content, cv2.COLOR_RGB2YCrCb)[..., 1:]
    return cv2.cvtColor(y, cv2.COLOR_YCrCb2RGB)


def list_media(folder: Path, *, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under `folder` (recursive) with one of `suffixes`, sorted; hidden entries skipped."""
    found = [
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
