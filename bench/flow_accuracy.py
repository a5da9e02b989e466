"""How far each flow lands from the truth, on virtual hand-held clips whose motion is known (`video.py shaken`).

End-point error (px at working size, mean over the pixels whose source is the same surface in the frame
before) of OpenCV's DIS as the optimiser runs it (`video.flow_preset`, the variational refinement's
settings) and of Farneback as the flicker yardstick runs it (`video/metrics.py`), each against variants.
The clips: real pictures filmed by a camera that sways, turns and zooms (1.2 px, 0.12 deg, 0.2 % kicks a
frame), clean or with sensor noise and JPEG, and with a subject crossing on a path of its own.

  python bench/flow_accuracy.py --scenes building,astronaut --size 256      # choose on these
  python bench/flow_accuracy.py --scenes cockatoo,aero --size 256           # judge on these
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.video import shaken  # noqa: E402
from nst_batch.video.flow import DIS_PRESETS, compute_flow, leaves_frame  # noqa: E402
from nst_batch.video import metrics  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


Flow = Callable[[np.ndarray, np.ndarray], np.ndarray]


def dis(**kw: float) -> Flow:
    def flow(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        d = cv2.DISOpticalFlow.create(DIS_PRESETS["medium"][0])
        for name, value in kw.items():
            getattr(d, "set" + name)(value)
        a, b = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (src, dst))
        return d.calc(a, b, None)  # type: ignore[call-overload]
    return flow


def farneback(winsize: int = 15, poly_n: int = 5, poly_sigma: float = 1.1, levels: int = 4) -> Flow:
    def flow(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        a, b = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (src, dst))
        return cv2.calcOpticalFlowFarneback(a, b, np.zeros((*a.shape, 2), np.float32), 0.5, levels, winsize, 3,
                                            poly_n, poly_sigma, 0)
    return flow


def preset(name: str) -> Flow:
    """The product's own flow (`video.flow_preset` NAME)."""
    return lambda src, dst: compute_flow(src, dst, preset=name)


FLOWS: dict[str, Flow] = {
    "dis medium (optimiser)": preset("medium"),
    "dis alpha 80": dis(VariationalRefinementAlpha=80.0),
    "dis 20 refinements (fine)": preset("fine"),
    "dis alpha 80, 20 refinements": dis(VariationalRefinementAlpha=80.0, VariationalRefinementIterations=20),
    "farneback (yardstick)": metrics.farneback_flow,
    "farneback w15 (before)": farneback(15),
    "farneback w21": farneback(21),
    "farneback w31": farneback(31),
    "farneback w41": farneback(41),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", default="building,astronaut")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--sprite", default="coffee")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    kinds = {"clean": {}, "noise 3 + jpeg 60": {"noise": 3.0, "jpeg": 60},
             "subject crossing": {"sprite": args.sprite},
             "subject + noise + jpeg": {"sprite": args.sprite, "noise": 3.0, "jpeg": 60}}
    table: dict[str, dict[str, float]] = {name: {} for name in FLOWS}
    columns = []
    for scene in args.scenes.split(","):
        for kind, kw in kinds.items():
            clip = shaken(scene, size=args.size, frames=args.frames, seed=3, **kw)  # type: ignore[arg-type]
            column = f"{scene}, {kind}"
            columns.append(column)
            for name, flow in FLOWS.items():
                errors = []
                for t in range(1, len(clip.frames)):
                    keep = clip.valid[t] & ~leaves_frame(clip.flows[t])
                    est = flow(clip.frames[t], clip.frames[t - 1])
                    errors.append(float(np.hypot(*(est - clip.flows[t]).transpose(2, 0, 1))[keep].mean()))
                table[name][column] = float(np.mean(errors))
            print(f"{column}: median true motion "
                  f"{np.mean([np.median(np.hypot(*f.transpose(2, 0, 1))) for f in clip.flows[1:]]):.2f} px/frame",
                  flush=True)
    print(f"\nend-point error, px at {args.size} px (mean over {args.frames - 1} pairs)")
    print(f"{'flow':30} " + " ".join(f"{c[:22]:>22}" for c in columns) + f" {'mean':>6}")
    for name, row in table.items():
        print(f"{name:30} " + " ".join(f"{row[c]:22.3f}" for c in columns) + f" {np.mean(list(row.values())):6.3f}")
    out = args.out or REPO / "bench" / "results" / f"flow_accuracy-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "epe": table}, indent=1) + "\n")
    print("saved", out)


if __name__ == "__main__":
    main()
