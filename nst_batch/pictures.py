"""A picture's way to and from the engine: decoded size, working size, tensors and back, the pixels as written.

`to_tensor`, `to_uint8` and `to_float` bridge pixels (numpy, uint8 or uint16) and the engine's tensors;
`finish` makes the stylized pixels what is written (output size, colours kept, bits per channel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nst_batch.media.images import (animation_frames, keep_colors, longest_side_shape, resize_exact, resize_longest,
                                    to_bits)
from nst_batch.settings import FORMAT_BITS, Settings, output_bits, working_side

__all__ = ["working_picture", "working_shape", "finish", "depth_warning", "decode_side", "to_tensor", "to_uint8",
           "to_float"]


def decode_side(settings: Settings) -> int | None:
    """The longest side an input is shrunk to before anything else reads it, where that is known before it
    is decoded (so a big JPEG may be decoded at reduced size: `read_image_alpha`'s `reduce_for`); None with
    `size: original` or `output_size: original`, which need every pixel."""
    return None if settings.size == "original" or settings.output_size == "original" else int(settings.size)


def working_picture(settings: Settings, original: np.ndarray) -> np.ndarray:
    """A picture resized to its working size (`working_shape`)."""
    return resize_longest(original, working_side(settings.size, *original.shape[:2]))


def working_shape(settings: Settings, height: int, width: int) -> tuple[int, int]:
    """(h, w) of the working picture of a `height` x `width` picture, as `working_picture` makes it (`plan`,
    `estimate`)."""
    return longest_side_shape(height, width, working_side(settings.size, height, width))


def finish(settings: Settings, stylized: np.ndarray, content: np.ndarray,
           original: np.ndarray | None = None, *, video: bool = False) -> np.ndarray:
    """The picture as written, from the stylized float pixels (H, W, 3) in [0, 1]: at the original size if
    asked (bicubic), colours kept if asked (from the original, 16-bit where it is), then quantized to the bits
    per channel of `bit_depth` (uint8 or uint16); a video's frame (`video`) to 8, what H.264 here holds."""
    source = content if original is None else original
    if settings.output_size == "original" and original is not None:
        stylized = resize_exact(stylized, original.shape[1], original.shape[0])
        content = original
    if settings.preserve_colors:
        stylized = keep_colors(stylized, content)
    return to_bits(stylized, 8 if video else output_bits(settings, 16 if source.dtype == np.uint16 else 8))


def depth_warning(settings: Settings, original: np.ndarray, src: Path | None = None) -> str | None:
    """What the output loses of the input, said in the log and the ledger (never silent): bits per channel,
    and the frames after the first of an animated WebP or PNG (`src`)."""
    lost = []
    if original.dtype == np.uint16 and output_bits(settings, 16) == 8:
        holds = FORMAT_BITS[settings.format]
        why = f"format: {settings.format} holds {holds}" if holds < 16 else "bit_depth: 8"
        lost.append(f"a 16-bit input written at 8 bits per channel ({why}; format: png keeps 16)")
    frames = 1 if src is None else animation_frames(src)
    if frames > 1:
        kind = "PNG (APNG)" if src is not None and src.suffix.lower() == ".png" else "WebP"
        lost.append(f"an animated {kind} of {frames} frames: only its first frame is stylized (as a video, .mp4, "
                    "it would be stylized whole)")
    return "; ".join(lost) or None


def to_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 (or uint16: a 16-bit photo) → (1, 3, H, W) float in [0,1]."""
    top = float(np.iinfo(rgb.dtype).max)
    if rgb.dtype != np.uint8:
        rgb = rgb.astype(np.float32)  # torch before 2.3 holds no uint16
    pixels = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
    return pixels.float().div(top).contiguous().to(device)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0,1] → (H, W, 3) uint8, rounded."""
    return image[0].detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def to_float(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0,1] → (H, W, 3) float32 in [0,1], unrounded (quantized when written: `to_bits`)."""
    return np.ascontiguousarray(image[0].detach().clamp(0, 1).float().permute(1, 2, 0).cpu().numpy())
