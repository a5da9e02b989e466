"""Video on trained features: flicker against the input's own, content and style kept, warm-frame cost.

Every arm runs the product's frame loop (`video.frames.stylize_next`: warm start along the
DIS flow, temporal loss, scene cuts) over the same real frames, and is measured with
yardsticks the optimiser never saw:

  flicker   E_warp with OpenCV's Farneback flow and its own round-trip mask on the input
            frames (`video/metrics.py`), as a ratio to the input's own E_warp
  content   ||F(x) - F(c)||^2 / ||F(c)||^2 at relu4_2 of bench/quality.py's separately
  style     written VGG16, and mean over relu1_1..relu5_1 of ||G(x) - G(s)||^2 / ||G(s)||^2
  drift     the content distance of the last third of the frames over the first third
  cost      seconds per warm frame over seconds per cold frame (the first frame)

The `independent` arm (every frame cold, `video.warm_start=false`) is the reference for
quality: the goal is a flicker ratio <= 2 with mean content and style distances within
1.1x the independent arm's, no drift, and warm frames at <= 0.2x a cold frame's time.

  python bench/video.py extract --clips vtest,tree,megamind --frames 32 --size 256 --out .devdata/clips.npz
  python bench/video.py run --clips .devdata/clips.npz --weights ~/.cache/nst-batch-dev/vgg16-caffe.pth \
      --set model=vgg16 --arms "independent:video.warm_start=false;default;t1e4:video.temporal_weight=1e4"

`run` measures at the end when the yardstick file is there (`--yardstick`, default
vgg16-torch.pth beside the weights, else vgg16-caffe.pth); `--save DIR` keeps each arm's
frames (npz) and a strip of frames per clip to look at (JPEG); `measure DIR` measures
kept frames later, on another machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
try:  # the GPU machine may lack PyAV: reading clips needs it, the frame loop on saved frames does not
    import av  # noqa: F401
except ImportError:  # pragma: no cover - bench only
    import types

    stub = types.ModuleType("av")
    stub.FFmpegError = type("FFmpegError", (Exception,), {})  # type: ignore[attr-defined]
    sys.modules["av"] = stub

from bench.common import machine  # noqa: E402
from nst_batch.manifest import parse_overrides  # noqa: E402
from nst_batch.media.images import read_image, resize_longest  # noqa: E402
from nst_batch.settings import Job, Settings, StyleSpec, VideoSettings  # noqa: E402
from nst_batch.video.frames import FrameStep, Previous, remember, stylize_next  # noqa: E402
from nst_batch.video.metrics import warp_error  # noqa: E402
from nst_batch.context import JobContext  # noqa: E402
from nst_batch.pictures import to_tensor  # noqa: E402
from nst_batch.pictures import finish  # noqa: E402
from nst_batch.models import ModelCache  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian package opencv-doc
IMAGEIO = Path("/usr/lib/python3/dist-packages/imageio/resources/images")  # Debian package python3-imageio
VISP = Path("/usr/share/visp-images-data/ViSP-images")  # Debian package visp-images-data
# (file, first second, kind): spans without scene cuts, so that every arm is judged on motion alone.
CLIPS = {"vtest": (DATA / "vtest.avi", 0.0, "street, static camera, 768x576 10 fps"),
         "tree": (DATA / "tree.avi", 0.0, "foliage, about 2 real fps"),
         "megamind": (DATA / "Megamind.avi", 0.1, "rendered film, a talking face"),  # frame 0 is black
         "cockatoo": (IMAGEIO / "cockatoo.mp4", 0.0, "hand-held camera, a bird on a perch, 1280x720 20 fps"),
         "realshort": (IMAGEIO / "realshort.mp4", 0.0, "hand-held camera, indoor plants, 320x240 30 fps"),
         # still for its first 0.7 s, then the camera travels (0.3-1.1 px a frame at 128 px) until 2.8 s
         "cube": (VISP / "video" / "cube.mpeg", 0.8, "grey, camera on a moving arm over a poster, 384x288 25 fps")}
TRAINED = Path(os.environ.get("NST_BATCH_TRAINED_DIR", Path.home() / ".cache/nst-batch-dev"))


def extract(args: argparse.Namespace) -> None:
    from nst_batch.media.video import probe_video, read_frames

    arrays = {}
    names = args.clips.split(",")
    missing = [f"{n} ({CLIPS[n][0]})" for n in names if n in CLIPS and not CLIPS[n][0].is_file()]
    unknown = [n for n in names if n not in CLIPS]
    if unknown:
        raise SystemExit(f"unknown clip(s) {', '.join(unknown)}; known: {', '.join(CLIPS)}")
    if missing:  # Debian puts them there: apt-get install opencv-doc python3-imageio visp-images-data
        print("missing, skipped:", "; ".join(missing))
    for name in names:
        path, start, _kind = CLIPS[name]
        if not path.is_file():
            continue
        for scale in [1.0] + [float(k) for k in args.flow_scales.split(",") if k]:
            # `video.flow_scale` arms: the same frames larger (as the product reads them: one resize from the
            # source, at most its size), under the key "clip@scale"
            side = min(int(round(args.size * scale / 2)) * 2, max(probe_video(path).height, probe_video(path).width))
            frames = []
            for frame in read_frames(path, start=start + args.skip, size=side):
                frames.append(frame)
                if len(frames) == args.frames:
                    break
            key = name if scale == 1.0 else f"{name}@{scale:g}"
            arrays[key] = np.stack(frames)
            print(key, arrays[key].shape, CLIPS[name][0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print("wrote", args.out, f"{args.out.stat().st_size / 1e6:.1f} MB")


def _settings(base: Settings, items: list[str]) -> Settings:
    over = parse_overrides(items)
    top = {k: v for k, v in over.items() if "." not in k}
    video = {k.split(".", 1)[1]: v for k, v in over.items() if k.startswith("video.")}
    if "scales" in top or "content_layers" in top or "style_layers" in top:
        top = {k: tuple(v) if isinstance(v, list) else v for k, v in top.items()}
    settings = dataclasses.replace(base, **top)
    return dataclasses.replace(settings, video=dataclasses.replace(settings.video, **video))


BENCH_KEYS = ("stride=", "flow=truth")  # arm items for the bench itself, not settings


def arm_spec(spec: str, base: Settings) -> tuple[str, Settings, int, list[str]]:
    """An arm "name:key=value:..." → (name, its settings over `base`, stride, its items). stride=N (bench only):
    every Nth frame, for the costly independent reference (no flicker then); flow=truth: `shake` only."""
    name, _, rest = spec.partition(":")
    items = [kv for kv in rest.split(":") if kv]
    stride = int(next((kv.split("=")[1] for kv in items if kv.startswith("stride=")), 1))
    return name, _settings(base, [kv for kv in items if not kv.startswith(BENCH_KEYS)]), stride, items


def run_arm(settings: Settings, frames: np.ndarray, style: Path, models: ModelCache,
            larger: np.ndarray | None = None, first: dict[Any, tuple[FrameStep, float]] | None = None
            ) -> dict[str, Any]:
    """The product's frame loop over `frames`; the frames as written and each frame's cost.

    `larger`: the same frames larger, for `video.flow_scale`. `first`: cold first frames by the settings that
    make them (every top-level setting and video.first_iterations), so that arms differing in warm frames
    alone share one (its time counted as when it was made)."""
    job = Job(name="bench", input=style, styles=(StyleSpec(style),), output=Path("unused.mp4"), settings=settings)
    ctx = JobContext.create(job, models)
    history: list[Previous] = []  # prev (history[0]) and video.long_term's frames, as the product's loop keeps them
    outs, seconds, iterations, cold, cuts = [], [], [], [], []
    cold_key = (dataclasses.replace(settings, video=VideoSettings(first_iterations=settings.video.first_iterations)),
                frames[0].tobytes())
    for t, content in enumerate(frames):
        flow_content = None if larger is None else larger[t]
        t0 = time.perf_counter()
        if t == 0 and first is not None and cold_key in first:
            step, took = first[cold_key]
        else:
            step = stylize_next(ctx, content, history[0] if history else None,  # ends in a copy to the host
                                flow_content=flow_content, earlier=history[1:])
            took = time.perf_counter() - t0
            if t == 0 and first is not None:
                first[cold_key] = (step, took)
        seconds.append(took)
        history = remember(ctx, history, Previous(content, step.raw, flow_content), restart=step.cold)
        outs.append(finish(settings, step.raw, content))
        iterations.append(step.result.iterations)
        cold.append(step.cold)
        if step.cut:
            cuts.append(t)
    return {"frames": np.stack(outs), "seconds": seconds, "iterations": iterations, "cold": cold, "cuts": cuts}


def measure(stick: Any, frames: np.ndarray, outs: np.ndarray, style: Path, cuts: list[int],
            device: torch.device) -> dict[str, Any]:
    """Flicker ratio and per-frame yardstick distances of one arm's frames."""
    from bench.quality import Distances

    flicker = warp_error(list(outs), list(frames), cuts=cuts)
    side = max(frames.shape[1:3])
    style_t = to_tensor(resize_longest(read_image(style), side), device)
    content_d, style_d = [], []
    for content, out in zip(frames, outs):
        dist = Distances(stick, to_tensor(content, device), style_t)
        c, s = dist(to_tensor(out, device))
        content_d.append(c)
        style_d.append(s)
    third = max(1, len(frames) // 3)
    return {"e_warp": flicker.e_warp, "e_warp_input": flicker.e_warp_input, "flicker_ratio": flicker.ratio,
            "pairs": flicker.pairs, "content": content_d, "style": style_d,
            "content_mean": float(np.mean(content_d)), "style_mean": float(np.mean(style_d)),
            "drift": float(np.mean(content_d[-third:]) / np.mean(content_d[:third]))}


def _yardstick(args: argparse.Namespace, device: torch.device) -> Any:
    from bench.quality import Yardstick

    for path in ([args.yardstick] if args.yardstick else [TRAINED / "vgg16-torch.pth", TRAINED / "vgg16-caffe.pth",
                                                           Path(args.weights)]):
        if path is not None and Path(path).is_file() and "vgg16" in Path(path).name:
            print("yardstick:", path)
            return Yardstick(Path(path)).to(device)
    return None


def run(args: argparse.Namespace) -> None:
    clips = dict(np.load(args.clips))
    base = _settings(dataclasses.replace(Settings(), weights=args.weights, device=args.device), args.set or [])
    models = ModelCache()
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "clips": {}}
    saved: dict[str, dict[str, np.ndarray]] = {}
    first: dict[Any, tuple[FrameStep, float]] = {}
    for clip, frames in clips.items():
        if "@" in clip:  # the larger frames of a clip, for flow_scale arms
            continue
        deadline = time.monotonic() + args.budget / len(clips)  # each clip its share
        clip_base = dataclasses.replace(base, size=max(frames.shape[1:3]))  # the frames are at working size
        run_arm(_settings(clip_base, ["video.first_iterations=3"]), frames[:1], args.style, models)  # warm-up
        results["clips"][clip] = {}
        saved[clip] = {"input": frames}
        for spec in args.arms.split(";"):
            if time.monotonic() > deadline:
                print(f"budget spent: {clip}/{spec} skipped")
                continue
            name, settings, stride, _items = arm_spec(spec, clip_base)
            larger = None
            if settings.video.flow_scale != 1.0:
                key = f"{clip}@{settings.video.flow_scale:g}"
                if key not in clips:
                    print(f"{clip}/{name}: no frames {key} (extract --flow-scales): skipped")
                    continue
                larger = clips[key][::stride]
            arm = run_arm(settings, frames[::stride], args.style, models, larger, first)
            arm["stride"] = stride
            saved[clip][name] = arm.pop("frames")
            warm = [s for s, c in zip(arm["seconds"], arm["cold"]) if not c]
            cold = [s for s, c in zip(arm["seconds"], arm["cold"]) if c]
            arm["cold_seconds"] = float(np.mean(cold))
            arm["warm_seconds"] = float(np.mean(warm)) if warm else None
            results["clips"][clip][name] = arm
            print(f"{clip:9} {name:14} {sum(arm['seconds']):7.1f} s  cold {arm['cold_seconds']:.2f} s  warm "
                  f"{arm['warm_seconds'] or 0:.2f} s  it {np.mean(arm['iterations'][1:] or [0]):.0f}",
                  flush=True)
        if args.each:  # measured and written clip by clip: a run stopped later keeps the clips finished
            _finish(args, results, saved, models, base, only=clip)
    if not args.each:
        _finish(args, results, saved, models, base)


def _finish(args: argparse.Namespace, results: dict[str, Any], saved: dict[str, dict[str, np.ndarray]],
            models: ModelCache, base: Settings, only: str | None = None) -> None:
    results["machine"] = machine(str(JobContext.create(
        Job("m", args.style, (StyleSpec(args.style),), Path("x"), base), models).device))
    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for clip, arrays in saved.items():
            if only is not None and clip != only:
                continue
            if args.save_frames:
                np.savez_compressed(args.save / f"frames-{clip}.npz", **arrays)
            _strip(arrays, args.save / f"strip-{clip}.jpg")
    stick = _yardstick(args, device)
    if stick is not None:
        _measure_all(results, saved, stick, args.style, device, only)
    out = args.out or (REPO / "bench" / "results" / f"video-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print("saved", out)


def measure_saved(args: argparse.Namespace) -> None:
    results = json.loads(args.results.read_text())
    saved = {p.stem.removeprefix("frames-"): dict(np.load(p)) for p in sorted(args.dir.glob("frames-*.npz"))}
    device = torch.device("cpu")
    stick = _yardstick(args, device)
    _measure_all(results, saved, stick, Path(results["args"]["style"]), device)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    print("saved", args.results)


def _measure_all(results: dict[str, Any], saved: dict[str, dict[str, np.ndarray]], stick: Any, style: Path,
                 device: torch.device, only: str | None = None) -> None:
    for clip, arms in results["clips"].items():
        if only is not None and clip != only:
            continue
        for name, arm in arms.items():
            stride = arm.get("stride", 1)
            arm.update(measure(stick, saved[clip]["input"][::stride], saved[clip][name], style, arm["cuts"], device))
            if stride > 1:  # frames far apart: their warping error says nothing of flicker
                arm.update(e_warp=None, e_warp_input=None, flicker_ratio=None, drift=float("nan"))
    _table(results)


def pan(args: argparse.Namespace) -> None:
    """A camera pan with a known answer: windows sliding over one real frame, and the same windows of that
    frame stylized once. The panned stylized windows are the ideal, a texture glued to the scene: their
    flicker ratio is what the yardstick itself gives a perfectly steady video of this motion (its own flow's
    errors on a fine texture), the floor the product's arms are read against."""
    import cv2

    from nst_batch.pictures import to_uint8

    from nst_batch.stylize import stylize_frame
    from nst_batch.media.images import longest_side_shape
    from nst_batch.media.video import read_frames

    path, start, kind = CLIPS[args.clip]
    step = args.step * args.factor  # px per frame at the large size: args.step px at working size
    big_side = args.size * args.factor + int(np.ceil(step * args.frames))
    big = next(iter(read_frames(path, start=start, size=big_side)))  # (H, W, 3) uint8
    h, w = longest_side_shape(big.shape[0] - int(np.ceil(step * args.frames)), big.shape[1] -
                              int(np.ceil(step * args.frames)), args.size, even=True)

    def window(picture: np.ndarray, t: int) -> np.ndarray:  # shift by t*step across and t*step/2 down
        # whole-pixel steps (--factor 1 --step 1) are exact crops: no resampling in the ideal at all
        whole = args.factor == 1 and float(step).is_integer()
        dy = (t * step) // 2 if whole else t * step / 2
        m = np.float32([[1, 0, -t * step], [0, 1, -dy]])
        moved = cv2.warpAffine(picture, m, (w * args.factor, h * args.factor), flags=cv2.INTER_LINEAR)
        return cv2.resize(moved, (w, h), interpolation=cv2.INTER_AREA)

    base = _settings(dataclasses.replace(Settings(), weights=args.weights, device=args.device), args.set or [])
    models = ModelCache()
    job = Job("pan", args.style, (StyleSpec(args.style),), Path("x.png"), dataclasses.replace(base, size=big_side))
    t0 = time.perf_counter()
    painted = to_uint8(stylize_frame(JobContext.create(job, models), big,
                                     iterations=base.video.first_iterations).image)
    print(f"{args.clip} ({kind}): {big.shape[1]}x{big.shape[0]} stylized once in {time.perf_counter() - t0:.0f} s; "
          f"pan of {args.frames} frames at {w}x{h}, {args.step} px/frame across, half that down")
    frames = np.stack([window(big, t) for t in range(args.frames)])
    arms: dict[str, np.ndarray] = {"ideal": np.stack([window(painted, t) for t in range(args.frames)])}
    first: dict[Any, tuple[FrameStep, float]] = {}
    for spec in args.arms.split(";"):
        name, settings, _stride, _items = arm_spec(spec, dataclasses.replace(base, size=max(h, w)))
        arms[name] = run_arm(settings, frames, args.style, models, None, first)["frames"]
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "arms": {}}
    for name, outs in arms.items():
        flicker = warp_error(list(outs), list(frames))
        out["arms"][name] = {"flicker_ratio": flicker.ratio, "e_warp": flicker.e_warp,
                             "e_warp_input": flicker.e_warp_input}
        print(f"{name:12} flicker ratio {flicker.ratio or 0:6.2f}  E_warp {flicker.e_warp or 0:.2e} "
              f"(input {flicker.e_warp_input or 0:.2e})")
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        _strip({"input": frames, **arms}, args.save / f"pan-{args.clip}.jpg")
    target = args.out or (REPO / "bench" / "results" / f"video-pan-{time.strftime('%Y%m%d-%H%M%S')}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1) + "\n")
    print("saved", target)


SCENES = {"building": DATA / "building.jpg", "fruits": DATA / "fruits.jpg", "aero": DATA / "aero3.jpg",
          "astronaut": REPO / "samples/photos/astronaut.jpg", "coffee": REPO / "samples/photos/more/coffee.jpg"}


def camera_path(frames: int, seed: int, motion: float, rotate: float, zoom: float) -> list[tuple[float, ...]]:
    """A hand-held camera's path: (dx, dy px at working size, angle in degrees, scale) per frame, each a random
    walk whose velocity keeps 0.6 of the last frame's (a hand sways, it does not jump). The first frame is
    (0, 0, 0, 1); `motion`, `rotate`, `zoom` are the per-frame standard deviations of the velocities' kicks."""
    rng = np.random.default_rng(seed)
    pose, velocity = np.array([0.0, 0.0, 0.0, 0.0]), np.zeros(4)
    path = [(0.0, 0.0, 0.0, 1.0)]
    for _ in range(frames - 1):
        velocity = 0.6 * velocity + rng.normal(0.0, [motion, motion, rotate, zoom])
        pose = pose + velocity
        path.append((float(pose[0]), float(pose[1]), float(pose[2]), float(np.exp(pose[3]))))
    return path


def _pose_matrix(pose: tuple[float, ...], window: tuple[int, int], scene: tuple[int, int]) -> np.ndarray:
    """3x3 map from a frame's pixel (x, y) at working size to the scene's pixel at working size."""
    (w, h), (ws, hs) = window, scene
    dx, dy, angle, scale = pose
    a = np.deg2rad(angle)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre_w, centre_s = np.array([(w - 1) / 2, (h - 1) / 2]), np.array([(ws - 1) / 2 + dx, (hs - 1) / 2 + dy])
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = rot, centre_s - rot @ centre_w
    return m


def _render(picture: np.ndarray, m: np.ndarray, size: tuple[int, int], flags: int) -> np.ndarray:
    import cv2

    return cv2.warpAffine(picture, m[:2].astype(np.float64), size, flags=flags | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def _scaled(m: np.ndarray, k: int) -> np.ndarray:
    """The same map between pictures k times larger (pixel centres: x_big = k x + (k - 1) / 2)."""
    s = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1.0]])
    return s @ m @ np.linalg.inv(s)


def true_error(outs: np.ndarray, flows: list[np.ndarray], valid: list[np.ndarray], kernel: str = "cubic") -> float:
    """E_warp under the true flow: mean over pairs of the squared difference between frame t and frame t-1
    sampled where the camera's motion says (`kernel`: a key of WARP_KERNELS), over the pixels whose source is
    the same surface, in frame."""
    from nst_batch.video.flow import warp

    errors = []
    for t in range(1, len(outs)):
        prev = warp(outs[t - 1].astype(np.float32) / 255.0, flows[t], kernel=kernel)
        diff = ((outs[t].astype(np.float32) / 255.0 - prev) ** 2).mean(axis=2)
        errors.append(float(diff[valid[t]].mean()))
    return float(np.mean(errors))


@dataclasses.dataclass
class Shaken:
    """A virtual hand-held clip: frames at working size, the same at 2x (for flow_scale), the true backward flow
    of each frame (None for the first), where it holds (the pixel's source is the same surface in frame t-1:
    (H, W) bool), and each frame's map to the scene (`_pose_matrix`)."""

    frames: np.ndarray
    larger: np.ndarray | None
    flows: list[np.ndarray]
    valid: list[np.ndarray]
    mats: list[np.ndarray]
    scene: np.ndarray
    shape: tuple[int, int]
    poses: list[tuple[float, ...]]


def shaken(scene_name: str, *, size: int = 256, frames: int = 8, factor: int = 2, margin: int = 32, seed: int = 0,
           motion: float = 1.2, rotate: float = 0.12, zoom: float = 0.002, noise: float = 0.0,
           jpeg: int | None = None, sprite: str | None = None) -> Shaken:
    """A real picture filmed by a camera that sways, turns and zooms a little every frame, rendered at `factor`
    x the working size and reduced (as a sensor samples), then `noise` (std, 8-bit levels) and `jpeg` (quality)
    added frame by frame; `sprite`: a disc of another picture crossing the scene on a path of its own (a subject
    that moves against the background: motion boundaries and disocclusions). The true flow is exact."""
    import cv2

    from nst_batch.media.video import read_frames

    def picture(name: str) -> np.ndarray:
        if name in CLIPS:
            return next(iter(read_frames(CLIPS[name][0], start=CLIPS[name][1])))
        return read_image(SCENES.get(name, Path(name)))

    source = picture(scene_name)
    k, m = factor, margin
    ws = size + 2 * m
    hs = int(round(source.shape[0] * ws / source.shape[1]))
    w, h = size, (hs - 2 * m) // 2 * 2
    big = cv2.resize(source, (k * ws, k * hs), interpolation=cv2.INTER_AREA if k * ws < source.shape[1]
                     else cv2.INTER_CUBIC)
    poses = camera_path(frames, seed, motion, rotate, zoom)
    mats = [_pose_matrix(p, (w, h), (ws, hs)) for p in poses]
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)), axis=-1)
    radius = h / 4
    disc = None
    if sprite is not None:  # the subject: a disc cut from another picture, moving 2-3 px a frame across
        other = picture(sprite)
        side = int(2 * radius * k) + 4  # a little larger than its mask: no border inside the disc
        disc = cv2.resize(other, (side, side), interpolation=cv2.INTER_AREA)
        rng = np.random.default_rng(seed + 17)
        speed = rng.uniform(2.0, 3.0) * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
        centres = [np.array([w / 2, h / 2]) - speed * (frames - 1) / 2 + speed * t for t in range(frames)]
    rng = np.random.default_rng(seed + 1)
    out, larger, inside = [], [], []
    for t, mt in enumerate(mats):
        frame_big = _render(big, _scaled(mt, k), (k * w, k * h), cv2.INTER_LINEAR).astype(np.float32)
        cover = np.zeros((h, w), np.float32)
        if disc is not None:
            cx, cy = centres[t]
            yy, xx = np.mgrid[0:k * h, 0:k * w].astype(np.float32)
            ux, uy = (xx - (k - 1) / 2) / k, (yy - (k - 1) / 2) / k  # big pixel -> working coordinates
            alpha = (np.hypot(ux - cx, uy - cy) <= radius).astype(np.float32)
            # the disc's centre pixel onto the big pixel of working coordinates (cx, cy)
            place = np.float32([[1, 0, k * cx + (k - 1) / 2 - (side - 1) / 2],
                                [0, 1, k * cy + (k - 1) / 2 - (side - 1) / 2]])
            moved = cv2.warpAffine(disc, place, (k * w, k * h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            frame_big = alpha[..., None] * moved + (1 - alpha[..., None]) * frame_big
            cover = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
        frame = cv2.resize(frame_big, (w, h), interpolation=cv2.INTER_AREA)
        two = cv2.resize(frame_big, (2 * w, 2 * h), interpolation=cv2.INTER_AREA) if k >= 2 else None

        def filmed(picture: np.ndarray) -> np.ndarray:  # the sensor's noise and the encoder's JPEG
            if noise:
                picture = picture + rng.normal(0.0, noise, picture.shape)
            picture = np.clip(picture + 0.5, 0, 255).astype(np.uint8)
            if jpeg:
                _ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, jpeg])
                picture = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
            return picture

        out.append(filmed(frame))
        larger.append(None if two is None else filmed(two))  # the flow_scale 2 frames: the same noise and JPEG
        inside.append(cover)
    # Where the truth holds for every resampling kernel: the source and its neighbours within REACH px (Lanczos
    # reads 4 each way) are the same surface, inside frame t-1, and inside the scene (not its reflected border).
    reach = 4
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    flows: list[np.ndarray] = [np.zeros((h, w, 2), np.float32)]
    valid: list[np.ndarray] = [np.ones((h, w), bool)]
    for t in range(1, len(mats)):
        back = np.linalg.inv(mats[t - 1]) @ mats[t]  # frame t's pixel -> frame t-1's
        flow = (grid @ back[:2, :2].T + back[:2, 2]) - grid
        in_scene = grid @ mats[t][:2, :2].T + mats[t][:2, 2]  # (H, W, 2) scene pixel of each frame pixel
        ok = ((in_scene[..., 0] >= 0) & (in_scene[..., 0] <= ws - 1) & (in_scene[..., 1] >= 0)
              & (in_scene[..., 1] <= hs - 1))
        if disc is not None:
            on = inside[t] == 1.0
            flow[on] = centres[t - 1] - centres[t]
        src = grid + flow  # where each pixel was
        ok &= ((src[..., 0] >= reach) & (src[..., 0] <= w - 1 - reach) & (src[..., 1] >= reach)
               & (src[..., 1] <= h - 1 - reach))
        if disc is not None:
            sx = np.clip(np.round(src[..., 0]).astype(int), 0, w - 1)
            sy = np.clip(np.round(src[..., 1]).astype(int), 0, h - 1)
            touched = cv2.dilate((inside[t - 1] > 0).astype(np.uint8), kernel)[sy, sx] > 0  # any disc near the source
            solid = cv2.erode((inside[t - 1] == 1.0).astype(np.uint8), kernel)[sy, sx] > 0  # only disc near it
            ok &= ((inside[t] == 0.0) & ~touched) | (on & solid)
        flows.append(flow.astype(np.float32))
        valid.append(ok)
    return Shaken(np.stack(out), None if larger[0] is None else np.stack(larger), flows, valid, mats,
                  cv2.resize(big, (ws, hs), interpolation=cv2.INTER_AREA), (h, w), poses)


def shake(args: argparse.Namespace) -> None:
    """A hand-held camera with a known answer: a real picture filmed by a virtual camera that sways, turns and
    zooms a little every frame (`shaken`), so the true flow between frames is known exactly. Two yardsticks:
    E_warp under the *true* flow (no flow estimate at all: independent of the optimiser's DIS by construction)
    and video/metrics.py's Farneback. The ideal is the scene stylized once and filmed by the same camera, a
    texture glued to the scene (not with --sprite): what the true-flow E_warp gives perfect steadiness. Arms as
    `run`'s, plus `flow=truth` (bench only: the frame loop given the true flow and mask)."""
    import cv2

    from nst_batch.pictures import to_uint8
    from nst_batch.stylize import stylize_frame
    from nst_batch.video.flow import leaves_frame

    clip = shaken(args.scene, size=args.size, frames=args.frames, factor=args.factor, margin=args.margin,
                  seed=args.seed, motion=args.motion, rotate=args.rotate, zoom=args.zoom, noise=args.noise,
                  jpeg=args.jpeg, sprite=args.sprite)
    frames, larger, flows, mats, scene = clip.frames, clip.larger, clip.flows, clip.mats, clip.scene
    valid = [v & ~leaves_frame(f) for v, f in zip(clip.valid, flows)]
    (h, w), (hs, ws) = clip.shape, scene.shape[:2]
    motion = [float(np.median(np.hypot(f[..., 0], f[..., 1]))) for f in flows[1:]]
    print(f"{args.scene}: {w}x{h} from a {ws}x{hs} scene, {args.frames} frames, median true motion "
          f"{np.mean(motion):.2f} px/frame ({min(motion):.2f}-{max(motion):.2f}); noise {args.noise}, "
          f"jpeg {args.jpeg}, sprite {args.sprite}", flush=True)

    base = _settings(dataclasses.replace(Settings(), weights=args.weights, device=args.device), args.set or [])
    models = ModelCache()
    # The ideal: the scene at working scale stylized once, its strokes the size the frames' are (style image
    # scaled by the frame's side over the scene's), then filmed by the same camera (bicubic, once per frame).
    ideal_settings = dataclasses.replace(base, size=max(ws, hs), style_scale=base.style_scale * max(w, h) / max(ws, hs))
    arms: dict[str, dict[str, Any]] = {}
    if args.sprite is None:  # the subject is not in the scene: no glued ideal then
        job = Job("shake", args.style, (StyleSpec(args.style),), Path("x.png"), ideal_settings)
        t0 = time.perf_counter()
        painted = to_uint8(stylize_frame(JobContext.create(job, models), scene,
                                         iterations=base.video.first_iterations).image)
        print(f"scene stylized once in {time.perf_counter() - t0:.0f} s", flush=True)
        arms["ideal"] = {"frames": np.stack([_render(painted, mt, (w, h), cv2.INTER_CUBIC) for mt in mats])}
    first: dict[Any, tuple[FrameStep, float]] = {}
    for spec in args.arms.split(";"):
        name, settings, stride, items = arm_spec(spec, dataclasses.replace(base, size=max(h, w)))
        if "flow=truth" in items and stride != 1:
            raise SystemExit(f"{name}: flow=truth needs every frame (no stride)")
        if "flow=truth" in items and settings.video.long_term:
            raise SystemExit(f"{name}: flow=truth gives one frame's flow to the one before it, not video.long_term's")
        if settings.video.flow_scale not in (1.0, 2.0):
            raise SystemExit(f"{name}: shake renders the flow's larger frames at 2x only (video.flow_scale 1 or 2)")
        t0 = time.perf_counter()
        with _true_flow("flow=truth" in items, clip):
            arm = run_arm(settings, frames[::stride], args.style, models,
                          None if settings.video.flow_scale == 1.0 or larger is None else larger[::stride], first)
        arm["stride"] = stride
        arms[name] = arm
        print(f"{name:14} {time.perf_counter() - t0:6.0f} s  warm it "
              f"{np.mean([i for i, c in zip(arm['iterations'], arm['cold']) if not c] or [0]):.0f}", flush=True)
    stick = _yardstick(args, torch.device("cpu"))
    out: dict[str, Any] = {"args": {k_: str(v) for k_, v in vars(args).items()}, "motion_px": motion,
                           "poses": clip.poses, "arms": {}}
    e_input = true_error(frames, flows, valid)
    ref = arms.get("independent")
    ref_q = measure(stick, frames[::ref["stride"]], ref["frames"], args.style, [], torch.device("cpu")) \
        if ref is not None and stick is not None else None
    e_ideal = true_error(arms["ideal"]["frames"], flows, valid) if "ideal" in arms else float("nan")
    print(f"{'arm':14} {'true E':>9} {'x ideal':>8} {'x input':>8} {'linear':>9} {'lanczos':>9} {'farneback':>9} "
          f"{'content':>8} {'style':>7} {'drift':>6}   (input's true E {e_input:.2e}, ideal's {e_ideal:.2e})")
    for name, arm in arms.items():
        outs = arm.pop("frames")
        row: dict[str, Any] = {k_: v for k_, v in arm.items()}
        if arm.get("stride", 1) == 1:
            row["e_true"] = true_error(outs, flows, valid)
            # the same under the other kernels: a ranking that holds whichever way the yardstick resamples
            row["e_true_linear"] = true_error(outs, flows, valid, "linear")
            row["e_true_lanczos"] = true_error(outs, flows, valid, "lanczos")
            row["x_ideal"], row["x_input"] = row["e_true"] / e_ideal, row["e_true"] / e_input
            row["farneback_ratio"] = warp_error(list(outs), list(frames)).ratio
        if stick is not None:
            q = measure(stick, frames[::arm.get("stride", 1)], outs, args.style, [], torch.device("cpu"))
            row.update({k_: q[k_] for k_ in ("content_mean", "style_mean", "drift")})
            if ref_q is not None:
                row["content_vs_ind"] = q["content_mean"] / ref_q["content_mean"]
                row["style_vs_ind"] = q["style_mean"] / ref_q["style_mean"]
        out["arms"][name] = row
        print(f"{name:14} {row.get('e_true', 0):9.2e} {row.get('x_ideal', 0):8.2f} {row.get('x_input', 0):8.1f} "
              f"{row.get('e_true_linear', 0):9.2e} {row.get('e_true_lanczos', 0):9.2e} "
              f"{row.get('farneback_ratio') or 0:9.2f} {row.get('content_vs_ind', 0):8.2f} "
              f"{row.get('style_vs_ind', 0):7.2f} {row.get('drift', 0):6.2f}", flush=True)
        arm["frames"] = outs
    out["e_true_input"], out["e_true_ideal"] = e_input, e_ideal
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        _strip({"input": frames, **{n: a["frames"] for n, a in arms.items()}}, args.save / f"shake-{args.scene}.jpg")
        np.savez_compressed(args.save / f"shake-{args.scene}.npz", input=frames,
                            **{n: a["frames"] for n, a in arms.items()})
    target = args.out or (REPO / "bench" / "results" / f"video-shake-{time.strftime('%Y%m%d-%H%M%S')}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1) + "\n")
    print("saved", target)


class _true_flow:
    """Bench only (`shake`'s `flow=truth`): the frame loop given the true flow and the true mask instead of DIS's,
    to tell what the flow's errors cost from what the optimiser re-paints by itself."""

    def __init__(self, active: bool, clip: Shaken) -> None:
        self.active, self.clip = active, clip

    def __enter__(self) -> None:
        import nst_batch.video.frames as loop
        from nst_batch.video.flow import FlowResult, leaves_frame

        self.kept = loop._flow
        index = {frame.tobytes(): t for t, frame in enumerate(self.clip.frames)}
        if self.active:
            def truth(ctx: Any, prev: Any, content: np.ndarray, flow_content: Any) -> FlowResult:
                t = index[content.tobytes()]
                flow = self.clip.flows[t]
                mask = (self.clip.valid[t] & ~leaves_frame(flow)).astype(np.float32)
                return FlowResult(backward=flow, mask=mask, reliable_fraction=float(mask.mean()))
            loop._flow = truth  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        import nst_batch.video.frames as loop

        loop._flow = self.kept  # type: ignore[assignment]


def _table(results: dict[str, Any]) -> None:
    print(f"{'clip':9} {'arm':14} {'flicker':>8} {'content':>8} {'vs ind':>7} {'style':>8} {'vs ind':>7} "
          f"{'drift':>6} {'warm/cold':>9} {'warm it':>7}")
    for clip, arms in results["clips"].items():
        ref = arms.get("independent")
        cold = ref["cold_seconds"] if ref else None  # a cold frame's time: the independent arm's mean
        for name, a in arms.items():
            a["warm_vs_cold"] = a["warm_seconds"] / cold if cold and a["warm_seconds"] else None
            c_rel = a["content_mean"] / ref["content_mean"] if ref else float("nan")
            s_rel = a["style_mean"] / ref["style_mean"] if ref else float("nan")
            warm_it = np.mean([i for i, c in zip(a["iterations"], a["cold"]) if not c] or [0])
            print(f"{clip:9} {name:14} {a['flicker_ratio'] or 0:8.2f} {a['content_mean']:8.4f} {c_rel:7.2f} "
                  f"{a['style_mean']:8.4f} {s_rel:7.2f} {a['drift']:6.2f} {a['warm_vs_cold'] or 0:9.2f} {warm_it:7.1f}")
    print("goal: flicker <= 2 (x the input's E_warp, Farneback), content and style <= 1.1x independent, "
          "drift <= 1, warm/cold <= 0.2")


def _strip(arrays: dict[str, np.ndarray], path: Path, picks: int = 4) -> None:
    """Rows: input, then each arm; columns: `picks` frames spread over the clip (JPEG, to look at)."""
    import cv2

    n = len(arrays["input"])
    idx = np.linspace(0, n - 1, picks).round().astype(int)
    rows = [np.concatenate([a[i] for i in idx], axis=1) for a in arrays.values() if len(a) == n]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract", help="real clips' frames into one npz")
    e.add_argument("--clips", default="vtest,tree,megamind")
    e.add_argument("--frames", type=int, default=32)
    e.add_argument("--skip", type=float, default=0.0, help="seconds skipped at each clip's start")
    e.add_argument("--size", type=int, default=256)
    e.add_argument("--flow-scales", default="", help="also the frames at these multiples of --size, e.g. 2,4")
    e.add_argument("--out", type=Path, default=REPO / ".devdata" / "clips.npz")
    r = sub.add_parser("run", help="run the arms over the frames, measure when the yardstick is there")
    r.add_argument("--clips", type=Path, default=REPO / ".devdata" / "clips.npz")
    r.add_argument("--style", type=Path, default=REPO / "samples" / "styles" / "starry_night.jpg")
    r.add_argument("--weights", default=str(TRAINED / "vgg19-from16.pth"))
    r.add_argument("--device", default="auto")
    r.add_argument("--set", action="append", help="KEY=VALUE for every arm (as nst-batch --set)")
    r.add_argument("--arms", default="independent:video.warm_start=false;default")
    r.add_argument("--budget", type=float, default=1e9, help="seconds; later arms are skipped once spent")
    r.add_argument("--yardstick", type=Path, default=None)
    r.add_argument("--save", type=Path, default=None)
    r.add_argument("--save-frames", action="store_true", help="with --save: each arm's frames too (npz, large)")
    r.add_argument("--out", type=Path, default=None)
    r.add_argument("--each", action="store_true", help="measure and write the results after each clip")
    m = sub.add_parser("measure", help="measure frames kept by `run --save` (on another machine)")
    m.add_argument("results", type=Path)
    m.add_argument("dir", type=Path)
    m.add_argument("--yardstick", type=Path, default=None)
    m.add_argument("--weights", default="")
    q = sub.add_parser("pan", help="a synthetic pan over one real frame: the ideal (glued texture) beside arms")
    q.add_argument("--clip", default="cockatoo")
    q.add_argument("--size", type=int, default=160)
    q.add_argument("--factor", type=int, default=2, help="the frame is stylized once at this many times --size")
    q.add_argument("--frames", type=int, default=10)
    q.add_argument("--step", type=float, default=0.7, help="px per frame at working size")
    q.add_argument("--style", type=Path, default=REPO / "samples" / "styles" / "starry_night.jpg")
    q.add_argument("--weights", default=str(TRAINED / "vgg19-from16.pth"))
    q.add_argument("--device", default="auto")
    q.add_argument("--set", action="append", help="KEY=VALUE for every arm")
    q.add_argument("--arms", default="default")
    q.add_argument("--save", type=Path, default=None)
    q.add_argument("--out", type=Path, default=None)
    k = sub.add_parser("shake", help="a virtual hand-held camera over a real picture: the true flow is known")
    k.add_argument("--scene", default="building", help=f"{', '.join(SCENES)}, a clip's first frame "
                                                       f"({', '.join(CLIPS)}), or a picture's path")
    k.add_argument("--size", type=int, default=256)
    k.add_argument("--factor", type=int, default=2, help="frames rendered at this many times --size, then reduced")
    k.add_argument("--margin", type=int, default=32, help="px of scene around the window (working size)")
    k.add_argument("--frames", type=int, default=8)
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--motion", type=float, default=1.2, help="px/frame kick to the sway's velocity")
    k.add_argument("--rotate", type=float, default=0.12, help="degrees/frame kick to the turn's velocity")
    k.add_argument("--zoom", type=float, default=0.002, help="kick to the zoom's velocity (log scale)")
    k.add_argument("--noise", type=float, default=0.0, help="sensor noise, std in 8-bit levels, fresh each frame")
    k.add_argument("--jpeg", type=int, default=None, help="each frame through JPEG at this quality")
    k.add_argument("--sprite", default=None, help="a disc of this picture crossing on a path of its own")
    k.add_argument("--style", type=Path, default=REPO / "samples" / "styles" / "starry_night.jpg")
    k.add_argument("--weights", default=str(TRAINED / "vgg19-from16.pth"))
    k.add_argument("--yardstick", type=Path, default=None)
    k.add_argument("--device", default="auto")
    k.add_argument("--set", action="append", help="KEY=VALUE for every arm")
    k.add_argument("--arms", default="independent:video.warm_start=false:stride=4;default")
    k.add_argument("--save", type=Path, default=None)
    k.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    {"extract": extract, "run": run, "measure": measure_saved, "pan": pan, "shake": shake}[args.cmd](args)


if __name__ == "__main__":
    main()
