"""Audio for `encode_video`: a span of a source's sound, re-encoded to AAC, that never costs the clip.

The video is the product; its sound comes along when it can. What can go
wrong with the sound is reported in `AudioTrack.warning`, one line, and never
raised:

- a packet that does not decode (a damaged AC3 frame in a camera AVI) is
  skipped: the next good frame's timestamp places it, so its time becomes
  silence, and the damaged packets inside the span are counted;
- a source whose sound cannot be read at all (no decoder for its codec, no
  packet that decodes, no packets, a layout that cannot be mixed down) gives a
  video without an audio stream;
- a failure half way (the demuxer or the resampler gives up) keeps the sound
  written so far and continues with silence to the end of the video; a
  failure of the AAC encoder or the muxer ends the audio stream there.

Whatever the source (any rate, sample format, 5.1 or more channels, a
layout that changes mid-stream), the output is AAC, mono for mono sources and
stereo otherwise, as long as the video: sound that starts late or ends early
is padded with silence.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np

__all__ = ["AudioTrack"]

# AAC-LC codes 1024 samples per frame; only the last frame may be shorter
# (FFmpeg's aac encoder has AV_CODEC_CAP_SMALL_LAST_FRAME).
_AAC_FRAME_SIZE = 1024
_AAC_FALLBACK_RATE = 48000

# What PyAV raises when one packet does not decode: FFmpeg's errors (InvalidDataError,
# or an "undefined" error number from the AC3 decoder), and ValueError for a codec
# without a decoder.
_DECODE_ERRORS = (av.FFmpegError, ValueError)


class _Unreadable(Exception):
    """The source's audio cannot be read at all; the message says why."""


@dataclass(frozen=True)
class _Choice:
    """The source audio stream to use, and the AAC stream it becomes."""

    index: int  # stream index in the source file
    rate: int  # output sample rate, Hz
    layout: str  # output layout, "mono" or "stereo"


@dataclass
class _Damage:
    """Counts the packets that did not decode inside the span [begin, end), in source seconds."""

    begin: float
    end: float | None
    packets: int = 0

    def add(self, packet: av.Packet) -> None:
        if not packet.size:  # the flush packet demux() adds at the end
            return
        if packet.pts is not None and packet.time_base is not None:
            start = float(packet.pts * packet.time_base)
            stop = start + float((packet.duration or 0) * packet.time_base)
            if stop < self.begin or (self.end is not None and start >= self.end):
                return  # outside the span: costs the output nothing
        self.packets += 1


@dataclass
class _Stop:
    """Where and why the audio stopped following its source."""

    seconds: float
    reason: str


class AudioTrack:
    """Copies a span of a source file's audio into an output container as AAC.

    Re-encoding (rather than copying packets) is what lets the span start and
    end on any sample: compressed packets cannot be cut. Samples are placed by
    the source frames' timestamps, so gaps in the source (and skipped damaged
    packets) stay gaps, filled with silence.

    Use `open`, then `write_until` as the video advances (it keeps the two
    streams interleaved), `finish` at the end of the video, and `close`.
    A track opened on a source without usable sound writes nothing.
    """

    def __init__(
        self,
        out: av.audio.stream.AudioStream | None = None,
        source: av.container.InputContainer | None = None,
        chunks: Iterator[np.ndarray] | None = None,  # (C, 1024) float32, endless
        damage: _Damage | None = None,
        *,
        unreadable: str | None = None,
    ) -> None:
        self._out, self._source, self._chunks, self._damage = out, source, chunks, damage
        self._unreadable = unreadable  # why there is no audio stream, when the source has sound
        self._lost: _Stop | None = None  # the source failed half way: silence from there
        self._ended: _Stop | None = None  # the encoder or muxer failed: no audio from there
        self._written = 0  # samples encoded so far

    @classmethod
    def open(
        cls, container: av.container.OutputContainer, source_path: Path | None, start: float, end: float | None
    ) -> AudioTrack:
        """Add an AAC stream for [start, end) of the source's sound (seconds from its first video frame).

        Call before anything is muxed into `container`. No source, or a source
        without an audio stream, gives a track that writes nothing and has no
        warning; a source whose sound cannot be read gives one that writes
        nothing and says why.
        """
        if source_path is None:
            return cls()
        try:
            choice = _choose_stream(Path(source_path))
        except _Unreadable as exc:
            return cls(unreadable=str(exc))
        if choice is None:
            return cls()
        try:
            source = av.open(str(source_path), metadata_errors="replace")
        except Exception as exc:  # noqa: BLE001 - an audio problem must not cost the video
            return cls(unreadable=_reason(exc))
        out = container.add_stream("aac", rate=choice.rate)
        out.layout = choice.layout
        out.codec_context.time_base = Fraction(1, choice.rate)
        origin = _video_origin(source) + start  # source time of output sample 0, seconds
        damage = _Damage(begin=origin, end=None if end is None else origin + (end - start))
        stream = cast(av.audio.stream.AudioStream, source.streams[choice.index])  # _choose_stream chose audio
        samples = _span_samples(source, stream, choice.rate, choice.layout, start, end, damage)
        # After the source's sound (and after `end`), silence: the track lasts as long as the video.
        chunks = _rebuffer(itertools.chain(samples, _silence(out.layout.nb_channels)), _AAC_FRAME_SIZE)
        return cls(out, source, chunks, damage)

    @property
    def warning(self) -> str | None:
        """One line on what the output's sound lost, or None when it came through whole."""
        if self._unreadable is not None:
            return f"audio not readable ({self._unreadable}): written without sound"
        parts = []
        damaged = self._damage.packets if self._damage is not None else 0
        if damaged:
            parts.append(f"{damaged} damaged audio packet{'s' if damaged != 1 else ''} replaced by silence")
        if self._lost is not None:
            parts.append(f"audio unreadable from {self._lost.seconds:.1f} s ({self._lost.reason}): silence from there")
        if self._ended is not None:
            parts.append(f"audio ends at {self._ended.seconds:.1f} s ({self._ended.reason})")
        return "; ".join(parts) or None

    def write_until(self, seconds: Fraction, *, final: bool = False) -> None:
        """Encode audio up to `seconds` of output; before the end, only whole AAC frames."""
        if self._out is None or self._chunks is None or self._ended is not None:
            return
        rate = self._out.rate
        target = int(seconds * rate)
        try:
            while self._written + (1 if final else _AAC_FRAME_SIZE) <= target:
                chunk = self._next_chunk(self._out, self._chunks)  # (C, n) float32
                if final:
                    chunk = chunk[:, : target - self._written]
                self._encode(self._out, chunk)
        except Exception as exc:  # noqa: BLE001 - an audio problem must not cost the video
            self._ended = _Stop(self._written / rate, _reason(exc))

    def finish(self, seconds: Fraction) -> None:
        """Write the audio up to `seconds` (the video's end) and drain the encoder; call once."""
        self.write_until(seconds, final=True)
        if self._out is None or self._ended is not None:
            return
        try:
            _mux(self._out, self._out.encode(None))
        except Exception as exc:  # noqa: BLE001 - the encoder's last few ms are lost, the video is whole
            self._ended = _Stop(self._written / self._out.rate, _reason(exc))

    def close(self) -> None:
        """Close the source file."""
        self._chunks = None  # finalises the demuxing generators before their container closes
        self._close_source()

    def _close_source(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def _next_chunk(self, out: av.audio.stream.AudioStream, chunks: Iterator[np.ndarray]) -> np.ndarray:
        try:
            return next(chunks)
        except Exception as exc:  # noqa: BLE001 - the source gave up half way: keep what was written
            self._lost = _Stop(self._written / out.rate, _reason(exc))
            self._close_source()
            self._chunks = _silence(out.layout.nb_channels)
            return next(self._chunks)

    def _encode(self, out: av.audio.stream.AudioStream, chunk: np.ndarray) -> None:
        # A damaged float PCM packet can decode to NaN or huge values, which FFmpeg's AAC
        # encoder refuses ("Input contains (near) NaN/+-Inf").
        clean = np.clip(np.nan_to_num(chunk, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(clean), format="fltp", layout=out.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = out.rate, self._written, Fraction(1, out.rate)
        _mux(out, out.encode(frame))
        self._written += chunk.shape[1]


def _mux(out: av.audio.stream.AudioStream, packets: list[av.Packet]) -> None:
    """Packets into the output file (a stream's `container` is typed as any container; this one is written)."""
    cast(av.container.OutputContainer, out.container).mux(packets)


# --- choosing the source stream --------------------------------------------------------------


def _choose_stream(path: Path) -> _Choice | None:
    """The audio stream a player would play (default first, then in order) that decodes; None if none.

    Raises _Unreadable, with the first stream's reason, when there is sound but none of it reads.
    """
    if not path.is_file():
        raise _Unreadable("file not found")
    try:
        with av.open(str(path), metadata_errors="replace") as source:
            default = av.stream.Disposition.default
            streams = sorted(source.streams.audio, key=lambda s: (not s.disposition & default, s.index))
            order = [s.index for s in streams]
    except Exception as exc:  # noqa: BLE001 - whatever FFmpeg or PyAV trip on, the video goes on
        raise _Unreadable(_reason(exc)) from exc
    reasons = []
    for index in order:
        try:
            with av.open(str(path), metadata_errors="replace") as source:  # a fresh demuxer for each stream tried
                return _try_stream(source, source.streams[index])
        except _Unreadable as exc:
            reasons.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - as above
            reasons.append(_reason(exc))
    if reasons:
        raise _Unreadable(reasons[0])
    return None


def _try_stream(source: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> _Choice:
    """Decode up to the stream's first good frame and convert it; raise _Unreadable if there is none."""
    if stream.codec_context is None:  # FFmpeg does not know the codec (an unknown tag)
        raise _Unreadable("no decoder for its codec")
    packets, error = 0, None
    for packet in source.demux(stream):
        if packet.size:
            packets += 1
        try:
            frames = packet.decode()
        except _DECODE_ERRORS as exc:
            error = exc
            continue
        for frame in frames:
            if not frame.samples:
                continue
            layout = "mono" if frame.layout.nb_channels == 1 else "stereo"
            rate = _aac_rate(frame.sample_rate)
            try:
                _Resampler(layout, rate).convert(frame)
            except (av.FFmpegError, ValueError) as exc:
                raise _Unreadable(f"cannot mix {frame.layout.name} down to {layout}: {_reason(exc)}") from exc
            return _Choice(index=stream.index, rate=rate, layout=layout)
    if not packets:
        raise _Unreadable("the audio stream has no packets")
    if error is not None:
        raise _Unreadable(f"none of its {packets} packets decodes: {_reason(error)}")
    raise _Unreadable(f"its {packets} packets decode to no sound")


def _aac_rate(rate: int) -> int:
    supported = av.codec.Codec("aac", "w").audio_rates or ()
    return rate if rate in supported else _AAC_FALLBACK_RATE


# --- samples ---------------------------------------------------------------------------------


def _span_samples(
    source: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    rate: int,
    layout: str,
    start: float,
    end: float | None,
    damage: _Damage,
) -> Iterator[np.ndarray]:
    """Yield (C, n) float32 planar pieces of the audio in [start, end), in order.

    Each decoded frame is placed by its timestamp, in output samples from
    `start`: what falls before 0 or from `limit` on is dropped, overlaps are
    dropped, and gaps (including a late first frame and skipped damaged
    packets) are filled with silence. A frame without a timestamp follows the
    previous one.
    """
    origin = _video_origin(source) + start  # source time of output sample 0, seconds
    limit = None if end is None else round((end - start) * rate)
    resampler = _Resampler(layout, rate)
    tolerance = rate // 100  # timestamp jitter under 10 ms is not a gap
    cursor: int | None = None  # output index of the next expected sample
    for frame in _decoded(source, stream, damage):
        position = round((frame.time - origin) * rate) if frame.time is not None else cursor or 0
        cursor = min(position, 0) if cursor is None else cursor
        if abs(position - cursor) <= tolerance:
            position = cursor
        samples = resampler.convert(frame)  # (C, n)
        if position > cursor:  # a gap: silence inside [0, limit), lazily (a timestamp may jump by hours)
            gap_start, gap_end = max(cursor, 0), position if limit is None else min(position, limit)
            yield from _silence(samples.shape[0], count=max(gap_end - gap_start, 0))
        elif position < cursor:
            samples, position = samples[:, cursor - position :], cursor
        yield _within(samples, position, limit)
        cursor = position + samples.shape[1]
        if limit is not None and cursor >= limit:
            return


def _decoded(
    source: av.container.InputContainer, stream: av.audio.stream.AudioStream, damage: _Damage
) -> Iterator[av.AudioFrame]:
    """Every frame of `stream` that decodes, in order; a packet that does not is skipped and counted."""
    for packet in source.demux(stream):
        try:
            frames = packet.decode()
        except _DECODE_ERRORS:
            damage.add(packet)
            continue
        yield from frames


class _Resampler:
    """Converts decoded frames to (C, n) float32 planar at one rate and layout.

    PyAV's AudioResampler is set up by the first frame it sees and refuses a
    frame of another format, layout or rate ("Frame does not match
    AudioResampler setup", e.g. a broadcast recording switching from stereo to
    5.1), so a new one is made when they change. Its downmix of more than two
    channels is libswresample's (centre and surrounds at -3 dB, LFE dropped).
    """

    def __init__(self, layout: str, rate: int) -> None:
        self.layout, self.rate = layout, rate
        self._resampler: av.AudioResampler | None = None
        self._source_format: tuple[str, str, int] | None = None

    def convert(self, frame: av.AudioFrame) -> np.ndarray:
        source_format = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._resampler is None or source_format != self._source_format:
            self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
            self._source_format = source_format
        frame.pts = None  # resample by content; placement is done by the caller
        pieces = [f.to_ndarray() for f in self._resampler.resample(frame)]
        channels = 1 if self.layout == "mono" else 2
        if not pieces:
            return np.zeros((channels, 0), dtype=np.float32)
        return np.concatenate(pieces, axis=1).astype(np.float32, copy=False)


def _within(samples: np.ndarray, position: int, limit: int | None) -> np.ndarray:
    """The part of samples (C, n), starting at output index `position`, inside [0, limit)."""
    begin = min(max(0, -position), samples.shape[1])
    stop = samples.shape[1] if limit is None else min(samples.shape[1], max(begin, limit - position))
    return samples[:, begin:stop]


def _silence(channels: int, count: int | None = None) -> Iterator[np.ndarray]:
    """`count` samples of silence (endless when None), in (C, <=1024) float32 pieces."""
    left = count
    while left is None or left > 0:
        size = _AAC_FRAME_SIZE if left is None else min(_AAC_FRAME_SIZE, left)
        yield np.zeros((channels, size), dtype=np.float32)
        if left is not None:
            left -= size


def _rebuffer(pieces: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Regroup (C, n) pieces into (C, size) chunks; the last one may be shorter."""
    pending: list[np.ndarray] = []
    count = 0
    for piece in pieces:
        if not piece.shape[1]:
            continue
        pending.append(piece)
        count += piece.shape[1]
        while count >= size:
            joined = np.concatenate(pending, axis=1)
            yield joined[:, :size]
            pending, count = [joined[:, size:]], count - size
    if count:
        yield np.concatenate(pending, axis=1)


def _video_origin(source: av.container.InputContainer) -> float:
    """Source time, in seconds, of the first video frame: the clock `start` and `end` count from."""
    # Cover art in audio files is a one-picture "video" stream marked attached_pic.
    streams = [s for s in source.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams or streams[0].start_time is None or streams[0].time_base is None:
        return 0.0
    return float(streams[0].start_time * streams[0].time_base)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
