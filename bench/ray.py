"""Ray: units/hour with 1 vs N workers (and the local executor), and the seam of a segmented video.

    python bench/ray.py                      # 8 photos at 128 px; vtest.avi 24 frames at 128 px
    python bench/ray.py --images 8 --size 128 --iterations 20 --workers 2

Every run is a real `nst-batch run` in a subprocess (each starts its own local Ray), on
the same inputs, side by side in one invocation. Random VGG19 weights (same arithmetic
cost as ImageNet's). The seam table compares E_warp at segment boundaries with E_warp
inside segments, and with the unsegmented video.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from common import REPO, machine, save

CLIP = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")  # Debian's opencv-doc
PHOTOS = sorted((REPO / "samples" / "photos").rglob("*.jpg"))


def _project(root: Path, images: int, clip: Path, frames: int, segment: int | None, overlap: int) -> Path:
    (root / "photos").mkdir(parents=True)
    for i in range(images):
        shutil.copy(PHOTOS[i % len(PHOTOS)], root / "photos" / f"{i:02d}.jpg")
    reader = cv2.VideoCapture(str(clip))
    fps = reader.get(cv2.CAP_PROP_FPS) or 10
    writer = None
    for _ in range(frames):  # the first `frames` frames, as a short clip of their own
        ok, frame = reader.read()
        if not ok:
            break
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
        writer.write(frame)
    writer.release()
    video = f"    video: {{segment_frames: {segment}, overlap: {overlap}}}\n" if segment else ""
    text = ("version: 1\njobs:\n"
            f"  - {{name: photos, input: photos, style: {REPO / 'samples/styles/starry_night.jpg'}, "
            f"output: out/photos}}\n"
            f"  - name: clip\n    input: clip.avi\n    style: {REPO / 'samples/styles/starry_night.jpg'}\n"
            f"    output: out/clip.mp4\n{video}")
    (root / "p.yaml").write_text(text)
    return root / "p.yaml"


def _run(root: Path, args: list[str], sets: list[str]) -> tuple[float, dict]:
    env = {**os.environ, "COLUMNS": "200"}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "nst_batch", "run", str(root / "p.yaml"), "--quiet", "--weights",
                          "random", "--device", "cpu", *sets, *args], cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"run {args} failed:\n{res.stdout}\n{res.stderr}")
    ledger = root / "out" / ".nst-batch" / "clip.mp4" / "ledger.jsonl"
    video = [json.loads(line) for line in ledger.read_text().splitlines() if '"done"' in line][-1]["metrics"]
    return seconds, video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--segment", type=int, default=8)
    ap.add_argument("--overlap", type=int, default=5)
    args = ap.parse_args()
    if not CLIP.exists():
        raise SystemExit(f"{CLIP} not found: apt-get install opencv-doc")
    sets = ["--set", f"size={args.size}", "--set", f"iterations={args.iterations}",
            "--set", f"video.first_iterations={args.iterations * 2}",
            "--set", f"video.iterations={args.iterations // 2}"]
    units = args.images + 1
    runs = [("local", [], None), ("ray, 1 worker", ["--executor", "ray", "--workers", "1"], None),
            (f"ray, {args.workers} workers", ["--executor", "ray", "--workers", str(args.workers)], None),
            (f"ray, {args.workers} workers, segments of {args.segment}",
             ["--executor", "ray", "--workers", str(args.workers)], args.segment)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra, segment in runs:
            root = Path(tmp) / name.replace(" ", "_").replace(",", "")
            _project(root, args.images, CLIP, args.frames, segment, args.overlap)
            seconds, video = _run(root, extra, sets)
            rows.append({"run": name, "seconds": seconds, "units_per_hour": units * 3600 / seconds, **{
                k: video.get(k) for k in ("e_warp", "e_warp_input", "e_warp_seam", "e_warp_inside", "segments")}})
    base = rows[1]["units_per_hour"]
    print(f"{units} units ({args.images} photos + a {args.frames}-frame clip of vtest.avi) at {args.size} px, "
          f"{args.iterations} iterations; {os.cpu_count()} cores")
    print(f"{'run':38s} {'seconds':>8s} {'units/h':>8s} {'vs 1 worker':>11s} {'E_warp':>9s} {'seam':>9s} "
          f"{'inside':>9s}")
    for r in rows:
        fmt = lambda v: f"{v:9.2e}" if isinstance(v, float) else f"{'-':>9s}"  # noqa: E731
        print(f"{r['run']:38s} {r['seconds']:8.1f} {r['units_per_hour']:8.0f} {r['units_per_hour'] / base:10.2f}x "
              f"{fmt(r['e_warp'])} {fmt(r['e_warp_seam'])} {fmt(r['e_warp_inside'])}")
    print(f"input E_warp (the floor): {rows[0]['e_warp_input']:.2e}")
    print("saved", save("ray", {"machine": machine("cpu"), "args": vars(args), "rows": rows}))


if __name__ == "__main__":
    main()
