"""`--executor ray`: the same manifest gives the same outputs as the local executor, a killed worker
loses nothing, and a segmented video has every frame and a measured seam.

The first test runs the real `nst-batch run` in a subprocess that starts its own local Ray
(2 CPUs in CI), as a user's run does. The others join one local Ray started once for the
module (`cluster`): in this process, or, for the run that is interrupted, as a subprocess
with --address; starting and stopping a Ray and the driver for each run cost ~9 s a run.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from cli_helpers import nst, nst_here, output_files
from conftest import SAMPLES, sample_photo, write_manifest, write_rgb
from videogen import make_clip, make_not_video

pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")

FAST = ["--set", "size=48", "--set", "iterations=4", "--set", "video.first_iterations=4",
        "--set", "video.iterations=2", "--weights", "random", "--device", "cpu"]
MANIFEST = """
version: 1
jobs:
  - {name: photos, input: photos, style: styles/starry.jpg, output: out/photos}
  - name: clip
    input: clip.mp4
    style: styles/starry.jpg
    output: out/clip.mp4
    video: {segment_frames: 4, overlap: 2}
"""
PHOTOS_ONLY = MANIFEST[:MANIFEST.index("  - name: clip")]


def _project(root: Path, manifest: str = MANIFEST) -> Path:
    style = cv2.cvtColor(cv2.imread(str(SAMPLES / "styles" / "starry_night.jpg")), cv2.COLOR_BGR2RGB)
    write_rgb(root / "styles" / "starry.jpg", cv2.resize(style, (64, 51), interpolation=cv2.INTER_AREA))
    for i, name in enumerate(("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg")):
        write_rgb(root / "photos" / f"{i}_{name.replace('.jpg', '.png')}", sample_photo(name, 56))
    make_clip(root / "clip.mp4", frames=12, fps=12, size=(48, 36), audio=True)
    return write_manifest(root / "p.yaml", manifest)


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _video_record(root: Path) -> dict:
    lines = (root / "out" / ".nst-batch" / "clip.mp4" / "ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if '"done"' in line][-1]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same project run by the local executor."""
    root = tmp_path_factory.mktemp("local")
    res = nst_here("run", _project(root), *FAST, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    return root


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A local Ray in this process for the module's runs to join: nst-batch's executor uses the Ray this
    process has started (and leaves it running). Yields the environment and --address a subprocess
    joins it with. Its token stays out of HOME, as nst-batch keeps that of a local Ray it starts."""
    import ray

    token = tmp_path_factory.mktemp("ray") / "auth-token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {"RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0", "NST_BATCH_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    with pytest.MonkeyPatch.context() as patch:  # Ray's processes (and so its workers) start with these
        for key, value in env.items():
            patch.setenv(key, value)
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield {**env, "address": ray.get_runtime_context().gcs_address}
    finally:
        ray.shutdown()


def _ray(cluster: dict[str, str]) -> list[str]:
    return ["--executor", "ray", "--workers", "2", "--address", cluster["address"]]


def test_ray_matches_local_and_measures_the_seams(tmp_path: Path, local_run: Path) -> None:
    manifest = _project(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    res = nst("run", manifest, *FAST, "--executor", "ray", "--workers", "2", cwd=tmp_path, env={"HOME": str(home)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ray: 2 worker(s)" in res.stdout
    assert list(home.iterdir()) == []  # Ray's state stays out of the user's home
    ours, reference = output_files(tmp_path), output_files(local_run)
    photos = {f"photos/{p.name}" for p in (local_run / "out" / "photos").glob("*.png")}
    assert set(ours) == set(reference) == photos | {"clip.mp4"}
    assert ours == reference, [k for k in ours if ours[k] != reference.get(k)]
    assert _frames(tmp_path / "out" / "clip.mp4") == 12
    metrics = _video_record(tmp_path)["metrics"]
    assert metrics["segments"] == 3 and metrics["frames"] == 12
    assert metrics["e_warp_seam"] is not None and metrics["e_warp_inside"] is not None
    assert "5 done" in res.stdout  # the summary looks as it does with local


def test_killed_worker_is_replaced_and_nothing_is_lost(tmp_path: Path, local_run: Path,
                                                      cluster: dict[str, str]) -> None:
    manifest = _project(tmp_path)
    marker = tmp_path / "killed.txt"
    res = nst_here("run", manifest, *FAST, *_ray(cluster), cwd=tmp_path, env={"NST_BATCH_CHAOS_KILL": str(marker)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert marker.exists(), "the chaos hook never killed a worker"
    assert output_files(tmp_path) == output_files(local_run)
    assert not list((tmp_path / "out").rglob("*.partial-*"))
    records = [json.loads(line) for p in (tmp_path / "out").rglob("ledger.jsonl") if "work" not in p.parts
               for line in p.read_text().splitlines()]
    done = [r["key"] for r in records if r["status"] == "done"]
    assert sorted(done) == sorted(set(done)) and len(done) == 5  # each output recorded once


def test_unreachable_cluster_is_a_clear_error(tmp_path: Path) -> None:
    manifest = _project(tmp_path)
    res = nst("run", manifest, *FAST, "--executor", "ray", "--address", "127.0.0.1:1", cwd=tmp_path, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stdout + res.stderr
    assert "--address 127.0.0.1:1: no Ray cluster answers there" in res.stderr
    assert not (tmp_path / "out").exists()


def test_sigint_stops_the_workers_and_the_run_resumes(tmp_path: Path, cluster: dict[str, str]) -> None:
    manifest = _project(tmp_path, PHOTOS_ONLY)
    slow = [*FAST, "--set", "iterations=120", "--set", "tolerance=0"]
    ledger = tmp_path / "out" / "photos" / ".nst-batch" / "ledger.jsonl"
    env = {**os.environ, "COLUMNS": "200", **{k: v for k, v in cluster.items() if k != "address"}}
    args = [sys.executable, "-m", "nst_batch", "run", str(manifest), *slow, *_ray(cluster)]
    with subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        deadline = time.monotonic() + 240
        while not (ledger.exists() and '"done"' in ledger.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, "no image finished"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted: finished outputs are kept" in err and "Traceback" not in out + err
    done = sum('"done"' in line for line in ledger.read_text().splitlines())
    assert 1 <= done < 4
    assert not list((tmp_path / "out").rglob("*.partial-*"))
    again = nst_here("run", manifest, *slow, *_ray(cluster), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"job photos: {4 - done} done, {done} skipped, 0 failed" in again.stdout


def test_a_bad_video_fails_alone_on_ray(tmp_path: Path, cluster: dict[str, str]) -> None:
    manifest = _project(tmp_path, PHOTOS_ONLY)
    make_not_video(tmp_path / "photos" / "broken.mp4")  # a folder job's video unit, to be segmented
    res = nst_here("run", manifest, *FAST, "--set", "video.segment_frames=4", *_ray(cluster), cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "failed: photos/broken.mp4" in res.stdout and "Traceback" not in res.stdout + res.stderr
    assert "4 done, 0 skipped, 1 failed" in res.stdout
    assert len(list((tmp_path / "out" / "photos").glob("*.png"))) == 4


REGIONS = """
version: 1
jobs:
  - name: photos
    input: photos
    style: styles/starry.jpg
    output: out/photos
    regions: [{mask: half.png, style_weight: 0}]
  - name: clip
    input: clip.mp4
    style: styles/starry.jpg
    output: out/clip.mp4
    regions: [{mask: half.png, style_weight: 0}]
    video: {segment_frames: 4, overlap: 2}
"""


def test_regions_on_ray_give_what_they_give_locally(tmp_path: Path, cluster: dict[str, str]) -> None:
    outputs = []
    for arm in ("local", "ray"):
        root = tmp_path / arm
        manifest = _project(root, REGIONS)
        mask = np.zeros((36, 48), np.uint8)
        mask[:, :24] = 255  # one still mask serves the 48x36 clip and the photos (close enough in shape)
        for i, name in enumerate(("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg")):
            (root / "photos" / f"{i}_{name.replace('.jpg', '.png')}").unlink()
        for i in range(2):
            write_rgb(root / "photos" / f"{i}.png", cv2.resize(sample_photo("astronaut.jpg", 56), (48, 36)))
        cv2.imwrite(str(root / "half.png"), mask)
        extra = _ray(cluster) if arm == "ray" else []
        res = nst_here("run", manifest, *FAST, *extra, cwd=root)
        assert res.returncode == 0, res.stdout + res.stderr
        outputs.append(output_files(root))
    assert outputs[0].keys() == outputs[1].keys() and len(outputs[0]) == 3
    assert outputs[0] == outputs[1]


def test_batches_run_on_ray_as_they_run_locally(tmp_path: Path, cluster: dict[str, str]) -> None:
    """`batch_size` is the same task on a Ray actor: the same batches (recorded in the ledger), so the same
    bytes."""
    outputs, batches = [], []
    for arm in ("local", "ray"):
        root = tmp_path / arm
        manifest = _project(root, PHOTOS_ONLY)
        for i in range(2):  # two more pictures of one shape: at least two full batches
            write_rgb(root / "photos" / f"x{i}.png", np.roll(sample_photo("astronaut.jpg", 56), 7 * i, axis=1))
        extra = _ray(cluster) if arm == "ray" else []
        res = nst_here("run", manifest, *FAST, "--set", "batch_size=2", "--set", "optimizer=lbfgs", *extra,
                       cwd=root)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "6 done, 0 skipped, 0 failed" in res.stdout
        outputs.append(output_files(root))
        ledger = root / "out" / "photos" / ".nst-batch" / "ledger.jsonl"
        records = [json.loads(line) for line in ledger.read_text().splitlines()]
        batches.append(sorted((r["key"], r["metrics"].get("batch")) for r in records if r["status"] == "done"))
    assert batches[0] == batches[1] and sum(b == 2 for _, b in batches[0]) >= 4, batches
    assert outputs[0].keys() == outputs[1].keys() and len(outputs[0]) == 6
    assert outputs[0] == outputs[1], [k for k in outputs[0] if outputs[0][k] != outputs[1][k]]
