"""Pins: the digests of every output of the sample manifest and of the hash-seed project, local and Ray.

A structural change must leave them byte-identical. Run it before the change and after; the two JSON files
under bench/results/ must agree (`--compare A B` says where they differ). Random weights, small sizes: it
checks plumbing, not pictures.

    python bench/pins.py                      # writes bench/results/pins-<time>.json
    python bench/pins.py --compare A.json B.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_determinism import FAST, MANIFEST  # noqa: E402  # the hash-seed project the tests pin

SAMPLE_FAST = ["--set", "size=64", "--set", "iterations=8", "--set", "video.first_iterations=8",
               "--set", "video.iterations=3", "--weights", "random", "--device", "cpu"]
# The tests' project, and a batched folder (batch_size: one problem per picture, the same tasks on Ray).
HASH_SEED = MANIFEST + ("  - {name: batched, input: photos, style: style.png, output: out/batched, batch_size: 2, "
                        "optimizer: adam}\n")


def _hash_seed_project(root: Path) -> Path:
    import cv2

    from conftest import SAMPLES, sample_photo, write_rgb
    from videogen import make_clip

    style = cv2.cvtColor(cv2.imread(str(SAMPLES / "styles" / "starry_night.jpg")), cv2.COLOR_BGR2RGB)
    write_rgb(root / "style.png", cv2.resize(style, (48, 38), interpolation=cv2.INTER_AREA))
    for name in ("astronaut.jpg", "coffee.jpg", "chelsea.jpg"):
        write_rgb(root / "photos" / name.replace(".jpg", ".png"), sample_photo(name, 48))
    make_clip(root / "clip.mp4", frames=10, fps=12, size=(48, 36), audio=True)
    (root / "p.yaml").write_text(HASH_SEED.lstrip())
    return root / "p.yaml"


def _sample_project(root: Path) -> Path:
    (root / "samples").symlink_to(REPO / "samples")
    shutil.copy(REPO / "pipeline.yaml", root / "pipeline.yaml")
    return root / "pipeline.yaml"


def _digests(root: Path) -> dict[str, str]:
    out = root / "out"
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in sorted(out.rglob("*")) if p.is_file()
            and not any(part.startswith((".", "report")) for part in p.relative_to(out).parts)
            and not p.name.endswith("nst-batch.json")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", nargs=2, type=Path)
    args = ap.parse_args()
    if args.compare:
        a, b = (json.loads(p.read_text())["digests"] for p in args.compare)
        differ = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        print("identical" if not differ else "differ: " + ", ".join(differ))
        sys.exit(1 if differ else 0)
    import nst_batch

    found: dict[str, str] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for project, make, fast in (("hashseed", _hash_seed_project, FAST), ("sample", _sample_project, SAMPLE_FAST)):
            for executor in ("local", "ray"):
                root = Path(tmp) / f"{project}-{executor}"
                root.mkdir()
                manifest = make(root)
                extra = ["--executor", "ray", "--workers", "2"] if executor == "ray" else []
                env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
                       "NST_BATCH_OFFLINE": "1"}
                began = time.perf_counter()
                res = subprocess.run([sys.executable, "-m", "nst_batch", "run", str(manifest), *fast, *extra],
                                     cwd=root, env=env, capture_output=True, text=True)
                seconds[f"{project}/{executor}"] = round(time.perf_counter() - began, 1)
                if res.returncode != 0:
                    sys.exit(f"{project} {executor}: exit {res.returncode}\n{res.stdout}\n{res.stderr}")
                for name, digest in _digests(root).items():
                    found[f"{project}/{executor}/{name}"] = digest
                print(project, executor, seconds[f"{project}/{executor}"], "s", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "nst_batch"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip())
    path = REPO / "bench" / "results" / f"pins-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"commit": commit, "package_changed_since": dirty, "package": nst_batch.__file__,
                                "seconds": seconds, "digests": found}, indent=1) + "\n")
    print(path)
    for project in ("hashseed", "sample"):  # local and Ray agree?
        local = {k.split("/", 2)[2]: v for k, v in found.items() if k.startswith(f"{project}/local/")}
        ray = {k.split("/", 2)[2]: v for k, v in found.items() if k.startswith(f"{project}/ray/")}
        print(project, "local == ray:", local == ray, [k for k in local if local[k] != ray.get(k)])


if __name__ == "__main__":
    main()
