"""Image files: decode, list, resize, encode (atomically). Pixels are uint8 RGB (H, W, 3)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from nst_batch.errors import MediaError
from nst_batch.media.atomic import atomic_path

__all__ = ["IMAGE_SUFFIXES", "is_image_file", "read_image", "write_image", "list_media", "resize_longest",
           "resize_exact", "keep_colors"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path) -> np.ndarray:
    """Decode an image file (EXIF orientation applied) → (H, W, 3) uint8 RGB."""
    path = Path(path)
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not an image")
    if not path.is_file():
        raise MediaError(f"{path}: image not found")
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise MediaError(f"{path}: cannot decode the image (corrupt or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_image(path: Path, rgb: np.ndarray, *, quality: int = 95) -> None:
    """Encode by the path's suffix (png or jpg) and write atomically."""
    path = Path(path)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise MediaError(f"{path}: cannot encode the image")
    try:
        with atomic_path(path) as tmp:
            buf.tofile(tmp)
    except OSError as exc:
        raise MediaError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def resize_longest(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize so the longest side is `size` px, keeping the aspect ratio (area filter when shrinking)."""
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    if scale == 1.0:
        return rgb
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


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
