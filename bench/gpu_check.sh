#!/usr/bin/env bash
# GPU check for the Performance issues: one prepared script, under 8 minutes on a modern GPU.
#
#   bash bench/gpu_check.sh            # from the repository root; PYTHON=... to choose the interpreter
#
# Reports (random VGG19 weights: same arithmetic as ImageNet's, no download needed):
#   1. s/iteration at 512 px: fp32 vs tf32 vs bf16 vs tf32 + torch.compile   (bench/precision.py)
#   2. frames/s on a 48-frame clip at 512 px: first frame 500 iterations, 100 warm iterations
#      per later frame, flow + temporal loss, at tf32 (the default) and bf16
#   3. peak CUDA memory at 1080p, with and without memory_saving             (bench/memory.py)
#   4. s/iteration engine vs floor at 256 and 512 px                          (bench/iteration.py)
#   5. s/image at 512 px with batch_size 1, 2, 4, 8                           (bench/batch.py)
#   6. precision in the backward: the TF32 flags, cuDNN benchmark (and bf16 autocast) of fp32, tf32, bf16
#      as seen by every convolution of the forward, of memory_saving's recomputation and by the
#      features' gradients (512 px); peak CUDA memory at 1080p in bf16, memory_saving off and on
#   7. the optimiser's loop (issue 26): ms per iteration before (torch's LBFGS, host read-backs) and now
#      (on the device) against the VGG fwd+bwd floor at 256, 512, 1024 px, and read-backs per iteration
#      (bench/device_loop.py); goal: now within 1.3x the floor at 512 px
#   8. the sample clip (30 frames at 320 px, its own size) with frames and flows ahead of the loop against
#      inline (issue 26 item 3): wall time, and what the loop waited for outside the engine
#      (bench/video_waits.py)
# JSON lands in bench/results/ (or $OUT/results when $OUT is set).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export NST_BATCH_OFFLINE=1
"$PY" -c "import torch, sys; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name())"

echo "== 1. precision at 512 px"
timeout 120 "$PY" bench/precision.py --device cuda --sizes 512 --iterations 20 --rounds 3 --compile || echo "precision: failed or timed out"

echo "== 2. 48-frame clip at 512 px, 100 warm iterations"
timeout 170 "$PY" - <<'PY' || echo "video: failed or timed out"
import dataclasses, sys, tempfile, time
from pathlib import Path
import cv2, numpy as np, torch
sys.path.insert(0, "bench")
from common import CONTENT, STYLE, save
from nst_batch.settings import Job, Settings, StyleSpec, VideoSettings
from nst_batch.work.video import stylize_video
from nst_batch.context import JobContext
from nst_batch.models import ModelCache

tmp = Path(tempfile.mkdtemp())
clip = tmp / "pan.mp4"  # 48 frames, 10 fps, a slow pan across a sample photo: real motion for the flow
photo = cv2.resize(cv2.imread(str(CONTENT)), (1024, 1024))
out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (768, 432))
for i in range(48):
    out.write(np.ascontiguousarray(photo[200 + i * 2: 632 + i * 2, 100 + i * 4: 868 + i * 4]))
out.release()
rows = []
for precision in ("tf32", "bf16"):
    s = Settings(size=512, weights="random", device="cuda", tolerance=0.0, precision=precision,
                 video=VideoSettings(first_iterations=500, iterations=100))
    job = Job(name="gpu", input=clip, styles=(StyleSpec(STYLE),), output=tmp / "o.mp4", settings=s)
    ctx = JobContext.create(job, ModelCache())
    stamps = []
    t0 = time.perf_counter()
    stylize_video(ctx, clip, tmp / f"{precision}.mp4", work=tmp / precision, progress=lambda *a: None,
                  should_stop=lambda: False, on_frame=lambda *a: (torch.cuda.synchronize(), stamps.append(time.perf_counter())))
    total = time.perf_counter() - t0
    warm = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    rows.append({"precision": precision, "frames": len(stamps), "seconds": total, "frames_per_s": len(stamps) / total,
                 "warm_frames_per_s": 1 / warm, "first_frame_s": stamps[0] - t0})
    print(f"{precision:5} {len(stamps)} frames in {total:6.1f} s: {len(stamps) / total:5.2f} frames/s overall, "
          f"{1 / warm:5.2f} warm frames/s, first frame {stamps[0] - t0:5.1f} s", flush=True)
print("saved", save("gpu-video", {"rows": rows, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__}))
PY

echo "== 3. peak memory at 1080p"
timeout 60 "$PY" bench/memory.py --device cuda --sizes 1920 --iterations 2 || echo "memory: failed or timed out"

echo "== 4. engine vs floor"
timeout 60 "$PY" bench/iteration.py --device cuda --sizes 256 512 --iterations 10 --rounds 2 || echo "iteration: failed or timed out"

echo "== 5. batch_size at 512 px"
timeout 90 "$PY" bench/batch.py --device cuda --size 512 --images 8 --iterations 20 --batches 1 2 4 8 || echo "batch: failed or timed out"

echo "== 6. precision in the backward and the recomputation; bf16 memory at 1080p"
timeout 90 "$PY" - <<'PY' || echo "precision paths: failed, mismatched or timed out"
import os, sys
import torch
from torch import nn
sys.path.insert(0, "bench")
from common import default_weights, save
from nst_batch.engine import FeatureExtractor, OptimizeConfig, style_grams, stylize
from nst_batch.settings import Settings
from nst_batch.weights import load_features

dev = torch.device(os.environ.get("GPU_CHECK_DEVICE", "cuda"))
s = Settings()
layers = set(s.content_layers) | set(s.style_layers)
features = load_features("random", seed=0).features.to(dev)
flags = lambda: (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
want = {"fp32": ((False, False, True), torch.float32), "tf32": ((False, True, True), torch.float32),
        "bf16": ((False, False, True), torch.bfloat16)}
phase = ["forward"]
real_backward = torch.Tensor.backward

def backward(self, *args, **kwargs):
    phase[0] = "backward"
    try:
        return real_backward(self, *args, **kwargs)
    finally:
        phase[0] = "forward"

torch.Tensor.backward = backward
gen = torch.Generator().manual_seed(0)
content, style = (torch.rand(1, 3, 384, 512, generator=gen).to(dev) for _ in range(2))
rows, bad = [], 0
for precision, (flags_wanted, dtype_wanted) in want.items():
    ex = FeatureExtractor(features, layers, memory_saving=True).to(dev)
    grams = style_grams(ex, [(style, 1.0)], s.style_layers, precision=precision)
    seen = []  # (what, phase, flags, dtype)
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(("conv", phase[0], flags(), o.dtype)))
             for m in ex.layers if isinstance(m, nn.Conv2d)]  # the convolutions are `features`' own: removed below

    def on_features(module, inputs, out):  # returns None: a forward hook's return replaces the output
        for f in out.values():
            if f.requires_grad:
                f.register_hook(lambda g: seen.append(("grad", phase[0], flags(), g.dtype)))

    ex.register_forward_hook(on_features)
    stylize(extractor=ex, content=content, grams=grams, weights=default_weights(), init=content,
            config=OptimizeConfig(iterations=3, precision=precision))
    for hook in hooks:
        hook.remove()
    kinds = sorted({(w, p) for w, p, _, _ in seen})
    wrong = [r for r in seen if r[2] != flags_wanted or (r[0] == "conv" and r[3] != dtype_wanted)]
    ok = not wrong and ("conv", "backward") in kinds and ("grad", "backward") in kinds
    bad += not ok
    rows.append({"precision": precision, "records": len(seen), "wrong": len(wrong), "kinds": kinds, "ok": ok,
                 "first_wrong": repr(wrong[0]) if wrong else None})
    print(f"{precision:5} {'ok' if ok else 'MISMATCH'}: {len(seen)} records (forward, recomputation, gradients), "
          f"{len(wrong)} with other flags/dtype{'' if ok else ', e.g. ' + repr(wrong[:1]) + ' ' + repr(kinds)}",
          flush=True)
torch.Tensor.backward = real_backward
if dev.type == "cuda":
    content, style = (torch.rand(1, 3, 1080, 1920, generator=gen).to(dev) for _ in range(2))
    for saving in (False, True):
        ex = FeatureExtractor(features, layers, memory_saving=saving).to(dev)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        grams = style_grams(ex, [(style, 1.0)], s.style_layers, precision="bf16")
        stylize(extractor=ex, content=content, grams=grams, weights=default_weights(), init=content,
                config=OptimizeConfig(iterations=2, precision="bf16"))
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        rows.append({"precision": "bf16", "width": 1920, "height": 1080, "memory_saving": saving, "cuda_extra_mb": peak})
        print(f"bf16 1920x1080 memory_saving={str(saving).lower():5}: peak {peak:7.0f} MB above the loaded model", flush=True)
print("saved", save("gpu-precision-paths", {"rows": rows, "device": str(dev), "torch": torch.__version__,
                                            "gpu": torch.cuda.get_device_name() if dev.type == "cuda" else None}))
sys.exit(1 if bad else 0)
PY

echo "== 7. the optimiser's loop, before and now, against the floor"
timeout 120 "$PY" bench/device_loop.py --device cuda --sizes 256 512 1024 --iterations 40 --rounds 2 || echo "device loop: failed or timed out"

echo "== 8. frames and flows ahead of the loop against inline, the sample clip at 320 px"
timeout 150 "$PY" bench/video_waits.py --device cuda --clip samples/clip.mp4 --size 320 --first-iterations 100 \
  --iterations 30 --rounds 1 || echo "video waits: failed or timed out"

if [ -n "${OUT:-}" ]; then mkdir -p "$OUT/results" && cp bench/results/*.json "$OUT/results/"; fi
