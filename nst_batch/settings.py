"""Typed, frozen settings: the one home of every default.

Precedence (lowest first), implemented in `manifest.py`:
built-in defaults here < the manifest's `defaults:` < the job's own keys < `--set KEY=VALUE`.

Each field's `metadata["help"]` is its documentation; the manifest reference in
README.md and `nst-batch schema` are derived from the same place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

__all__ = ["Bounds", "VideoSettings", "Settings", "StyleSpec", "Region", "SweepCell", "Job", "settings_hash",
           "settings_to_dict", "flat_settings", "output_bits", "loss_weights", "FORMAT_BITS"]


@dataclass(frozen=True)
class Bounds:
    """A number setting's range, in its field: the manifest's check (`problem`) and the JSON Schema's
    minimum and maximum are made from it.

    `low` (`open_low`: the value must be above it, not at it), `at_least` (a floor with its own words, after
    `low`), `high`; `between`: one message naming both ends. The notes say what an end means.
    """

    low: float | None = None
    open_low: bool = False
    at_least: float | None = None
    high: float | None = None
    between: bool = False
    unit: str = ""
    low_note: str = ""
    high_note: str = ""
    tail: str = ""

    def problem(self, value: float) -> str | None:
        """What is wrong with `value`, as the manifest says it ("must be ..., got ..."), or None."""
        if value != value:  # NaN compares false with every end
            return f"must be a number, got {value}"
        low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        high = self.high is not None and value > self.high
        if self.between and (low or high):
            return (f"must be between {self.low:g}{self.low_note} and {self.high:g}{self.high_note}, "
                    f"got {value}{self.tail}")
        if low:
            return f"must be {'>' if self.open_low else '>='} {self.low:g}, got {value}"
        if self.at_least is not None and value < self.at_least:
            return f"must be at least {self.at_least:g}{self.unit}, got {value}"
        if high:
            return f"must be at most {self.high:g}{self.unit}{self.high_note}, got {value}"
        return None


_POSITIVE = Bounds(low=0, open_low=True)
_NON_NEGATIVE = Bounds(low=0)
# A content distance: near 1 little of the photo is left (BENCHMARKS.md §0: 0.98 erased a face).
_STRENGTH = Bounds(low=0, open_low=True, high=1.5, between=True, low_note=" (the photo kept whole)",
                   high_note=" (the photo nearly gone)", tail="; e.g. 0.3 mild, 0.5 even, 0.8 strong")


def _f(default: Any, help: str, *, bounds: Bounds | None = None,  # noqa: A002 - "help" reads best here
       hashed: Literal["always", "unless_default", "never"] = "always", term: str | None = None) -> Any:
    """A setting: its default, its help (README's table and `nst-batch schema`), its range (`bounds`), and
    whether it decides the pixels (`hashed`: always; `unless_default`, added after outputs were already being
    written, so hashed only when set away from its default; `never`: it does not choose the pixels).
    `term`: the weight of that loss term of the engine (`loss_weights`; engine.LossWeights' field)."""
    return field(default=default, metadata={"help": help, "bounds": bounds, "hashed": hashed, "term": term})


@dataclass(frozen=True)
class VideoSettings:
    """How a video is driven through the engine (see `video.py`)."""

    first_iterations: int = _f(500, "iterations for frame 1 and the first frame after a scene cut", bounds=_POSITIVE)
    iterations: int = _f(100, "iterations for later, warm-started frames", bounds=_NON_NEGATIVE)
    # Tuned on trained ImageNet VGG16 features over three real clips (BENCHMARKS.md, "Video on
    # trained features"): 30-300 flicker alike; 1e2 keeps content and style within 1.03x of
    # independently stylized frames; 1e3 smears texture along the flow and the content drifts.
    temporal_weight: float = _f(1.0e2, "weight of the temporal loss (Ruder et al. 2016)", bounds=_NON_NEGATIVE,
                                term="temporal")
    temporal_motion: float = _f(0.0, "the temporal weight grows by this share per px of a frame's median motion "
                                      "(at working size), at most 10x: 0 = one weight for every frame",
                                bounds=_NON_NEGATIVE, hashed="unless_default")
    warm_start: bool = _f(True, "start each frame from the previous result (false: every frame cold, for comparison)")
    flow: Literal["dis", "none"] = _f("dis", "optical flow for warm start: dis (OpenCV DIS) or none")
    flow_preset: Literal["ultrafast", "fast", "medium", "fine"] = _f(
        "medium", "DIS preset of the flow (ultrafast: coarsest; fine: medium refined 4x longer)",
        hashed="unless_default")
    flow_scale: float = _f(1.0, "flow computed on the frames this many times the working size (at most the "
                                "source's), then scaled down to it",
                           bounds=Bounds(low=1.0, high=8.0, between=True, low_note=" (the working size)"),
                           hashed="unless_default")
    warp: Literal["linear", "cubic", "lanczos"] = _f(
        "linear", "how the previous stylized frame is resampled along the flow: linear (bilinear) | cubic | lanczos "
                  "(sharper: a half-pixel bilinear shift blurs away the finest strokes, which are then re-painted)",
        hashed="unless_default")
    long_term: int = _f(0, "Ruder et al.'s long-term loss: a pixel the previous frame cannot explain is held to the "
                           "nearest of the frames 2, 4, 8 ... back (up to this many) where it was seen; 0 = the "
                           "previous frame only", bounds=Bounds(low=0, high=64, between=True, low_note=" (off)"),
                        hashed="unless_default")
    scene_cut: float = _f(0.5, "scene-cut threshold in [0,1]: a cut resets the warm start",
                          bounds=Bounds(low=0.0, high=1.0, between=True))
    start: float = _f(0.0, "seconds: first frame processed", bounds=_NON_NEGATIVE)
    end: float | None = _f(None, "seconds: stop before this time (null = to the end)")
    keep_frames: bool = _f(False, "keep the stylized PNG frames beside the video", hashed="never")
    segment_frames: int | None = _f(None, "split the video into segments of this many frames, stylized in parallel "
                                          "by `--executor ray` (null = one piece)", bounds=_POSITIVE)
    overlap: int = _f(5, "frames a segment starts early, warm-starting through them, then joined with the previous "
                         "segment's last frames at assembly (see seam)", bounds=_NON_NEGATIVE)
    seam: Literal["reoptimize", "crossfade"] = _f(
        "reoptimize", "how a segment's overlap frames join the previous segment: reoptimize (each seam frame "
                      "optimised again, held to the frame before it and, more and more, to the next segment's "
                      "version) | crossfade (pixels blended)")


@dataclass(frozen=True)
class Settings:
    """Everything that decides how one job is stylized."""

    size: int | Literal["original"] = _f(
        512, "longest side of the working image, px; `original`: each input's own size",
        bounds=Bounds(low=0, open_low=True, at_least=16, high=16384, unit=" px",
                      high_note=" (`original` works at each input's own size)"))
    iterations: int = _f(300, "optimizer iterations per image", bounds=_NON_NEGATIVE)
    optimizer: Literal["lbfgs", "adam"] = _f("lbfgs", "lbfgs | adam")
    learning_rate: float = _f(0.02, "Adam step size on [0,1] pixels (adam only)",
                              bounds=Bounds(low=0, open_low=True, high=1.0, high_note=" (a step on pixels in [0, 1])"))
    content_weight: float = _f(1.0, "weight of the content loss", bounds=_NON_NEGATIVE, term="content")
    # The losses are scale-free (engine/objective.py), so these hold for any trained VGG.
    # Tuned on trained ImageNet VGG16 features (BENCHMARKS.md, "Picture quality"): style 5
    # paints the style unmistakably and keeps faces and buildings recognisable (3: mild,
    # 10-30: the photo fades); tv 2 removes L-BFGS's colour speckle at no measured cost.
    style_weight: float = _f(5.0, "weight of the style loss (2-3: more of the photo; 10-30: more of the style)",
                             bounds=_NON_NEGATIVE, term="style")
    strength: float | None = _f(
        None, "aim at a strength instead of a weight: the content distance each picture keeps (0.3 mild, 0.5 even, "
              "0.8 strong), its style weight found by a short search on the coarse scale, in the ledger "
              "(null = style_weight for every picture)", bounds=_STRENGTH, hashed="unless_default")
    tv_weight: float = _f(2.0, "weight of the total-variation (smoothness) loss", bounds=_NON_NEGATIVE, term="tv")
    # Gatys et al.'s features are the ReLU outputs of their Caffe net (as in jcjohnson's
    # neural-style, neural-style-pt and crowsonkb): `reluX_Y`. `convX_Y` names the
    # convolution's own output, before its ReLU.
    content_layers: tuple[str, ...] = _f(("relu4_2",), "VGG layers for the content loss (reluX_Y: after the ReLU; "
                                                      "convX_Y: before it)")
    style_layers: tuple[str, ...] = _f(
        ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), "VGG layers for the style loss"
    )
    style_layer_weights: tuple[float, ...] | None = _f(None, "one weight per style layer (null = equal)")
    style_scale: float = _f(1.0, "size of the style image relative to the working size",
                            bounds=Bounds(low=0, open_low=True, high=10.0,
                                          high_note=" (the style image at that many times the working size)"))
    style_border: Literal["trim", "keep"] = _f(
        "trim", "a uniform border around a style image (a frame, a mat, bars): trim (found and cut off on read, "
                "said in the log) | keep", hashed="never")
    init: str = _f("content", "content | noise | path to an image")
    preserve_colors: bool = _f(False, "keep the content's colours: only luminance is stylized")
    output_size: Literal["working", "original"] = _f(
        "working", "write outputs at the working size or the input's own size")
    pooling: Literal["max", "avg"] = _f("max", "VGG pooling: max | avg")
    # Zeros, as trained: reflect and replicate painted no less of a rim on trained VGG16 features
    # (BENCHMARKS.md, "Edges"); the dark rim was the style's frame (style_border).
    padding: Literal["zeros", "reflect", "replicate"] = _f(
        "zeros", "what the VGG's convolutions see past the picture's edge: zeros (as trained) | reflect | replicate",
        hashed="unless_default")
    seed: int = _f(0, "random seed (noise init, random weights)", bounds=_NON_NEGATIVE)
    device: str = _f("auto", "auto | cpu | cuda | cuda:N | mps", hashed="never")
    model: Literal["vgg19", "vgg16"] = _f(
        "vgg19", "the VGG network: vgg19 | vgg16 (cheaper; no conv3_4, conv4_4, conv5_4)", hashed="unless_default")
    weights: str = _f("imagenet", "imagenet (torchvision's file for `model`) | random | path to a .pth state dict")
    preprocess: Literal["auto", "torchvision", "caffe"] = _f(
        "auto", "input the weights expect: torchvision (RGB in [0,1], ImageNet mean/std) | caffe (BGR, 0-255, "
                "mean pixel subtracted; neural-style-pt's files) | auto (detected from the file, stated in the log)",
        hashed="unless_default")
    format: Literal["png", "jpg"] = _f("png", "output image format: png | jpg")
    bit_depth: Literal["auto", 8, 16] = _f(
        "auto", "bits per channel of image outputs: auto (16 for a 16-bit PNG/TIFF input with format png, else 8) "
                "| 8 | 16 (png only); videos are 8-bit", hashed="unless_default")
    quality: int = _f(95, "JPEG quality 1-100 (jpg only)", bounds=Bounds(low=1, high=100, between=True))
    tolerance: float = _f(1.0e-3, "stop early when the relative loss change stays below this for 10 iterations "
                                  "(0 = never); each scale stops by itself", bounds=_NON_NEGATIVE)
    scales: tuple[float, ...] = _f(
        (0.5, 1.0), "coarse-to-fine schedule: fractions of `size`, ascending, ending at 1.0; iterations split evenly "
                "(cold starts only; warm-started video frames run at full size)", hashed="unless_default")
    precision: Literal["fp32", "tf32", "bf16"] = _f(
        "tf32", "arithmetic of the VGG forward on CUDA: fp32 | tf32 | bf16 (autocast; Grams and losses stay fp32); "
                "on the CPU tf32 is fp32", hashed="unless_default")
    memory_saving: bool = _f(False, "recompute VGG activations in the backward pass (checkpointing per block): "
                                    "much less memory on big frames, about a third more time per iteration",
                             hashed="never")
    memory_limit: float | None = _f(
        None, "GiB one picture's optimisation may plan to use (null = what the device has free); a picture that "
              "needs more runs with memory_saving, then in tiles", bounds=_POSITIVE, hashed="never")
    compile: bool = _f(False, "torch.compile the VGG forward (first image of a job pays the compile time)",
                       hashed="never")
    batch_size: int = _f(1, "images of the same working size optimized together as one batch (GPU throughput; "
                            "local executor); 1 = one at a time", bounds=_POSITIVE, hashed="unless_default")
    video: VideoSettings = field(default_factory=VideoSettings, metadata={"help": "video settings"})


@dataclass(frozen=True)
class StyleSpec:
    image: Path
    weight: float = 1.0


@dataclass(frozen=True)
class Region:
    """A part of each picture with a style of its own (`regions:` in the manifest; Gatys et al. 2017).

    `mask`: a grayscale image (white = the region, soft edges blend), a folder mirroring a folder input's
    paths (same stem, any image format; or for a video a mask video or a folder of numbered frames of that
    stem), a mask video, or a folder of numbered mask frames. `styles` () with `style_weight` 0: the photo
    kept there. `style_weight`, `style_scale`: None for the job's.
    """

    mask: Path
    styles: tuple[StyleSpec, ...] = ()
    style_weight: float | None = None
    style_scale: float | None = None
    source: str = ""  # "file:line" of the region in the manifest, for messages


@dataclass(frozen=True)
class SweepCell:
    """Where a job stands in a sweep (`sweep:` in the manifest, `--sweep` on the command line): the job it
    was made from, the folder that holds every combination's outputs, and its own values, in the sweep's
    order of keys (`style` by its image's name)."""

    of: str
    root: Path
    values: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Job:
    """One manifest job, resolved: absolute paths and complete settings."""

    name: str
    input: Path
    styles: tuple[StyleSpec, ...]
    output: Path
    settings: Settings
    source: str = ""  # "file:line" of the job in the manifest, for messages
    exclude: tuple[str, ...] = ()  # globs of files a folder input leaves out, relative to the folder
    memory_share: float = 1.0  # of the memory budget its pictures may plan with: halved by a retry after out-of-memory
    sweep: SweepCell | None = None  # one combination of a sweep: a job of its own, in a folder of its own
    regions: tuple[Region, ...] = ()  # parts of each picture with styles of their own; `styles` paints the rest


def settings_to_dict(settings: Settings) -> dict[str, object]:
    """Plain JSON-able dict (tuples become lists)."""
    return cast(dict[str, object], json.loads(json.dumps(dataclasses.asdict(settings))))


def flat_settings(data: Mapping[str, object]) -> dict[str, object]:
    """A settings dict (`settings_to_dict`, or one recorded) with its keys as `--set` names them:
    {"size": 48, "video.iterations": 100, ...}."""
    out = {k: v for k, v in data.items() if k != "video"}
    video = data.get("video")
    if isinstance(video, Mapping):
        out.update({f"video.{k}": v for k, v in video.items()})
    return out


def _hashing(cls: type, how: str) -> dict[str, Any]:
    """{name: default as JSON} of `cls`'s settings whose field says `hashed=how`."""
    defaults = json.loads(json.dumps(dataclasses.asdict(cls())))
    return {f.name: defaults[f.name] for f in dataclasses.fields(cls) if f.metadata.get("hashed") == how}


# From each field's `hashed`. Settings that do not choose the pixels are left out of the hash, so that, say,
# moving a resumed run from one GPU to another does not redo finished work (`memory_limit`, like the memory
# a device has free, can make a big picture run in tiles: its memory plan is in the ledger; `style_border`'s
# effect is hashed instead, below). Settings added after outputs were already being written are left out
# while at their default, so that an upgrade does not redo finished work.
_NOT_HASHED = tuple(_hashing(Settings, "never"))
_VIDEO_NOT_HASHED = tuple(_hashing(VideoSettings, "never"))
_HASHED_UNLESS_DEFAULT = _hashing(Settings, "unless_default")
_VIDEO_HASHED_UNLESS_DEFAULT = _hashing(VideoSettings, "unless_default")


# Bumped when the same settings give other pixels (2: scale-free losses, ReLU layers,
# coarse-to-fine by default, x264 without mbtree), so that outputs made by an older objective
# are made again rather than kept as done. (A style image's border trimmed, `style_border:
# trim`, is not a bump: the border each style lost is in the hash, `trimmed`, so only the
# outputs of a framed style are made again; a style without one gives the pixels it gave.)
OBJECTIVE_VERSION = 2
# Bumped when the same settings give other video frames.
VIDEO_VERSION = 2


def settings_hash(settings: Settings, styles: tuple[StyleSpec, ...], extra: Mapping[str, object] | None = None, *,
                  kind: Literal["image", "video"] = "video",
                  trimmed: Sequence[tuple[int, int, int, int]] = (), regions: Sequence[Region] = (),
                  region_trims: Sequence[Sequence[tuple[int, int, int, int]]] = ()) -> str:
    """A short hash of everything that decides the pixels of an output of `kind`.

    An image's leaves out the video settings, so that tuning them does not redo finished photos.
    `trimmed`: the border (top, bottom, left, right px) each style image loses on read (`style_border`);
    `style_border` itself is not hashed, its effect is: a style without a border hashes as it always did.
    `regions`: their styles and weights (each input's mask file is part of its input's identity, ledger.py);
    `region_trims`: the border each region's styles lose on read, as `trimmed`.
    """
    data: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(settings)))  # internal: JSON, as hashed
    if kind == "image":
        data.pop("video")
    for key in _NOT_HASHED:
        data.pop(key, None)
    if kind == "video":
        data.pop("bit_depth", None)  # images only: video frames are 8-bit
        for key in _VIDEO_NOT_HASHED:
            data["video"].pop(key, None)
        if data["video"].get("segment_frames") is None:  # unsegmented: the overlap plays no part
            data["video"].pop("segment_frames", None)
            data["video"].pop("overlap", None)
            data["video"].pop("seam", None)
        # 2: the raw stylized frame chains (colours kept at assembly), warm start from the warped frame
        # everywhere, flicker measured with an independent flow.
        data["video"]["version"] = VIDEO_VERSION
        for key, default in _VIDEO_HASHED_UNLESS_DEFAULT.items():
            if data["video"].get(key) == default:
                data["video"].pop(key)
    for key, default in _HASHED_UNLESS_DEFAULT.items():
        if data.get(key) == default:
            data.pop(key)
    data["styles"] = [{"image": _file_identity(s.image), "weight": s.weight} for s in styles]
    for entry, border in zip(data["styles"], trimmed):
        if any(border):
            entry["trimmed"] = list(border)
    if regions:
        data["regions"] = [{"mask": str(r.mask), "styles": [{"image": _file_identity(s.image), "weight": s.weight}
                                                            for s in r.styles],
                            "style_weight": r.style_weight, "style_scale": r.style_scale} for r in regions]
        for entry, borders in zip(data["regions"], region_trims):
            for style, border in zip(entry["styles"], borders):
                if any(border):
                    style["trimmed"] = list(border)
    data["extra"] = extra or {}
    data["objective"] = OBJECTIVE_VERSION
    if settings.weights not in ("imagenet", "random") and Path(settings.weights).is_file():
        data["weights"] = _file_identity(Path(settings.weights))  # another file at the same path: redo
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def loss_weights(settings: Settings) -> dict[str, float]:
    """The weight of each loss term of the engine, by term (`engine.LossWeights`' fields): the settings whose
    field spec names a `term`, the video's among them."""
    return {f.metadata["term"]: float(getattr(owner, f.name))
            for owner in (settings, settings.video) for f in dataclasses.fields(owner) if f.metadata.get("term")}


# The most bits per channel each output `format` holds (`bit_depth`; media/images.py writes by suffix).
FORMAT_BITS = {"png": 16, "jpg": 8}


def output_bits(settings: Settings, input_bits: int) -> int:
    """Bits per channel an image output is written at: `bit_depth`, or with `auto` the input's (8 or 16)
    where `format` holds it (png), else 8. (`bit_depth: 16` with jpg is refused by the manifest.)"""
    if settings.bit_depth == "auto":
        return min(input_bits, FORMAT_BITS[settings.format])
    return int(settings.bit_depth)


def working_side(size: int | str, height: int, width: int) -> int:
    """The longest side a picture of `height` x `width` is stylized at: `size`, or its own with `size: original`."""
    return max(height, width) if size == "original" else int(size)
