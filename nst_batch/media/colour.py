"""Colour spaces: pixels described by an embedded ICC profile (or a HEIF nclx colour description) converted
to sRGB, the space VGG was trained in and the one outputs are written in (and tagged as).

Matrix/TRC RGB profiles (Display P3, Adobe RGB, ProPhoto, sRGB: what phones, cameras and editors embed) are
converted here, in float and at the picture's own bit depth, as LittleCMS converts between two such profiles
(relative colorimetric): the profile's tone curves → linear RGB → XYZ D50 (its colorants) → linear sRGB →
the sRGB curve; colours outside sRGB are clipped. Other RGB profiles (lookup tables) go through Pillow's
ImageCms (LittleCMS) at 8 bits. Profiles of other colour spaces (gray, CMYK) are left alone.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageCms

from nst_batch.errors import MediaError

__all__ = ["to_srgb", "srgb_icc"]

Curve = Callable[[np.ndarray], np.ndarray]  # encoded values in [0, 1] → linear light in [0, 1]
_BLOCK = 1 << 20  # pixels converted at a time: bounded memory for a 50-megapixel photo
_SAME = 1e-3  # a matrix or curve this close to sRGB's is sRGB (profiles store s15.16 numbers, tables of 1024)
# nclx (ISO/IEC 23091-2) transfer characteristics whose curve is sRGB's
_NCLX_SRGB_TRANSFER = 13
_D65 = (0.3127, 0.3290)


@functools.cache
def srgb_icc() -> bytes:
    """LittleCMS's sRGB profile, as embedded in JPEG outputs."""
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def to_srgb(rgb: np.ndarray, *, icc: bytes | None = None, nclx: Mapping[str, Any] | None = None,
            source: str = "") -> np.ndarray:
    """(H, W, 3) uint8 or uint16 RGB described by `icc` or `nclx` → sRGB, same shape and depth (8 bits where
    a lookup-table profile is converted by ImageCms). Unchanged if already sRGB or undescribed."""
    try:
        if icc:
            shaper = _icc_shaper(icc)
        elif nclx:
            shaper = _nclx_shaper(nclx)
        else:
            return rgb
    except (ValueError, struct.error) as exc:
        raise MediaError(f"{source}: the embedded colour profile cannot be read ({exc})") from exc
    if shaper is None:
        return rgb  # not RGB, or a colour description not converted (see README, "Photo collections")
    if isinstance(shaper, bytes):
        return _lcms(rgb, shaper, source)
    matrix, curves = shaper
    top = int(np.iinfo(rgb.dtype).max)
    grid = np.arange(top + 1, dtype=np.float64) / top
    luts = [np.clip(curve(grid), 0.0, 1.0).astype(np.float32) for curve in curves]  # (top + 1,) each
    if np.abs(matrix - np.eye(3)).max() < _SAME and all(np.abs(lut - _srgb_decode(grid)).max() < _SAME
                                                       for lut in luts):
        return rgb  # sRGB already: left bit for bit
    out = np.empty_like(rgb)
    rows = max(1, _BLOCK // rgb.shape[1])
    m = matrix.T.astype(np.float32)
    for y in range(0, rgb.shape[0], rows):
        block = rgb[y:y + rows]
        linear = np.stack([luts[c][block[..., c]] for c in range(3)], axis=-1) @ m  # (h, W, 3) linear sRGB
        out[y:y + rows] = np.round(_srgb_encode(np.clip(linear, 0.0, 1.0)) * top)
    return out


# --- ICC profiles ---------------------------------------------------------------


def _icc_shaper(icc: bytes) -> tuple[np.ndarray, list[Curve]] | bytes | None:
    """A matrix/TRC RGB profile as (linear RGB → linear sRGB matrix, its three curves); the profile itself
    where only LittleCMS can apply it (lookup tables); None for another colour space."""
    if len(icc) < 132:
        raise ValueError(f"{len(icc)} bytes, less than an ICC header")
    if icc[16:20] != b"RGB ":
        return None
    tags = _tags(icc)
    needed = (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")
    if icc[20:24] != b"XYZ " or any(t not in tags for t in needed):
        return icc
    to_pcs = np.stack([_xyz(tags[t]) for t in needed[:3]], axis=1)  # (3, 3): columns are the colorants (D50)
    return np.linalg.inv(_srgb_to_pcs()) @ to_pcs, [_curve(tags[t]) for t in needed[3:]]


@functools.cache
def _srgb_to_pcs() -> np.ndarray:
    tags = _tags(srgb_icc())
    return np.stack([_xyz(tags[t]) for t in (b"rXYZ", b"gXYZ", b"bXYZ")], axis=1)


def _tags(icc: bytes) -> dict[bytes, bytes]:
    (count,) = struct.unpack_from(">I", icc, 128)
    tags = {}
    for i in range(min(count, 1000)):
        sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
        if offset + size > len(icc):
            raise ValueError(f"tag {sig!r} lies beyond the profile's end")
        tags[sig] = icc[offset:offset + size]
    return tags


def _xyz(tag: bytes) -> np.ndarray:
    if tag[:4] != b"XYZ ":
        raise ValueError(f"a colorant of type {tag[:4]!r}, not XYZ")
    return np.array(struct.unpack_from(">3i", tag, 8), dtype=np.float64) / 65536


def _curve(tag: bytes) -> Curve:
    """An ICC tone curve: `curv` (identity, a gamma, or a table) or `para` (the five parametric functions)."""
    kind = tag[:4]
    if kind == b"curv":
        (n,) = struct.unpack_from(">I", tag, 8)
        if n == 0:
            return lambda x: x
        if n == 1:
            gamma = struct.unpack_from(">H", tag, 12)[0] / 256
            return lambda x: x ** gamma
        table = np.array(struct.unpack_from(f">{n}H", tag, 12), dtype=np.float64) / 65535
        points = np.linspace(0.0, 1.0, n)
        return lambda x: np.interp(x, points, table)
    if kind == b"para":
        (ftype,) = struct.unpack_from(">H", tag, 8)
        counts = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
        if ftype not in counts:
            raise ValueError(f"unknown parametric curve type {ftype}")
        p = [v / 65536 for v in struct.unpack_from(f">{counts[ftype]}i", tag, 12)]
        # every type as y = (a x + b)^g + e for x >= d, else c x + f (ICC.1:2010, table 65)
        g, a, b = p[0], 1.0, 0.0
        c = d = e = f = 0.0
        if ftype >= 1:
            a, b = p[1], p[2]
            d = -b / a if a else 0.0
        if ftype == 2:
            e = f = p[3]
        if ftype >= 3:
            c, d = p[3], p[4]
        if ftype == 4:
            e, f = p[5], p[6]
        return lambda x: np.where(x >= d, np.maximum(a * x + b, 0.0) ** g + e, c * x + f)
    raise ValueError(f"a tone curve of type {kind!r}")


def _lcms(rgb: np.ndarray, icc: bytes, source: str) -> np.ndarray:
    """LittleCMS for the profiles it alone can apply, at 8 bits (Pillow holds no 16-bit RGB)."""
    rgb8 = rgb if rgb.dtype == np.uint8 else (rgb / 257.0).round().astype(np.uint8)
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out = ImageCms.profileToProfile(Image.fromarray(rgb8), profile, ImageCms.ImageCmsProfile(
            ImageCms.createProfile("sRGB")), renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        raise MediaError(f"{source}: the embedded colour profile cannot be applied ({exc})") from exc
    assert out is not None  # not in place: profileToProfile returns the new image
    return np.asarray(out).copy()


# --- nclx (HEIF/AVIF colour descriptions) ----------------------------------------


def _nclx_shaper(nclx: Mapping[str, Any]) -> tuple[np.ndarray, list[Curve]] | None:
    """Primaries other than sRGB's with sRGB's curve and white (Display P3 as phones write it). HDR
    curves (PQ, HLG) and other whites are not converted."""
    if nclx.get("color_primaries") in (1, 2) or nclx.get("transfer_characteristics") != _NCLX_SRGB_TRANSFER:
        return None  # BT.709 (sRGB's primaries) or unspecified; or a curve that is not sRGB's
    try:
        xy = [(float(nclx[f"color_primary_{c}_x"]), float(nclx[f"color_primary_{c}_y"]))
              for c in ("red", "green", "blue", "white")]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"nclx without chromaticities: {exc}") from exc
    if abs(xy[3][0] - _D65[0]) > 1e-3 or abs(xy[3][1] - _D65[1]) > 1e-3:
        return None
    srgb = _rgb_to_xyz([(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)], _D65)
    return np.linalg.inv(srgb) @ _rgb_to_xyz(xy[:3], _D65), [_srgb_decode] * 3


def _rgb_to_xyz(primaries: list[tuple[float, float]], white: tuple[float, float]) -> np.ndarray:
    """The linear RGB → XYZ matrix of primaries and white given as xy chromaticities."""
    p = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T  # (3, 3): a column per primary
    w = np.array([white[0] / white[1], 1.0, (1 - white[0] - white[1]) / white[1]])
    return p * np.linalg.solve(p, w)


# --- the sRGB curve (IEC 61966-2-1) ------------------------------------------------


def _srgb_decode(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _srgb_encode(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)
