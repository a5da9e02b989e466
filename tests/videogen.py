"""Generate small test clips with PyAV (no ffmpeg CLI needed), and damage their sound.

Clips show a smooth random texture that translates by `SHIFT` px per frame with a
white square moving across it by `SQUARE_STEP` px per frame, and a red marker in
the top-left corner of the *displayed* picture (to check orientation). After
`cut_at`, a different texture with a blue tint and no marker (a hard cut).
An optional chirp track (`tone`; AAC, mono, 44.1 kHz) lasts exactly as long as the video.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

__all__ = [
    "AUDIO_RATE",
    "MARKER",
    "MAX_FRAMES",
    "SHIFT",
    "SQUARE",
    "SQUARE_STEP",
    "corrupt_packets",
    "make_clip",
    "make_sound_clip",
    "make_not_video",
    "make_truncated",
    "make_zero_frames",
    "mark_audio_codec_unknown",
    "pattern",
    "square_origin",
    "texture",
    "tone",
    "truncate_packets",
]

AUDIO_RATE = 44100
SHIFT = (2, 1)  # background motion per frame, (dx, dy) px
SQUARE = 12  # side of the moving square, px
SQUARE_STEP = 3  # square motion per frame, px to the right
MARKER = 8  # side of the red marker in the top-left corner, px
MAX_FRAMES = 200  # longest clip `pattern` can draw
_AAC_FRAME = 1024  # samples per AAC frame


def pattern(index: int, width: int, height: int, *, cut: bool = False) -> np.ndarray:
    """Frame `index` (0 ≤ index < MAX_FRAMES) of the clip as displayed: (height, width, 3) uint8 RGB."""
    if not 0 <= index < MAX_FRAMES:
        raise ValueError(f"pattern: frame index {index} outside [0, {MAX_FRAMES})")
    dx, dy = SHIFT
    texture = _texture(width + dx * MAX_FRAMES, height + dy * MAX_FRAMES, seed=2 if cut else 1)
    # The window slides left/up over the texture, so the content moves right/down.
    x0, y0 = dx * (MAX_FRAMES - index), dy * (MAX_FRAMES - index)
    frame = texture[y0 : y0 + height, x0 : x0 + width].copy()  # (H, W, 3)
    if cut:
        frame[:, :, 2] = np.clip(frame[:, :, 2].astype(np.int32) + 120, 0, 255).astype(np.uint8)
        frame[:, :, 0] //= 3
        return frame
    sx, sy = square_origin(index, width, height)
    frame[sy : sy + SQUARE, sx : sx + SQUARE] = 255
    frame[:MARKER, :MARKER] = (255, 0, 0)
    return frame


def square_origin(index: int, width: int, height: int) -> tuple[int, int]:
    """Top-left corner (x, y) of the moving square in frame `index`."""
    span = max(width - SQUARE - MARKER, 1)
    return MARKER + (SQUARE_STEP * index) % span, (height - SQUARE) // 2


def make_clip(
    path: Path,
    *,
    frames: int = 24,
    fps: int | Fraction = 12,
    size: tuple[int, int] = (64, 48),
    audio: bool = True,
    rotation: int = 0,
    cut_at: int | None = None,
    faststart: bool = False,
) -> Path:
    """Write an H.264 clip; return `path`.

    size: (width, height) as *stored*. rotation: degrees clockwise a player
    must turn the stored picture to show it upright (0/90/180/270), recorded
    as a display matrix; with 90 or 270 a (64, 48) clip displays 48 × 64.
    The stored pixels are the upright `pattern` turned the other way, so a
    reader that honours the metadata gets `pattern(i, display_w, display_h)`.
    cut_at: first frame of the second scene. faststart: put the index (moov)
    before the data, so a truncated copy still opens.
    """
    width, height = size
    display_w, display_h = (height, width) if rotation % 180 else (width, height)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        # mbtree=0: the same clip bytes in every process (see media/video.py)
        video = container.add_stream("libx264", rate=Fraction(fps), options={"x264-params": "mbtree=0"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if rotation:
            # PyAV's angle is counter-clockwise (libavutil/display.h convention).
            video.set_display_rotation(-rotation)
        sound = _add_audio(container) if audio else None
        for index in range(frames):
            upright = pattern(index, display_w, display_h, cut=cut_at is not None and index >= cut_at)
            stored = np.ascontiguousarray(np.rot90(upright, k=(rotation // 90) % 4))
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            _write_tone(container, sound, seconds=frames / Fraction(fps))
    return path


def tone(t: np.ndarray) -> np.ndarray:
    """The audio track at times `t` (seconds): a chirp rising 300 Hz + 200 Hz/s.

    Its phase never repeats, so a trimmed copy matches only at the right offset.
    """
    return (0.3 * np.sin(2 * np.pi * (300.0 * t + 100.0 * t * t))).astype(np.float32)


def make_truncated(path: Path) -> Path:
    """A valid 60-frame clip (index in front) with the last half of its bytes cut off."""
    make_clip(path, frames=60, size=(96, 64), audio=False, faststart=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_not_video(path: Path) -> Path:
    """Text bytes under a video name."""
    path.write_text("this is not a video\n" * 20, encoding="utf-8")
    return path


def make_zero_frames(path: Path) -> Path:
    """A container with a video stream and no frames.

    Written as AVI whatever the name: the MP4 muxer drops a track without
    samples (FFmpeg then sees no video stream at all) and Matroska/WebM files
    without frames do not open, while AVI keeps the stream header.
    """
    with av.open(str(path), "w", format="avi") as container:
        video = container.add_stream("mpeg4", rate=12)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
        container.mux(video.encode())
    return path


def texture(width: int, height: int, *, seed: int) -> np.ndarray:
    """A smooth random RGB texture, (height, width, 3) uint8, the same for the same seed and size."""
    return _texture(width, height, seed=seed)[:height, :width].copy()


@functools.lru_cache(maxsize=8)
def _texture(width: int, height: int, *, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(height // 4 + 2, width // 4 + 2, 3), dtype=np.uint8)
    smooth = cv2.resize(noise, (width + 1, height + 1), interpolation=cv2.INTER_CUBIC)  # (H+1, W+1, 3)
    texture = cv2.GaussianBlur(smooth, (0, 0), 1.0)
    texture.flags.writeable = False  # cached: callers copy
    return texture


def _add_audio(container: av.container.OutputContainer) -> av.audio.stream.AudioStream:
    stream = container.add_stream("aac", rate=AUDIO_RATE)
    stream.layout = "mono"
    return stream


def _write_tone(
    container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, *, seconds: Fraction
) -> None:
    total = int(seconds * AUDIO_RATE)
    samples = tone(np.arange(total, dtype=np.float64) / AUDIO_RATE)  # (total,)
    for start in range(0, total, _AAC_FRAME):
        chunk = samples[None, start : start + _AAC_FRAME]  # (1, n) planar
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def make_sound_clip(
    path: Path,
    *,
    container: str = "avi",
    codec: str = "ac3",
    layout: str = "stereo",
    rate: int = 48000,
    frames: int = 24,
    fps: int = 12,
    damage: Callable[[int, bytes], bytes | None] | None = None,
    audio_streams: int = 1,
) -> Path:
    """Write a 64x48 clip whose sound is `tone` in `codec` (every channel the same); return `path`.

    container: an FFmpeg muxer name ("avi" with MPEG-4 Part 2 video, like old
    cameras; "mp4" or "matroska" with H.264). Audio and video packets are
    interleaved as a camera writes them. damage(k, data) gets the k-th audio
    packet of the first audio stream and returns the bytes to write instead
    (None drops the packet). audio_streams: copies of the sound, as separate streams.
    """
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream("mpeg4" if container == "avi" else "libx264", rate=fps)
        if container != "avi":
            video.options = {"x264-params": "mbtree=0"}  # the same bytes in every process
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sounds = [out.add_stream(codec, rate=rate) for _ in range(audio_streams)]
        for sound in sounds:
            sound.layout = layout
        total = frames * rate // fps
        channels = sounds[0].layout.nb_channels
        samples = np.repeat(tone(np.arange(total) / rate)[None], channels, axis=0)  # (C, total)
        # Through a resampler: PCM encoders take packed integers, AC3 and AAC planar floats.
        resamplers = [av.AudioResampler(format=s.codec_context.format.name, layout=layout, rate=rate) for s in sounds]
        damaged = 0  # audio packets of the first stream seen so far

        def mux(stream_index: int, packets: Iterable[av.Packet], sound: av.audio.stream.AudioStream) -> None:
            nonlocal damaged
            for packet in packets:
                if stream_index == 0 and damage is not None:
                    packet = _damaged(packet, damage(damaged, bytes(packet)), sound)
                    damaged += 1
                if packet is not None:
                    out.mux(packet)

        written = 0
        for index in range(frames):
            while written < min(total, (index + 1) * rate // fps):
                chunk = np.ascontiguousarray(samples[:, written : written + _AAC_FRAME])
                for stream_index, (sound, resampler) in enumerate(zip(sounds, resamplers)):
                    frame = _planar_frame(chunk, layout, rate, written)
                    for converted in resampler.resample(frame):
                        mux(stream_index, sound.encode(converted), sound)
                written += chunk.shape[1]
            picture = av.VideoFrame.from_ndarray(pattern(index, 64, 48), format="rgb24")
            picture.pts = index
            out.mux(video.encode(picture))
        out.mux(video.encode())
        for stream_index, sound in enumerate(sounds):
            mux(stream_index, sound.encode(None), sound)
    return path


def corrupt_packets(indices: Iterable[int], *, seed: int = 0) -> Callable[[int, bytes], bytes]:
    """A `damage` for `make_sound_clip`: the packets at `indices` become random bytes of the same length."""
    chosen, rng = set(indices), np.random.default_rng(seed)
    return lambda k, data: rng.integers(0, 256, len(data), dtype=np.uint8).tobytes() if k in chosen else data


def truncate_packets(indices: Iterable[int]) -> Callable[[int, bytes], bytes]:
    """A `damage` for `make_sound_clip`: the packets at `indices` lose their last two thirds."""
    chosen = set(indices)
    return lambda k, data: data[: len(data) // 3] if k in chosen else data


def mark_audio_codec_unknown(path: Path) -> Path:
    """Give the first audio stream of an AVI file a format tag no codec has (0x7777); return `path`.

    FFmpeg then opens the stream as audio of an unknown codec: it plays as a
    silent video, and PyAV has no decoder for it.
    """
    data = bytearray(path.read_bytes())
    header = data.find(b"strf", data.find(b"auds"))  # the audio stream's WAVEFORMATEX
    if header < 0:
        raise ValueError(f"{path}: no AVI audio stream header")
    data[header + 8 : header + 10] = (0x7777).to_bytes(2, "little")  # wFormatTag, after the chunk's id and size
    path.write_bytes(bytes(data))
    return path


def _planar_frame(chunk: np.ndarray, layout: str, rate: int, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(chunk.astype(np.float32), format="fltp", layout=layout)
    frame.sample_rate, frame.pts = rate, pts
    return frame


def _damaged(packet: av.Packet, data: bytes | None, stream: av.audio.stream.AudioStream) -> av.Packet | None:
    if data is None:
        return None
    copy = av.Packet(data)
    copy.pts, copy.dts, copy.duration, copy.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
    copy.stream = stream
    return copy


def clip_project(root: Path, *, frames: int, size: tuple[int, int] = (64, 48)) -> Path:
    """A folder with a silent test clip, the sample Starry Night as style, and a one-job manifest: its path."""
    import shutil

    make_clip(root / "clip.mp4", frames=frames, fps=12, size=size, audio=False)
    (root / "styles").mkdir(exist_ok=True)
    shutil.copy(Path(__file__).resolve().parent.parent / "samples" / "styles" / "starry_night.jpg",
                root / "styles" / "s.jpg")
    manifest = root / "p.yaml"
    manifest.write_text("version: 1\njobs:\n"
                        "  - {name: clip, input: clip.mp4, style: styles/s.jpg, output: out/clip.mp4}\n")
    return manifest
