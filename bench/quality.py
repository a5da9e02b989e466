"""Picture quality against iterations and seconds, on trained ImageNet features.

The yardstick is independent of the engine's loss: its own VGG16 (plain torch code here,
the trained file `vgg16-torch.pth` written by ../shared/tools/trained_vgg.py), its own
distances, computed on snapshots after the timed run:

  content distance  ||F(x) - F(c)||^2 / ||F(c)||^2 at relu4_2 (0: the photo itself)
  style distance    mean over relu1_1..relu5_1 of ||G(x) - G(s)||^2 / ||G(s)||^2
                    (G: Gram / (C*H*W); the style image at the working size)

Arms (`--arms`): the engine's defaults, and variations of one setting each
(`name:key=value,key=value`). Every arm is run on every (photo, style) pair and the
1000-iteration L-BFGS run ("ref") is the reference for the goal: a run reaches "95 %
of its quality" when its style distance has fallen 95 % of the way the reference's fell
from the photo's, and its content distance is no more than 1.05x the reference's.

usage: python bench/quality.py --weights ~/.cache/nst-batch-dev/vgg19-from16.pth --size 256
       [--pairs astronaut:starry_night,...] [--arms "default;ref:iterations=1000:tolerance=0;..."]
       [--save-images DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, save  # noqa: E402
from nst_batch.engine import OptimizeConfig, build_objective, optimize  # noqa: E402
from nst_batch.manifest import parse_overrides  # noqa: E402
from nst_batch.media.images import read_image, resize_longest, write_image  # noqa: E402
from nst_batch.settings import Settings  # noqa: E402
from nst_batch.pictures import to_tensor, to_uint8  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
PICTURES = {
    "astronaut": REPO / "samples/photos/astronaut.jpg", "chelsea": REPO / "samples/photos/chelsea.jpg",
    "rocket": REPO / "samples/photos/rocket.jpg", "coffee": REPO / "samples/photos/more/coffee.jpg",
    "building": OPENCV_DATA / "building.jpg", "fruits": OPENCV_DATA / "fruits.jpg",
    "starry_night": REPO / "samples/styles/starry_night.jpg", "graffiti": REPO / "samples/styles/graffiti.jpg",
    "baboon": OPENCV_DATA / "baboon.jpg",
}
YARDSTICK = Path(os.environ.get("NST_BATCH_TRAINED_DIR", Path.home() / ".cache/nst-batch-dev")) / "vgg16-torch.pth"
_VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class Yardstick(nn.Module):
    """Trained VGG16 up to relu5_1: {relu name: activation}; written apart from the engine on purpose."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        state = {k: v.float() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
        # A Caffe file (vgg16-caffe.pth) wants BGR in 0-255 less the mean pixel: the same network
        # as the torchvision file, another input convention (padding then means the mean colour in both).
        self.caffe = "caffe" in Path(path).name
        convs, names, index, in_ch = [], [], 0, 3
        for block, widths in enumerate(_VGG16, 1):
            for i, out_ch in enumerate(widths, 1):
                conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
                conv.weight.data, conv.bias.data = state[f"features.{index}.weight"], state[f"features.{index}.bias"]
                convs.append(conv)
                names.append(f"relu{block}_{i}")
                index += 2
                in_ch = out_ch
            index += 1  # the pool
        self.convs, self.names = nn.ModuleList(convs), names
        mean = tuple(m / 255 for m in _CAFFE_MEAN_BGR) if self.caffe else _MEAN
        std = (1 / 255,) * 3 if self.caffe else _STD
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x, out = ((image.flip(1) if self.caffe else image) - self.mean) / self.std, {}
        for conv, name in zip(self.convs, self.names):
            x = F.relu(conv(x))
            out[name] = x
            if name == "relu5_1":
                break
            if name.endswith(("1_2", "2_2", "3_3", "4_3")):
                x = F.max_pool2d(x, 2)
        return out


def _gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def _rel(x: torch.Tensor, t: torch.Tensor) -> float:
    return float((x - t).pow(2).sum() / t.pow(2).sum())


class Distances:
    def __init__(self, stick: Yardstick, content: torch.Tensor, style: torch.Tensor) -> None:
        self.stick = stick
        self.content = stick(content)["relu4_2"]
        feats = stick(style)
        self.grams = {n: _gram(feats[n]) for n in _STYLE}

    def __call__(self, image: torch.Tensor) -> tuple[float, float]:
        feats = self.stick(image.clamp(0, 1))
        style = sum(_rel(_gram(feats[n]), self.grams[n]) for n in _STYLE) / len(_STYLE)
        return _rel(feats["relu4_2"], self.content), style


def run_arm(settings: Settings, content: torch.Tensor, style_rgb: Any, extractor: Any, every: int, *,
            clamp: bool = True) -> dict[str, Any]:
    """One stylization as the product makes it; snapshots every `every` iterations, timed apart."""
    from nst_batch.engine import LossWeights, style_grams

    s = settings
    layer_w = s.style_layer_weights or tuple(1.0 for _ in s.style_layers)
    weights = LossWeights(content=s.content_weight, style=s.style_weight, tv=s.tv_weight,
                          style_layers={n: w / sum(layer_w) for n, w in zip(s.style_layers, layer_w)},
                          content_layers=s.content_layers)
    side = max(content.shape[-2:])
    style_px = to_tensor(resize_longest(style_rgb, max(16, round(side * s.style_scale))), content.device)
    started = time.perf_counter()
    grams = style_grams(extractor, [(style_px, 1.0)], s.style_layers)
    objective = build_objective(extractor=extractor, content=content, grams=grams, weights=weights)
    snaps: list[tuple[int, float, torch.Tensor]] = []
    paused = [0.0]
    calls = [0]

    def observed(image: torch.Tensor, rows: slice = slice(None), **kw: bool) -> dict[str, torch.Tensor]:
        if calls[0] % every == 0:
            t0 = time.perf_counter()
            snaps.append((calls[0], t0 - started - paused[0], image.detach().clamp(0, 1).clone()))
            paused[0] += time.perf_counter() - t0
        calls[0] += 1
        return objective(image, rows, **kw)

    noise = torch.Generator().manual_seed(s.seed)
    init = content.clone() if s.init == "content" else torch.rand(content.shape, generator=noise)
    config = OptimizeConfig(iterations=s.iterations, optimizer=s.optimizer, learning_rate=s.learning_rate,
                            tolerance=s.tolerance, precision=s.precision,
                            clamp_each_step=clamp)
    if tuple(s.scales) == (1.0,):
        result = optimize(observed, init=init, config=config)  # type: ignore[arg-type]
    else:  # coarse-to-fine as the product runs it; snapshots of coarse steps are enlarged for the yardstick
        import nst_batch.engine.multiscale as ms
        from nst_batch.engine import schedule, stylize_multiscale

        def observed_stylize(**kw: Any) -> Any:
            obj = build_objective(extractor=kw["extractor"], content=kw["content"], grams=kw["grams"],
                                  weights=kw["weights"], temporal=kw["temporal"], precision=kw["config"].precision)

            def watch(image: torch.Tensor, rows: slice = slice(None), **kw: bool) -> dict[str, torch.Tensor]:
                if calls[0] % every == 0:
                    t0 = time.perf_counter()
                    snaps.append((calls[0], t0 - started - paused[0],
                                  ms.resize(image.detach().clamp(0, 1), tuple(content.shape[-2:])).clone()))
                    paused[0] += time.perf_counter() - t0
                calls[0] += 1
                return obj(image, rows, **kw)

            return optimize(watch, init=kw["init"], config=kw["config"], callback=kw["callback"],  # type: ignore[arg-type]
                            should_stop=kw["should_stop"])

        def grams_at(scale: float) -> Any:
            small = ms.resize(style_px, ms.scaled_size(style_px, scale)) if scale != 1.0 else style_px
            return style_grams(extractor, [(small, 1.0)], s.style_layers)

        real, ms.stylize = ms.stylize, observed_stylize
        try:
            result = stylize_multiscale(extractor=extractor, content=content, grams_at=grams_at, weights=weights,
                                        config=config, init=init, steps=schedule(s.scales, s.iterations))
        finally:
            ms.stylize = real
    seconds = time.perf_counter() - started - paused[0]
    return {"result": result, "seconds": seconds, "snaps": snaps, "style_px": style_px}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="engine weights (a trained file)")
    ap.add_argument("--model", default="vgg19")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--pairs", default="astronaut:starry_night,building:graffiti")
    ap.add_argument("--arms", default="default")
    ap.add_argument("--every", type=int, default=10, help="snapshot every N objective evaluations")
    ap.add_argument("--save-images", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    stick = Yardstick(YARDSTICK)
    base = dataclasses.replace(Settings(), weights=args.weights, model=args.model, device="cpu")
    extractors: dict[tuple, Any] = {}
    rows = []
    for pair in args.pairs.split(","):
        photo, style_name = pair.split(":")
        content = to_tensor(resize_longest(read_image(PICTURES[photo]), args.size), torch.device("cpu"))
        style_rgb = read_image(PICTURES[style_name])
        for arm in args.arms.split(";"):
            name, _, spec = arm.partition(":")
            items = [kv for kv in spec.split(":") if kv]
            # an engine option, not a product setting: clamp_each_step=true|false (default: the engine's)
            clamp = {"clamp_each_step=true": True, "clamp_each_step=false": False}.get(
                next((kv for kv in items if kv.startswith("clamp_each_step")), ""), OptimizeConfig(1).clamp_each_step)
            over = parse_overrides([kv for kv in items if not kv.startswith("clamp_each_step")])
            settings = dataclasses.replace(base, **{k: v for k, v in over.items() if "." not in k})
            key = (settings.model, settings.weights, settings.content_layers, settings.style_layers, settings.pooling)
            if key not in extractors:
                extractors[key] = _extractor(settings)
            run = run_arm(settings, content, style_rgb, extractors[key], args.every, clamp=clamp)
            dist = Distances(stick, content, run["style_px"])
            curve = [(it, round(sec, 2), *map(lambda v: round(v, 5), dist(img))) for it, sec, img in run["snaps"]]
            final = dist(run["result"].image)
            row = {"pair": pair, "arm": name, "overrides": {k: str(v) for k, v in over.items()},
                   "iterations": run["result"].iterations, "seconds": round(run["seconds"], 1),
                   "content": round(final[0], 5), "style": round(final[1], 5), "start": list(dist(content)),
                   "curve": curve, "history": [round(x, 6) for x in run["result"].history]}
            rows.append(row)
            print(f"{pair:28s} {name:18s} it {row['iterations']:5d}  {row['seconds']:7.1f} s  "
                  f"content {row['content']:.4f}  style {row['style']:.5f}", flush=True)
            if args.save_images:
                args.save_images.mkdir(parents=True, exist_ok=True)
                write_image(args.save_images / f"{photo}-{style_name}-{name}.png", to_uint8(run["result"].image))
    _goal_table(rows)
    path = save("quality", {"machine": machine("cpu"), "weights": args.weights, "size": args.size, "rows": rows})
    print(f"saved {path}")


def _extractor(settings: Settings) -> Any:
    from nst_batch.models import ModelCache

    return ModelCache().extractor(settings, torch.device("cpu"))


def _goal_table(rows: list[dict[str, Any]]) -> None:
    """Per arm vs the pair's `ref` arm: time ratio, style progress, content ratio, and where 95 % was first reached."""
    refs = {r["pair"]: r for r in rows if r["arm"] == "ref"}
    if not refs:
        return
    print("\narm vs ref (1000 L-BFGS iterations): time, style progress, content ratio, first 95 % point")
    for r in rows:
        ref = refs.get(r["pair"])
        if ref is None or r is ref:
            continue
        s0 = r["start"][1]
        progress = (s0 - r["style"]) / max(s0 - ref["style"], 1e-12)
        reached = next(((it, sec) for it, sec, c, s in r["curve"] + ref["curve"][:0]
                        if (s0 - s) / max(s0 - ref["style"], 1e-12) >= 0.95 and c <= 1.05 * ref["content"]), None)
        print(f"{r['pair']:28s} {r['arm']:18s} time {r['seconds'] / ref['seconds']:.2f}x  "
              f"style progress {progress:.3f}  content {r['content'] / max(ref['content'], 1e-12):.3f}x  "
              f"95% at {reached}")
    print("\nthe stopping rule replayed on each ref run's loss history: where it would stop, and the quality there")
    for ref in refs.values():
        s0 = ref["start"][1]
        for tol in (1e-2, 5e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4):
            stop = stop_iteration(ref["history"], tol)
            it, sec, c, st = next((row for row in ref["curve"] if row[0] >= stop), ref["curve"][-1])
            print(f"{ref['pair']:28s} tolerance {tol:.0e}: stops at {stop:4d}  ({sec / ref['seconds']:.2f}x the time)  "
                  f"style progress {(s0 - st) / max(s0 - ref['style'], 1e-12):.3f}  "
                  f"content {c / max(ref['content'], 1e-12):.3f}x")


def stop_iteration(history: list[float], tolerance: float, patience: int = 10) -> int:
    """The iteration at which optimize.py's rule (relative change < tolerance, `patience` times in a row) stops."""
    calm = 0
    for i in range(1, len(history)):
        change = abs(history[i - 1] - history[i]) / max(abs(history[i]), 1e-12)
        calm = calm + 1 if change < tolerance else 0
        if calm >= patience:
            return i + 1
    return len(history)


if __name__ == "__main__":
    main()
