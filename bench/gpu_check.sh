#!/usr/bin/env bash
# GPU check for the Performance issue: one prepared script, under 5 minutes on a modern GPU.
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
from nst_batch.video import stylize_video
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

if [ -n "${OUT:-}" ]; then mkdir -p "$OUT/results" && cp bench/results/*.json "$OUT/results/"; fi
