"""Sound never costs the clip: damaged, unreadable, surround and odd audio on clips made by tests/videogen.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import nst_batch.media.audio as audio
from conftest import write_manifest
from cli_helpers import nst_here
from nst_batch.media.video import EncodeResult, encode_video, probe_video

import videogen  # tests/videogen.py: pytest puts tests/ on sys.path (rootdir-less layout)

FPS = Fraction(12)
FRAMES = [videogen.pattern(i, 64, 48) for i in range(24)]  # 2 s of video
DAMAGED = [10, 20, 30]  # audio packet indices: about 0.3, 0.6 and 0.9 s into the clip


def _encode(src: Path, out: Path, *, start: float = 0.0, end: float | None = None) -> EncodeResult:
    frames = FRAMES[round(start * 12) : None if end is None else round(end * 12)]
    return encode_video(frames, out, fps=FPS, audio_source=src, audio_start=start, audio_end=end)


def _sound(path: Path) -> tuple[np.ndarray, int, float] | None:
    """The output's decoded audio (C, n), its rate and its stream's duration in seconds; None without audio."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        samples = np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1)
        return samples, stream.rate, float(stream.duration * stream.time_base)


def _video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _follows_tone(samples: np.ndarray, rate: int, begin: float, end: float, *, offset: float = 0.0) -> float:
    """How well the output's first channel over [begin, end) s matches the source's tone at those times.

    The best correlation within 6 ms either way: AC3 and PCM-in-AVI sources have no edit list to
    hide their encoder's delay (256 samples for AC3), so their sound is a little late already; a
    lost or an extra packet moves it by 21 ms or more.
    """
    first, last = round(begin * rate), round(end * rate)
    reach = rate * 6 // 1000
    t = np.arange(first, last) / rate + offset
    expected = videogen.tone(t)
    return max(float(np.corrcoef(samples[0, first + lag : last + lag], expected)[0, 1])
               for lag in range(-reach, reach + 1))


def _silent_windows(samples: np.ndarray, rate: int) -> int:
    """How many 10 ms windows of the first channel, between 0.1 s and 1.9 s, are (nearly) silent."""
    size = rate // 100
    windows = samples[0, rate // 10 : rate * 19 // 10].reshape(-1, size)
    return int((np.sqrt((windows**2).mean(axis=1)) < 0.01).sum())


# --- damaged packets: silence in their place ---------------------------------------------------


@pytest.mark.parametrize("container, codec", [("avi", "ac3"), ("mp4", "aac"), ("matroska", "aac")])
@pytest.mark.parametrize("damage", [videogen.corrupt_packets, videogen.truncate_packets], ids=["corrupt", "truncated"])
def test_damaged_packets_become_silence(
    tmp_path: Path, container: str, codec: str, damage: Callable[..., Callable[[int, bytes], bytes]]
) -> None:
    src = videogen.make_sound_clip(tmp_path / "camera.avi", container=container, codec=codec, damage=damage(DAMAGED))
    out = tmp_path / "out.mp4"
    result = _encode(src, out)
    assert result == EncodeResult(frames=24, audio_warning="3 damaged audio packets replaced by silence")
    assert _video_frames(out) == 24
    sound = _sound(out)
    assert sound is not None
    samples, rate, duration = sound
    assert duration == pytest.approx(2.0, abs=0.05)
    assert samples.shape[1] / rate == pytest.approx(2.0, abs=0.05)
    # Silence where the packets were, and the sound after them still in step with the picture:
    # had the gaps been closed up, the chirp would arrive about 3 packets early.
    assert _silent_windows(samples, rate) >= 3
    assert _follows_tone(samples, rate, 1.2, 1.9) > 0.9


def test_damage_counted_inside_the_span_only(tmp_path: Path) -> None:
    src = videogen.make_sound_clip(tmp_path / "camera.avi", damage=videogen.corrupt_packets(DAMAGED))
    out = tmp_path / "span.mp4"
    result = _encode(src, out, start=0.5, end=1.5)  # AC3 packets are 32 ms: 20 and 30 are inside
    assert result.audio_warning == "2 damaged audio packets replaced by silence"
    sound = _sound(out)
    assert sound is not None and sound[2] == pytest.approx(1.0, abs=0.05)
    assert _follows_tone(sound[0], sound[1], 0.6, 0.95, offset=0.5) > 0.9


def test_float_pcm_decoding_to_nan_is_cleaned(tmp_path: Path) -> None:
    # The packets decode (PCM has no checksum) to NaN, which FFmpeg's AAC encoder refuses.
    def nan(k: int, data: bytes) -> bytes:
        return np.full(len(data) // 4, np.nan, dtype=np.float32).tobytes() if k in (5, 6, 7) else data

    src = videogen.make_sound_clip(tmp_path / "pcm.mkv", container="matroska", codec="pcm_f32le", damage=nan)
    out = tmp_path / "out.mp4"
    assert _encode(src, out) == EncodeResult(frames=24)
    sound = _sound(out)
    assert sound is not None and sound[2] == pytest.approx(2.0, abs=0.05)
    assert np.isfinite(sound[0]).all()


# --- unreadable sound: the video without it --------------------------------------------------


def test_unknown_audio_codec_gives_video_without_sound(tmp_path: Path) -> None:
    src = videogen.mark_audio_codec_unknown(videogen.make_sound_clip(tmp_path / "odd.avi", codec="pcm_s16le"))
    assert probe_video(src).has_audio
    out = tmp_path / "out.mp4"
    result = _encode(src, out)
    assert result == EncodeResult(frames=24, audio_warning="audio not readable (no decoder for its codec): "
                                                           "written without sound")
    assert _video_frames(out) == 24 and _sound(out) is None


def test_every_packet_damaged_gives_video_without_sound(tmp_path: Path) -> None:
    src = videogen.make_sound_clip(tmp_path / "camera.avi", damage=videogen.corrupt_packets(range(1000)))
    out = tmp_path / "out.mp4"
    result = _encode(src, out)
    assert result.frames == 24 and _video_frames(out) == 24 and _sound(out) is None
    assert result.audio_warning is not None
    assert re.fullmatch(r"audio not readable \(none of its \d+ packets decodes: .+\): written without sound",
                        result.audio_warning), result.audio_warning


def test_audio_stream_without_packets_gives_video_without_sound(tmp_path: Path) -> None:
    src = videogen.make_sound_clip(tmp_path / "empty.avi", damage=lambda k, data: None)
    out = tmp_path / "out.mp4"
    result = _encode(src, out)
    assert result == EncodeResult(frames=24, audio_warning="audio not readable (the audio stream has no packets): "
                                                           "written without sound")
    assert _sound(out) is None


def test_missing_audio_source_is_a_warning(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = _encode(tmp_path / "gone.mp4", out)
    assert result == EncodeResult(frames=24, audio_warning="audio not readable (file not found): written without sound")


def test_second_audio_stream_used_when_the_first_is_unreadable(tmp_path: Path) -> None:
    clip = videogen.make_sound_clip(tmp_path / "two.avi", codec="pcm_s16le", audio_streams=2)
    src = videogen.mark_audio_codec_unknown(clip)
    out = tmp_path / "out.mp4"
    assert _encode(src, out) == EncodeResult(frames=24)
    sound = _sound(out)
    assert sound is not None and _follows_tone(sound[0], sound[1], 0.2, 1.9) > 0.9


# --- failures half way: what was written is kept ------------------------------------------------


def test_source_failing_half_way_keeps_the_sound_so_far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = videogen.make_sound_clip(tmp_path / "camera.avi")
    convert = audio._Resampler.convert
    calls = 0

    def fail_late(self: audio._Resampler, frame: av.AudioFrame) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls > 30:  # 30 AC3 frames: 0.96 s
            raise av.InvalidDataError(1094995529, "Invalid data found when processing input")
        return convert(self, frame)

    monkeypatch.setattr(audio._Resampler, "convert", fail_late)
    out = tmp_path / "out.mp4"
    result = _encode(src, out)
    assert result.frames == 24 and _video_frames(out) == 24
    assert result.audio_warning is not None
    assert re.fullmatch(r"audio unreadable from 0\.\d s \(Invalid data found when processing input\): "
                        r"silence from there", result.audio_warning), result.audio_warning
    sound = _sound(out)
    assert sound is not None
    samples, rate, duration = sound
    assert duration == pytest.approx(2.0, abs=0.05)
    assert _follows_tone(samples, rate, 0.1, 0.8) > 0.9
    assert np.abs(samples[:, rate * 11 // 10 :]).max() < 0.01  # silence after the failure


def test_encoder_failing_half_way_ends_the_sound_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = videogen.make_sound_clip(tmp_path / "camera.avi")
    encode = audio.AudioTrack._encode
    calls = 0

    def fail_late(self: audio.AudioTrack, out: av.audio.stream.AudioStream, chunk: np.ndarray) -> None:
        nonlocal calls
        calls += 1
        if calls > 47:  # 47 AAC frames of 1024 samples at 48 kHz: 1.0 s
            raise av.FFmpegError(22, "Invalid argument")
        encode(self, out, chunk)

    monkeypatch.setattr(audio.AudioTrack, "_encode", fail_late)
    out = tmp_path / "out.mp4"
    result = _encode(src, out)
    assert result.frames == 24 and _video_frames(out) == 24
    assert result.audio_warning == "audio ends at 1.0 s (Invalid argument)"
    sound = _sound(out)
    assert sound is not None and sound[2] == pytest.approx(1.0, abs=0.05)


# --- every shape of sound a player plays ------------------------------------------------------

_EXT = {"avi": "avi", "mp4": "mp4", "matroska": "mkv"}


@pytest.mark.parametrize(
    "container, codec, layout, rate, channels",
    [
        ("avi", "ac3", "5.1", 48000, 2),  # a camcorder's Dolby Digital
        ("mp4", "aac", "5.1", 48000, 2),
        ("matroska", "pcm_s16le", "quad", 44100, 2),
        ("matroska", "pcm_s16le", "stereo", 37800, 2),  # a rate AAC does not have: 48 kHz
        ("avi", "pcm_u8", "mono", 11025, 1),
        ("avi", "adpcm_ima_wav", "mono", 22050, 1),  # an old still camera's movie mode
        ("matroska", "flac", "stereo", 96000, 2),
    ],
)
def test_any_layout_rate_and_format_becomes_aac(
    tmp_path: Path, container: str, codec: str, layout: str, rate: int, channels: int
) -> None:
    src = videogen.make_sound_clip(tmp_path / f"clip.{_EXT[container]}", container=container, codec=codec,
                                   layout=layout, rate=rate)
    out = tmp_path / "out.mp4"
    assert _encode(src, out) == EncodeResult(frames=24)
    with av.open(str(out)) as container_out:
        stream = container_out.streams.audio[0]
        assert (stream.codec_context.name, stream.channels) == ("aac", channels)
        assert stream.rate in av.codec.Codec("aac", "w").audio_rates
    sound = _sound(out)
    assert sound is not None
    samples, out_rate, duration = sound
    assert duration == pytest.approx(2.0, abs=0.05)
    assert _follows_tone(samples, out_rate, 0.1, 1.9) > 0.9


def test_sound_starting_late_and_ending_early_is_padded(tmp_path: Path) -> None:
    # Matroska keeps each packet's timestamp, so dropped packets leave a gap (AVI would close it up).
    def keep_middle(k: int, data: bytes) -> bytes | None:
        return data if 20 <= k < 70 else None  # AAC packets of 1024 samples at 48 kHz: ~0.4 s to ~1.5 s

    src = videogen.make_sound_clip(tmp_path / "mid.mkv", container="matroska", codec="aac", damage=keep_middle)
    out = tmp_path / "out.mp4"
    assert _encode(src, out) == EncodeResult(frames=24)
    sound = _sound(out)
    assert sound is not None
    samples, rate, duration = sound
    assert duration == pytest.approx(2.0, abs=0.05)
    assert np.abs(samples[:, : rate * 3 // 10]).max() < 0.01  # silence before the sound starts
    assert _follows_tone(samples, rate, 0.5, 1.4) > 0.9
    assert np.abs(samples[:, rate * 16 // 10 :]).max() < 0.01  # and after it ends


def test_resampler_follows_a_layout_change_mid_stream() -> None:
    resampler = audio._Resampler("stereo", 48000)
    for layout, rate in [("stereo", 48000), ("5.1", 48000), ("mono", 44100)]:
        channels = av.AudioLayout(layout).nb_channels
        frame = av.AudioFrame.from_ndarray(np.zeros((channels, 1024), np.float32), format="fltp", layout=layout)
        frame.sample_rate = rate
        assert resampler.convert(frame).shape[0] == 2


# --- end to end --------------------------------------------------------------------------------


def test_run_with_damaged_camera_sound(tmp_path: Path, style_image: Path) -> None:
    """The issue's camera AVI: every frame stylized, the video done, the damage said in log, summary, report."""
    videogen.make_sound_clip(tmp_path / "camera.avi", damage=videogen.corrupt_packets(DAMAGED))
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: camera, input: camera.avi, style: styles/starry.jpg, output: out/camera.mp4}
""")
    fast = ["--set", "size=32", "--set", "video.first_iterations=2", "--set", "video.iterations=1",
            "--weights", "random", "--device", "cpu"]
    res = nst_here("run", m, *fast, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    warning = "3 damaged audio packets replaced by silence"
    assert re.search(rf"done camera/camera\.mp4 .*WARNING: {warning}", res.stdout), res.stdout
    assert f"sound: camera/camera.mp4: {warning}" in res.stdout
    assert "1 done, 0 skipped, 0 failed" in res.stdout
    out = tmp_path / "out" / "camera.mp4"
    assert _video_frames(out) == 24
    sound = _sound(out)
    assert sound is not None and sound[2] == pytest.approx(2.0, abs=0.05)
    assert warning in (tmp_path / "out" / "report.html").read_text()
