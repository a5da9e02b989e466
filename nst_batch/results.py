"""What a unit of work gives back, typed: `UnitResult` with `ImageMetrics` or `VideoMetrics`.

They travel from the task that made them (in this process or a Ray worker) to the runner, the
progress view and the summary as these types; the ledger keeps them as JSON (`record()`), and the
report reads them back from there (`metrics_from_record`). Plain data: they cross to a Ray driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import ClassVar

from nst_batch.memory_plan import MemoryPlan

__all__ = ["ImageMetrics", "VideoMetrics", "UnitMetrics", "UnitResult", "metrics_from_record", "JsonValue"]

JsonValue = object  # what json.dumps takes: the ledger's record of a result


class _Record:
    """A result's fields as the ledger's JSON: `OPTIONAL` fields only when set, the others always."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ()

    def record(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.name in self.OPTIONAL:
                continue
            out[f.name] = value.as_metrics() if isinstance(value, MemoryPlan) else value
        return out

    @classmethod
    def _known(cls, data: Mapping[str, object]) -> dict[str, object]:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return {k: v for k, v in data.items() if k in names}


@dataclass
class ImageMetrics(_Record):
    """One picture's run: its iterations and loss curve, where it ran, and what the log must say of it."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("terms", "batch", "memory", "style_weight", "strength_probes",
                                           "mask_note", "image_warning", "retried")
    iterations: int = 0
    history: list[float] = field(default_factory=list)  # the total loss after each iteration, rounded
    stages: list[int] = field(default_factory=list)  # where each scale of coarse-to-fine began in `history`
    device: str = ""
    terms: dict[str, float] | None = None  # each loss term at the end (a picture alone)
    batch: int | None = None  # `batch_size`: how many pictures it was stylized with
    memory: MemoryPlan | None = None  # the memory plan it ran with
    style_weight: float | None = None  # `strength`: the weight found, and the probes that found it
    strength_probes: list[list[float]] | None = None
    mask_note: str | None = None  # regions: which masks a mirrored folder lacks
    image_warning: str | None = None  # what the output loses of the input (bits, animation frames)
    retried: str | None = None  # the fault that earned it a second attempt

    @classmethod
    def from_record(cls, data: Mapping[str, object]) -> ImageMetrics:
        known = cls._known(data)
        memory = known.get("memory")
        known["memory"] = MemoryPlan.from_metrics(memory) if isinstance(memory, Mapping) else None
        return cls(**known)  # type: ignore[arg-type]

    @property
    def warning(self) -> str | None:
        return self.image_warning


@dataclass
class VideoMetrics(_Record):
    """One video's run: frames, flicker (E_warp, against the input's), cuts, sound, seams."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("style_weight", "strength_probes", "segments", "e_warp_seam",
                                           "e_warp_inside", "flicker_ratio_seam", "flicker_ratio_inside",
                                           "mask_note", "retried")
    frames: int = 0
    frames_stylized: int = 0  # in this run (the others were saved by an earlier one)
    fps: float = 0.0
    cuts: list[int] = field(default_factory=list)  # 1-based frames a scene cut restarted
    e_warp: float | None = None
    e_warp_input: float | None = None
    flicker_ratio: float | None = None
    e_warp_pairs: int = 0
    e_warp_skipped: int = 0
    iterations_cold: float | None = None
    iterations_warm: float | None = None
    content_per_frame: list[float | None] = field(default_factory=list)
    style_per_frame: list[float | None] = field(default_factory=list)
    memory_plans: dict[str, int] = field(default_factory=dict)  # plan kind -> frames
    has_audio: bool = False
    audio_warning: str | None = None
    device: str = ""
    style_weight: float | None = None
    strength_probes: list[list[float]] | None = None
    segments: int | None = None  # `video.segment_frames`: the segments, and the flicker at and between seams
    e_warp_seam: float | None = None
    e_warp_inside: float | None = None
    flicker_ratio_seam: float | None = None
    flicker_ratio_inside: float | None = None
    mask_note: str | None = None
    retried: str | None = None

    @classmethod
    def from_record(cls, data: Mapping[str, object]) -> VideoMetrics:
        return cls(**cls._known(data))  # type: ignore[arg-type]

    @property
    def warning(self) -> str | None:
        return self.audio_warning


UnitMetrics = ImageMetrics | VideoMetrics


def metrics_from_record(data: object, *, video: bool) -> UnitMetrics:
    """A ledger record's `metrics` (JSON), typed; what an older ledger lacks takes its default."""
    found = data if isinstance(data, Mapping) else {}
    return VideoMetrics.from_record(found) if video else ImageMetrics.from_record(found)


@dataclass
class UnitResult:
    loss: float
    metrics: UnitMetrics
