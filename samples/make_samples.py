"""Regenerate the nst-batch sample inputs (photos, styles, a short clip) from bundled data.

Photos come from scikit-image's bundled data, styles and the clip from Debian's
opencv-doc examples. Everything is downscaled so the folder stays a few MB.
The clip's audio track is synthesized here, since the source video is silent.
See SOURCES.md for provenance and licenses.

    python samples/make_samples.py [--opencv-data DIR]
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data

HERE = Path(__file__).resolve().parent
PHOTOS = {  # output path under samples/photos -> skimage.data loader name
    "astronaut.jpg": "astronaut",
    "chelsea.jpg": "chelsea",
    "rocket.jpg": "rocket",
    "more/coffee.jpg": "coffee",
}
STYLES = {"starry_night.jpg": "starry_night.jpg", "graffiti.jpg": "graf1.png"}  # output -> opencv-doc file
CLIP_SOURCE = "vtest.avi"
CLIP_SECONDS = 3
IMAGE_SIDE = 384
CLIP_SIDE = 320
JPEG_QUALITY = 90
SAMPLE_RATE = 44100
AAC_FRAME = 1024  # samples per AAC frame
CHORD_HZ = (220.0, 277.18, 329.63)  # A major triad (A3, C#4, E4)


def fit(image: np.ndarray, longest: int) -> np.ndarray:
    """Downscale so the longest side is `longest` px, with even width and height."""
    h, w = image.shape[:2]
    scale = longest / max(h, w)
    size = (round(w * scale / 2) * 2, round(h * scale / 2) * 2)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def save_jpeg(path: Path, bgr: np.ndarray) -> None:
    """Write a BGR image as JPEG, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise SystemExit(f"could not write {path}")


def make_photos(out: Path) -> None:
    """Write the scikit-image photos, downscaled, under `out`."""
    for name, loader in PHOTOS.items():
        rgb = getattr(skimage.data, loader)()
        save_jpeg(out / name, cv2.cvtColor(fit(rgb, IMAGE_SIDE), cv2.COLOR_RGB2BGR))


def make_styles(out: Path, data: Path) -> None:
    """Write the opencv-doc style images, downscaled, under `out`."""
    for name, source in STYLES.items():
        bgr = cv2.imread(str(data / source), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read {data / source}")
        save_jpeg(out / name, fit(bgr, IMAGE_SIDE))


def chord(seconds: float) -> np.ndarray:
    """A soft A-major chord with fade in/out, as a (2, samples) float32 stereo array."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = sum(np.sin(2 * np.pi * f * t) + 0.2 * np.sin(4 * np.pi * f * t) for f in CHORD_HZ)
    envelope = np.minimum(1.0, np.minimum(t / 0.3, (seconds - t) / 0.8))
    mono = (0.15 * wave * envelope).astype(np.float32)
    return np.stack([mono, mono])


def make_clip(path: Path, source: Path) -> None:
    """Trim the first CLIP_SECONDS of `source`, downscale, encode H.264 + synthesized AAC."""
    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate
        if fps is None or not 5 <= fps <= 60:
            raise SystemExit(f"{source}: unexpected frame rate {fps}")
        count = int(fps * CLIP_SECONDS)
        frames = []
        for frame in src.decode(stream):
            frames.append(fit(frame.to_ndarray(format="rgb24"), CLIP_SIDE))
            if len(frames) == count:
                break
    if len(frames) < count:
        raise SystemExit(f"{source}: only {len(frames)} frames, need {count}")

    with av.open(str(path), "w", format="mp4") as dst:
        video = dst.add_stream("libx264", rate=Fraction(fps))
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "23", "preset": "slow"}
        audio = dst.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")

        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = index, 1 / Fraction(fps)
            dst.mux(video.encode(frame))
        dst.mux(video.encode())

        samples = chord(float(count / fps))
        for start in range(0, samples.shape[1], AAC_FRAME):
            chunk = samples[:, start : start + AAC_FRAME]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
            dst.mux(audio.encode(frame))
        dst.mux(audio.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--opencv-data",
        type=Path,
        default=Path("/usr/share/doc/opencv-doc/examples/data"),
        help="opencv-doc sample data folder (default: %(default)s)",
    )
    args = parser.parse_args()
    make_photos(HERE / "photos")
    make_styles(HERE / "styles", args.opencv_data)
    make_clip(HERE / "clip.mp4", args.opencv_data / CLIP_SOURCE)


if __name__ == "__main__":
    main()
