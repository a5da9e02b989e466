"""Baseline benchmark: nst-batch's engine vs a straightforward Gatys implementation.

    python bench/baseline.py                                   # 8 images at 512 px, 300 iterations
    python bench/baseline.py --size 128 --iterations 20        # what fits a 2-core CPU in minutes

The baseline below is written the way the PyTorch tutorial ("Neural Transfer Using
PyTorch") writes it: the whole VGG19 `features` with Normalization, ContentLoss and
StyleLoss modules inserted into an nn.Sequential (ReLUs replaced by out-of-place
ones), the model and its targets (style included) rebuilt for every image, L-BFGS
with its default 20 inner iterations per step() until `iterations` closure calls.
Same layers, same loss scaling and weights as nst-batch's defaults, so the work per
iteration is comparable (the tutorial resizes the style to the content's
size; the engine keeps its aspect). nst-batch runs the real job path (JobContext once, then
`stylize_frame` per image). Both arms alternate image by image.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, STYLE, WEIGHTS_NOTE, machine, save, sync  # noqa: E402

from nst_batch.media.images import read_image, resize_exact, resize_longest  # noqa: E402
from nst_batch.settings import Job, Settings, StyleSpec  # noqa: E402
from nst_batch.weights import load_features  # noqa: E402
from nst_batch.context import JobContext  # noqa: E402
from nst_batch.pictures import to_tensor  # noqa: E402
from nst_batch.stylize import stylize_frame  # noqa: E402
from nst_batch.models import ModelCache  # noqa: E402

# --- the tutorial-style implementation ---------------------------------------------


class Normalization(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = x.size()
    features = x.view(a * b, c * d)
    return torch.mm(features, features.t()).div(a * b * c * d)


class ContentLoss(nn.Module):
    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target.detach()
        self.loss = torch.tensor(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(x, self.target)
        return x


class StyleLoss(nn.Module):
    def __init__(self, target_feature: torch.Tensor) -> None:
        super().__init__()
        self.target = gram_matrix(target_feature).detach()
        self.loss = torch.tensor(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(gram_matrix(x), self.target)
        return x


def build_model(cnn: nn.Sequential, style_img: torch.Tensor, content_img: torch.Tensor,
                content_layers: tuple[str, ...], style_layers: tuple[str, ...]
                ) -> tuple[nn.Sequential, list[StyleLoss], list[ContentLoss]]:
    model = nn.Sequential(Normalization())
    content_losses, style_losses = [], []
    block, conv = 1, 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            conv += 1
            name = f"conv{block}_{conv}"
        elif isinstance(layer, nn.ReLU):
            name = f"relu{block}_{conv}"
            layer = nn.ReLU(inplace=False)
        else:
            name = f"pool{block}"
            block, conv = block + 1, 0
        model.add_module(name, layer)
        if name in content_layers:
            target = model(content_img).detach()
            content_loss = ContentLoss(target)
            model.add_module(f"content_loss_{name}", content_loss)
            content_losses.append(content_loss)
        if name in style_layers:
            target_feature = model(style_img).detach()
            style_loss = StyleLoss(target_feature)
            model.add_module(f"style_loss_{name}", style_loss)
            style_losses.append(style_loss)
    return model, style_losses, content_losses


def tutorial_stylize(cnn: nn.Sequential, content_img: torch.Tensor, style_img: torch.Tensor, iterations: int,
                     s: Settings) -> int:
    """Returns the number of closure calls (iterations) made."""
    model, style_losses, content_losses = build_model(cnn, style_img, content_img, s.content_layers, s.style_layers)
    input_img = content_img.clone().requires_grad_(True)
    model.eval().requires_grad_(False)
    optimizer = torch.optim.LBFGS([input_img])
    run = [0]
    while run[0] < iterations:
        def closure() -> torch.Tensor:
            with torch.no_grad():
                input_img.clamp_(0, 1)
            optimizer.zero_grad()
            model(input_img)
            style_score = sum(sl.loss for sl in style_losses) / len(style_losses)
            content_score = sum(cl.loss for cl in content_losses)
            loss = style_score * s.style_weight + content_score * s.content_weight
            loss.backward()
            run[0] += 1
            return loss
        optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    return run[0]


# --- the benchmark -----------------------------------------------------------------


def images(n: int, size: int) -> list[np.ndarray]:
    """n content pictures from samples/photos (mirrored copies when there are fewer)."""
    paths = sorted((REPO / "samples" / "photos").rglob("*.jpg"))
    out = []
    for i in range(n):
        rgb = resize_longest(read_image(paths[i % len(paths)]), size)
        out.append(np.ascontiguousarray(rgb[:, ::-1]) if (i // len(paths)) % 2 else rgb)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)

    s = Settings(size=args.size, iterations=args.iterations, weights="random", device=args.device, tolerance=0.0)
    pictures = images(args.images, args.size)
    features = load_features("random", seed=0).features
    cnn = features.to(device)
    style_rgb = resize_longest(read_image(STYLE), args.size)
    job = Job(name="bench", input=REPO, styles=(StyleSpec(STYLE),), output=REPO / "unused", settings=s)

    totals = {"tutorial": 0.0, "nst-batch": 0.0}
    iters = {"tutorial": 0, "nst-batch": 0}
    sync(args.device)
    t0 = time.perf_counter()
    ctx = JobContext.create(job, ModelCache())  # once per job: extractor and style Grams
    sync(args.device)
    totals["nst-batch"] += time.perf_counter() - t0
    for rgb in pictures:
        t0 = time.perf_counter()
        content = to_tensor(rgb, device)
        style = to_tensor(resize_exact(style_rgb, rgb.shape[1], rgb.shape[0]), device)  # the tutorial's same-size style
        iters["tutorial"] += tutorial_stylize(cnn, content, style, args.iterations, s)
        sync(args.device)
        totals["tutorial"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        iters["nst-batch"] += stylize_frame(ctx, rgb, iterations=args.iterations).iterations
        sync(args.device)
        totals["nst-batch"] += time.perf_counter() - t0

    rows = [{"arm": arm, "seconds": totals[arm], "s_per_image": totals[arm] / args.images,
             "iterations": iters[arm], "s_per_iteration": totals[arm] / iters[arm]} for arm in totals]
    base = rows[0]
    info = machine(args.device)
    print(f"baseline benchmark: {args.images} images at {args.size} px, one style, {args.iterations} iterations each; "
          f"{WEIGHTS_NOTE}; torch {info['torch']}, device {args.device}, {info['cores']} cores")
    print(f"{'arm':12} {'time s':>8} {'s/image':>8} {'iterations':>10} {'s/iteration':>12} {'vs tutorial':>11}")
    for r in rows:
        print(f"{r['arm']:12} {r['seconds']:8.1f} {r['s_per_image']:8.2f} {r['iterations']:10d} "
              f"{r['s_per_iteration']:12.4f} {r['s_per_iteration'] / base['s_per_iteration']:11.2f}")
    print("saved", save("baseline", {"args": vars(args), "rows": rows, "machine": info, "weights": WEIGHTS_NOTE}))


if __name__ == "__main__":
    main()
