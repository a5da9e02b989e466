"""Same input, same settings, same bytes: in any process, whatever its hash seed or memory history.

The cause found for issue 14 was the encoder, not the optimisation: x264's macroblock-tree
rate control read uninitialised memory on small frames, so one process's mp4 differed from
another's. These tests fail if anything of that kind comes back.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from cli_helpers import nst, output_files
from conftest import SAMPLES, sample_photo, write_manifest, write_rgb
from nst_batch.media.video import encode_video
from videogen import make_clip, pattern

FAST = ["--set", "size=48", "--set", "iterations=4", "--set", "video.first_iterations=4",
        "--set", "video.iterations=2", "--weights", "random", "--device", "cpu"]
MANIFEST = """
version: 1
jobs:
  - {name: photos, input: photos, style: style.png, output: out/photos}
  - {name: clip, input: clip.mp4, style: style.png, output: out/clip.mp4}
  - name: segmented
    input: clip.mp4
    style: style.png
    output: out/segmented.mp4
    video: {segment_frames: 4, overlap: 2}
"""


def test_encoding_the_same_frames_gives_the_same_bytes(tmp_path: Path) -> None:
    frames = [pattern(i, 48, 36) for i in range(12)]  # a size at which x264's mbtree misbehaved
    digests = set()
    junk = []
    for i in range(4):
        encode_video(frames, tmp_path / f"{i}.mp4", fps=Fraction(12))
        digests.add((tmp_path / f"{i}.mp4").read_bytes())
        junk.append(np.random.default_rng(i).integers(0, 255, (700, 900), dtype=np.uint8))  # stir the heap
    assert len(digests) == 1


def test_outputs_do_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    roots = []
    for seed in ("1", "2"):
        root = tmp_path / f"seed{seed}"
        style = cv2.cvtColor(cv2.imread(str(SAMPLES / "styles" / "starry_night.jpg")), cv2.COLOR_BGR2RGB)
        write_rgb(root / "style.png", cv2.resize(style, (48, 38), interpolation=cv2.INTER_AREA))
        for name in ("astronaut.jpg", "coffee.jpg"):
            write_rgb(root / "photos" / name.replace(".jpg", ".png"), sample_photo(name, 48))
        make_clip(root / "clip.mp4", frames=10, fps=12, size=(48, 36), audio=True)
        res = nst("run", write_manifest(root / "p.yaml", MANIFEST), *FAST, cwd=root,
                  env={"PYTHONHASHSEED": seed, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
        assert res.returncode == 0, res.stdout + res.stderr
        roots.append(root)
    first, second = (output_files(r) for r in roots)
    assert set(first) == {"photos/astronaut.png", "photos/coffee.png", "clip.mp4", "segmented.mp4"}
    assert first == second, [k for k in first if first[k] != second.get(k)]
    # the inputs themselves were made the same way twice
    assert (roots[0] / "clip.mp4").read_bytes() == (roots[1] / "clip.mp4").read_bytes()
