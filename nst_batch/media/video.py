"""Video I/O: probe with PyAV, decode frames with OpenCV, encode H.264 with PyAV (its sound: media/audio.py).

Frames are numpy uint8 RGB arrays, (H, W, 3), upright as a player shows them.
Time is counted in frames: frame i of a video is at i / fps seconds after the
first frame, whatever its container timestamp says (`read_frames` never
seeks, so variable-frame-rate files are read frame by frame, in order).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from nst_batch.errors import MediaError
from nst_batch.media.atomic import atomic_path
from nst_batch.media.audio import AudioTrack
from nst_batch.media.images import read_image, resize_longest

__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "EncodeResult", "encode_video", "expected_frames", "frame_index",
           "frames_at", "is_video_file", "probe_video", "read_frames"]

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".mpg", ".mpeg", ".webm", ".m4v"})

# A file whose decoding stops before this share of its promised frames (and of
# its duration) is reported as truncated.
_TRUNCATED_BELOW = 0.9

# Tolerance when turning seconds into frame indices, in frames.
_FRAME_SLACK = Fraction(1, 1_000_000)

# FFmpeg demuxers for still images: they open a JPEG or PNG (whatever its name)
# as a one-frame "video" stream, which is not a video for us.
_IMAGE_DEMUXERS = frozenset({"image2", "image2pipe"})

# libavutil's AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic
# value 6 is SMPTE 170M (BT.601), AVColorRange 1 is limited ("tv") range.
_BT601 = 6
_LIMITED_RANGE = 1


@dataclass(frozen=True)
class EncodeResult:
    """What `encode_video` wrote.

    frames: video frames written.
    audio_warning: None when the audio came through whole (or the source had none);
        otherwise one line saying what was lost, for the log, the summary and the report.
    """

    frames: int
    audio_warning: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns from a video's container.

    width, height: as displayed, i.e. after `rotation`.
    fps: the average frame rate, exact (e.g. Fraction(30000, 1001)).
    frame_count: from the container's metadata (or duration × fps, rounded, when it
        has none); may be approximate, especially for variable frame rates.
    duration: seconds, from the container.
    rotation: degrees clockwise (0, 90, 180 or 270) a player turns the stored
        picture to show it upright; `read_frames` applies it.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration: float
    rotation: int
    has_audio: bool


def is_video_file(path: Path | str) -> bool:
    """True when the name ends in a video extension (mp4, mov, avi, mkv, mpg, mpeg, webm, m4v)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def probe_video(path: Path | str) -> VideoInfo:
    """Read a video's metadata and decode its first frame; raise MediaError if it has none."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: file not found")
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            return _probe_container(path, container)
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: not a readable video ({_reason(exc)})") from exc
    except (MediaError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever else PyAV trips on: one line naming the file
        raise MediaError(f"{path}: not a readable video ({type(exc).__name__}: {exc})") from exc


def read_frames(
    path: Path | str,
    *,
    start: float = 0.0,
    end: float | None = None,
    size: int | None = None,
    info: VideoInfo | None = None,
) -> Iterator[np.ndarray]:
    """Yield upright RGB frames i with start <= i / fps < end, each (H, W, 3) uint8.

    Frames are decoded in order (earlier ones are decoded and dropped, never
    seeked past). `size` scales each frame so its longer side is `size` px
    (INTER_AREA when shrinking), rounding both sides to even numbers.

    Raises MediaError when nothing can be decoded, when the span holds no
    frame, or, after yielding every frame it could decode, when decoding
    stops well short of what the container promised (a truncated file):
    "<file>: truncated video: decoded X of Y frames".

    `info`: the file's `probe_video`, where the caller has it (a video's geometry): not probed again.
    """
    path = Path(path)
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"read_frames: bad span [{start}, {end}) for {path}")
    if size is not None and size < 2:
        raise ValueError(f"read_frames: size must be at least 2, got {size}")
    info = probe_video(path) if info is None else info
    capture = _open_capture(path)
    try:
        yield from _read_span(capture, info, start=start, end=end, size=size)
    finally:
        capture.release()


def encode_video(
    frames: Iterable[np.ndarray] | Sequence[Path],
    out: Path,
    *,
    fps: Fraction,
    audio_source: Path | None = None,
    audio_start: float = 0.0,
    audio_end: float | None = None,
    crf: int = 18,
) -> EncodeResult:
    """Encode RGB frames (arrays, or paths of image files) to H.264 yuv420p in an MP4.

    Frame i gets timestamp i / fps exactly, so the video lasts n / fps.
    Odd widths or heights lose their last column or row. When
    `audio_source` has an audio stream, its [audio_start, audio_end) span
    (seconds from its first video frame, the same clock as `read_frames`) is
    re-encoded to AAC and cut at the end of the video; no audio stream in
    means no audio stream out. The file appears at `out` only when complete.

    The sound never costs the video: damaged audio packets become silence, a
    source whose sound cannot be read gives a video without sound, and
    `EncodeResult.audio_warning` says so (see `nst_batch.media.audio`).
    Raises MediaError for a problem with the video only.
    """
    out = Path(out)
    rate = _as_fraction(fps)
    if rate <= 0:
        raise ValueError(f"encode_video: fps must be positive, got {fps}")
    if audio_start < 0 or (audio_end is not None and audio_end <= audio_start):
        raise ValueError(f"encode_video: bad audio span [{audio_start}, {audio_end}) for {out}")
    with atomic_path(out) as tmp:
        try:
            count, audio_warning = _encode_to(tmp, _iter_frames(frames), rate, audio_source, audio_start, audio_end,
                                              crf)
            _check_frame_count(tmp, count)
        except av.FFmpegError as exc:
            raise MediaError(f"{out}: encoding failed ({_reason(exc)})") from exc
        except _OutputError as exc:
            raise MediaError(f"{out}: {exc}") from exc
    return EncodeResult(frames=count, audio_warning=audio_warning)


class _OutputError(Exception):
    """A problem with the video being written; `encode_video` names the output file."""


# --- probing ---------------------------------------------------------------------------------


def _probe_container(path: Path, container: av.container.InputContainer) -> VideoInfo:
    stream = _video_stream(path, container)
    fps = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not fps:
        raise MediaError(f"{path}: video stream has no frame rate")
    fps = Fraction(fps)
    duration = _duration(container, stream)
    first = next(iter(container.decode(stream)), None)
    if first is None:
        raise MediaError(f"{path}: video has no frames")
    rotation = _rotation(first, stream)
    width, height = first.width, first.height
    if rotation in (90, 270):
        width, height = height, width
    # Rounded, not `frame_index(duration)`: Matroska and WebM keep no count and store the duration
    # in whole milliseconds, rounded up as often as down (7 frames at 24 fps: 0.292 s, 7.008 frames).
    frame_count = stream.frames or max(round(duration * fps), 1)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        frame_count=int(frame_count),
        duration=duration,
        rotation=rotation,
        has_audio=len(container.streams.audio) > 0,
    )


def _video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if container.format.name in _IMAGE_DEMUXERS or container.format.name.endswith("_pipe"):
        raise MediaError(f"{path}: not a video (an image in {container.format.name} format)")
    # Cover art in audio files is a one-picture "video" stream marked attached_pic.
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        raise MediaError(f"{path}: not a video (no video stream)")
    return streams[0]


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _rotation(first: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    # FFmpeg exports rotation as a display matrix, attached by the decoder to
    # every frame; PyAV's VideoFrame.rotation reads it counter-clockwise
    # (libavutil/display.h). Files tagged the pre-2023 way carry a "rotate"
    # stream tag instead, already in degrees clockwise.
    clockwise = -first.rotation if first.rotation else _rotate_tag(stream)
    return (round(clockwise / 90) * 90) % 360


def _rotate_tag(stream: av.video.stream.VideoStream) -> float:
    try:
        return float(stream.metadata.get("rotate", 0))
    except ValueError:
        return 0.0


# --- reading ---------------------------------------------------------------------------------


def _open_capture(path: Path) -> cv2.VideoCapture:
    # Ask for FFmpeg explicitly: only that backend honours orientation metadata
    # (CAP_PROP_ORIENTATION_AUTO, opencv/opencv#15499). It is on by default but
    # cannot be passed to open() (the backend bails out on unknown open params).
    with _openable_name(path) as name:
        capture = cv2.VideoCapture(name, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture = cv2.VideoCapture(name)
    if not capture.isOpened():
        raise MediaError(f"{path}: OpenCV cannot open the video")
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return capture


@contextlib.contextmanager
def _openable_name(path: Path) -> Iterator[str]:
    """A name OpenCV can be given for `path`. OpenCV takes names as UTF-8 and crashes the process (SIGSEGV,
    OpenCV 5.1) on a str holding the surrogates Python decodes a non-UTF-8 name into (`cl\xe9.mp4` from an
    old camera or zip): such a file is opened here and handed over as /proc/self/fd/N (Linux, the only
    system whose names are bytes; macOS and Windows names are always Unicode)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise MediaError(f"{path}: cannot open the video: {exc.strerror}") from exc
        try:
            yield f"/proc/self/fd/{fd}"  # FFmpeg opens it again: the descriptor may close once it is open
        finally:
            os.close(fd)
        return
    yield str(path)


def _read_span(
    capture: cv2.VideoCapture, info: VideoInfo, *, start: float, end: float | None, size: int | None
) -> Iterator[np.ndarray]:
    # When OpenCV does not rotate (another backend, an old build), rotate here.
    manual_rotation = 0 if capture.get(cv2.CAP_PROP_ORIENTATION_AUTO) else info.rotation
    first, stop = frame_index(start, info.fps), None if end is None else frame_index(end, info.fps)
    index = _skip(capture, first)
    yielded, exhausted = 0, False
    while stop is None or index < stop:
        ok, bgr = capture.read()
        if not ok:
            exhausted = True
            break
        index += 1
        yield _convert(bgr, manual_rotation, size)
        yielded += 1
    if exhausted:  # the video ended before the span did
        _check_complete(info, index, capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
    if yielded == 0:
        span = f"[{start}, {end}) s"
        raise MediaError(f"{info.path}: no frames in {span} (video: {info.duration:.3f} s at {info.fps} fps)")


def frames_at(frames: Iterable[np.ndarray], picks: Iterable[int]) -> list[tuple[int, np.ndarray]]:
    """(index, frame) for each of `picks` that `frames` reaches, in index order, from one pass that stops after
    the last pick: a few frames of a clip (a strip, a contact sheet's cell, a preview) without holding it whole."""
    wanted = set(picks)
    last = max(wanted, default=-1)
    found = []
    for i, frame in enumerate(frames):
        if i > last:
            break
        if i in wanted:
            found.append((i, frame))
    return found


def frame_index(seconds: float, fps: Fraction | float) -> int:
    """The first frame index i with i / fps >= seconds: the one rule that turns a time asked for into
    a frame (`read_frames`' span; the count of frames in a span, `video.segments.expected_frames`).

    A millionth of a frame of slack absorbs float rounding: end=5/12 at
    12 fps is 0.41666666666666669, a hair above frame 5's exact time, yet
    means "up to frame 5".
    """
    return max(0, math.ceil(Fraction(seconds) * Fraction(fps) - _FRAME_SLACK))


def _skip(capture: cv2.VideoCapture, count: int) -> int:
    """Decode and drop `count` frames (grab() skips the colour conversion); return how many there were."""
    index = 0
    while index < count and capture.grab():
        index += 1
    return index


def _check_complete(info: VideoInfo, decoded: int, last_time: float) -> None:
    if decoded == 0:
        raise MediaError(f"{info.path}: no frame could be decoded")
    # Compare both the frame count and the time reached: AVI files mark
    # dropped frames with empty chunks that count in the header but decode to
    # nothing (OpenCV's tree.avi: 444 promised, 68 decoded, yet complete).
    short_of_frames = decoded < _TRUNCATED_BELOW * info.frame_count
    short_of_time = last_time < _TRUNCATED_BELOW * info.duration
    if short_of_frames and short_of_time:
        raise MediaError(f"{info.path}: truncated video: decoded {decoded} of {info.frame_count} frames")


def _convert(bgr: np.ndarray, rotation: int, size: int | None) -> np.ndarray:
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # (H, W, 3) uint8
    if rotation:
        rgb = _rotate_clockwise(rgb, rotation)
    if size is not None:
        rgb = resize_longest(rgb, size, even=True)
    return rgb


def _rotate_clockwise(image: np.ndarray, degrees: int) -> np.ndarray:
    codes = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    return cv2.rotate(image, codes[degrees])


# --- encoding --------------------------------------------------------------------------------


def _encode_to(
    tmp: Path,
    frames: Iterator[np.ndarray],
    fps: Fraction,
    audio_source: Path | None,
    audio_start: float,
    audio_end: float | None,
    crf: int,
) -> tuple[int, str | None]:
    """Write the file; return the video frames written and the audio's warning."""
    first = next(frames, None)
    if first is None:
        raise _OutputError("no frames to encode")
    height, width = _even_shape(first)
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = _add_video_stream(container, width, height, fps, crf)
        audio = AudioTrack.open(container, audio_source, audio_start, audio_end)
        try:
            count = 0
            for rgb in _chain(first, frames):
                audio.write_until(count / fps)  # keep the two streams interleaved
                container.mux(video.encode(_video_frame(rgb, count, width, height, fps)))
                count += 1
            container.mux(video.encode())
            audio.finish(count / fps)
        finally:
            audio.close()
    return count, audio.warning


def _add_video_stream(
    container: av.container.OutputContainer, width: int, height: int, fps: Fraction, crf: int
) -> av.video.stream.VideoStream:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.time_base = 1 / fps
    # mbtree=0: x264's macroblock-tree rate control reads uninitialised memory on small
    # frames (seen at 48x36, 96x72, 160x120 px), so the same frames gave different bytes
    # from one process to the next; without it the encode is a pure function of the
    # pixels, which resume and Ray-equals-local rely on (issue 14).
    stream.options = {"crf": str(crf), "x264-params": "mbtree=0"}
    # PyAV converts RGB to YUV with swscale's default BT.601 limited-range
    # matrix; say so in the file, or players assume BT.709 for HD sizes and
    # shift the colours.
    context = stream.codec_context
    context.colorspace = context.color_primaries = context.color_trc = _BT601
    context.color_range = _LIMITED_RANGE
    return stream


def _video_frame(rgb: np.ndarray, index: int, width: int, height: int, fps: Fraction) -> av.VideoFrame:
    if _even_shape(rgb) != (height, width):
        raise _OutputError(f"frame {index} is {rgb.shape[1]}x{rgb.shape[0]}, the first was {width}x{height}")
    cropped = np.ascontiguousarray(rgb[:height, :width])  # (H, W, 3) even
    frame = av.VideoFrame.from_ndarray(cropped, format="rgb24")
    frame.pts, frame.time_base = index, 1 / fps
    return frame


def _even_shape(rgb: np.ndarray) -> tuple[int, int]:
    height, width = rgb.shape[:2]
    if height < 2 or width < 2:
        raise _OutputError(f"frame of {width}x{height} px is too small to encode")
    return height - height % 2, width - width % 2


def _iter_frames(frames: Iterable[np.ndarray] | Sequence[Path]) -> Iterator[np.ndarray]:
    for item in frames:
        frame = read_image(Path(item)) if isinstance(item, (str, Path)) else np.asarray(item)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"encode_video: frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        yield frame


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _check_frame_count(path: Path, expected: int) -> None:
    with av.open(str(path), metadata_errors="replace") as container:
        stream = container.streams.video[0]
        packets = sum(1 for packet in container.demux(stream) if packet.size)
    if packets != expected:
        raise _OutputError(f"wrote {packets} video frames instead of {expected}")


# --- helpers ---------------------------------------------------------------------------------


def _as_fraction(fps: Fraction | float | int) -> Fraction:
    if isinstance(fps, Fraction):
        return fps
    # A float like 29.97 stands for 30000/1001: snap to the nearest simple ratio.
    return Fraction(fps).limit_denominator(1001)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def expected_frames(count: int, fps: Fraction | float, start: float, end: float | None) -> int | None:
    """Frames i with start <= i / fps < end among `count` (the container's count; None when it has none):
    the frames `read_frames(start=start, end=end)` yields, counted by its own rule (`frame_index`)."""
    if count <= 0 or fps <= 0:
        return None
    last = count if end is None else min(count, frame_index(end, fps))
    return max(0, last - frame_index(start, fps))
