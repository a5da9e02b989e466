"""Bad input, table-driven, through the command: exit code, a clear message, never a traceback.

Every row runs on one shared tree of good and bad files (manifests, media, weights,
paths), all before the first test; each test checks one row's result. Most rows call
the command in this process (typer's CliRunner, in the tree's folder, with the row's
environment): starting Python and torch costs seconds a row. The rows marked `process`
run the real `python -m nst_batch` in a subprocess, meanwhile, so that the console
script's own path (entry point, a real stderr, a fresh interpreter loading a crafted
pickle) stays covered for each kind of failure: manifest, media, weights.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from cli_helpers import nst_here
from conftest import sample_photo, write_rgb
from videogen import make_clip, make_not_video, make_zero_frames

RANDOM = ("--weights", "random")  # rows about weights leave it out: it would override the manifest's
FAST = ("--device", "cpu", "--set", "size=32", "--set", "iterations=2",
        "--set", "style_layers=[conv1_1]", "--set", "content_layers=[conv1_1]")
MARKER = "code-ran.txt"  # created by the crafted pickle and YAML below if their code ever runs


@dataclass(frozen=True)
class Row:
    id: str
    args: tuple[str, ...]  # after `nst-batch`; "M" stands for this row's manifest
    manifest: str | None  # its text ("OUT" stands for out/<id>); None: the row brings no manifest
    rc: int
    fragments: tuple[str, ...]  # each must appear in stdout + stderr
    process: bool = False  # run the real command in a subprocess (else in this process)


def _job(input: str = "photos", style: str = "styles/s.jpg", output: str = "OUT", **extra: str) -> str:  # noqa: A002
    lines = [f"  - name: j\n    input: {input}\n    style: {style}\n    output: {output}\n"]
    lines += [f"    {k}: {v}\n" for k, v in extra.items()]
    return "version: 1\njobs:\n" + "".join(lines)


def validate(id: str, manifest: str | None, rc: int, *fragments: str, args: tuple[str, ...] = RANDOM,  # noqa: A002
             process: bool = False) -> Row:
    return Row(id, ("validate", "M", *args), manifest, rc, fragments, process)


def run(id: str, manifest: str | None, rc: int, *fragments: str, args: tuple[str, ...] = RANDOM,  # noqa: A002
        process: bool = False) -> Row:
    return Row(id, ("run", "M", *FAST, *args), manifest, rc, fragments, process)


ROWS = [
    # --- the manifest: `file:line: key: what`, exit 2 -------------------------------------------
    validate("yaml-syntax", "version: 1\njobs: [\n", 2, "M.yaml:3:", "YAML syntax error", process=True),
    validate("version", "version: 2\njobs: []\n", 2, "M.yaml:1: version", "unsupported manifest version 2"),
    validate("empty-file", "", 2, "no `version:` key", "`version: 1`"),
    validate("no-version", "jobs:\n  - {input: in, style: s.jpg, output: o}\n", 2, "M.yaml:1: no `version:` key"),
    validate("tab", "version: 1\njobs:\n\t- input: in\n", 2, "M.yaml:3:1: YAML syntax error",
             "YAML indents with spaces, not tabs"),
    validate("required-key-typo", "version: 1\njobs:\n  - input: in\n    styel: s.jpg\n    output: o\n", 2,
             "M.yaml:4: jobs[0].styel: unknown key 'styel' (did you mean 'style'?)"),
    validate("top-typo", "version: 1\njbos: []\n", 2, "M.yaml:2", "unknown top-level key 'jbos'",
             "did you mean 'jobs'"),
    validate("setting-typo", _job(sise="64"), 2, "M.yaml:7: jobs[0].sise", "did you mean 'size'"),
    validate("optimizer", _job(optimizer="sgd"), 2, "jobs[0].optimizer", "must be one of lbfgs, adam", "'sgd'"),
    validate("size-word", _job(size="big"), 2, "M.yaml:7: jobs[0].size", "must be a whole number or 'original'"),
    validate("layer", _job(style_layers="[conv1_1, conv6_1]"), 2, "unknown VGG19 layer 'conv6_1'"),
    validate("input-missing", _job(input="nowhere"), 2, "M.yaml:4: jobs[0].input", "input not found", "nowhere"),
    validate("style-missing", _job(style="styles/missing.jpg"), 2, "jobs[0].style", "style image not found"),
    validate("duplicate-name", "version: 1\njobs:\n  - {name: a, input: photos, style: styles/s.jpg, output: OUT/1}\n"
             "  - {name: a, input: photos, style: styles/s.jpg, output: OUT/2}\n", 2, "M.yaml:4",
             "duplicate job name 'a'"),
    validate("python-tag", f"version: 1\njobs: !!python/object/apply:os.system ['echo > {MARKER}']\n", 2,
             "YAML syntax error", "could not determine a constructor", "python/object/apply"),
    Row("manifest-missing", ("validate", "nowhere.yaml"), None, 2, ("nowhere.yaml: manifest not found",)),
    validate("set-syntax", _job(), 2, "--set size", "expected KEY=VALUE", args=(*RANDOM, "--set", "size")),
    # --- media: the unit fails with the file and the reason, exit 1 -----------------------------
    run("image-corrupt", _job(input="bad/broken.jpg"), 1, "broken.jpg: cannot decode the image", "1 failed",
        process=True),
    run("video-truncated", _job(input="bad/truncated.mp4"), 1, "truncated.mp4: truncated video: decoded 4 of 16"),
    run("video-text", _job(input="bad/text.mp4"), 1, "text.mp4: not a readable video"),
    run("video-no-frames", _job(input="bad/empty.avi"), 1, "empty.avi: video has no frames"),
    run("style-corrupt", _job(style="bad/broken.jpg"), 1, "broken.jpg: cannot decode the image"),
    run("folder-empty", _job(input="nothing"), 1, "holds no images or videos"),
    run("input-unknown-type", _job(input="notes.txt"), 1, "notes.txt is neither a folder, an image"),
    # --- weights: exit 2, checked up front by `validate` and by `run` (once, before any job) --------
    validate("weights-missing", _job(weights="nowhere.pth"), 2, "jobs[0]", "weights file not found", args=()),
    validate("weights-code", _job(weights="weights/evil.pth"), 2, "evil.pth: refused: not a plain tensor state dict",
             args=()),
    run("weights-code-run", _job(weights="weights/evil.pth"), 2, "job 'j': ",
        "evil.pth: refused: not a plain tensor state dict", args=(), process=True),
    run("weights-imagenet-offline-run", _job(), 2, "job 'j': VGG19 ImageNet weights not found", args=()),
    Row("weights-code-import", ("weights", "import", "weights/evil.pth"), None, 2, ("evil.pth: refused",)),
    validate("weights-junk", _job(weights="weights/junk.pth"), 2, "junk.pth: refused: not a plain tensor state dict",
             args=()),
    validate("weights-not-vgg19", _job(weights="weights/small.pth"), 2, "small.pth: not a VGG19 state dict",
             "(missing ['0.bias', '2.bias', '2.weight'])", args=()),
    validate("weights-imagenet-offline", _job(), 2, "ImageNet VGG19 weights not found", "nst-batch weights import",
             args=()),
    validate("device-missing", _job(), 2, "device 'cuda:99'", args=(*RANDOM, "--device", "cuda:99")),
    # --- paths -----------------------------------------------------------------------------------
    validate("output-in-input", _job(output="photos/out"), 2, "would write into the input of job 'j'"),
    # An output folder holding a file input: the output would be the input itself.
    validate("output-overwrites-input", _job(input="solo/a.png", output="solo"), 2,
             "the output", "solo/a.png would overwrite the input"),
    run("output-not-writable", _job(input="photos/a.png", output="blocker/out"), 1,
        "blocker/out/.nst-batch: output location is not writable"),
    validate("style-is-folder", _job(style="styles"), 2, "styles: is a folder, not an image"),
]


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"echo pwned > {MARKER}",))


@pytest.fixture(scope="module")
def bad_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad_inputs")
    write_rgb(root / "photos" / "a.png", sample_photo("astronaut.jpg", 40))
    write_rgb(root / "solo" / "a.png", sample_photo("astronaut.jpg", 40))  # its own: a run writes beside it
    write_rgb(root / "styles" / "s.jpg", sample_photo("coffee.jpg", 40))
    bad = root / "bad"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (bad / "empty.png").write_bytes(b"")
    make_clip(bad / "truncated.mp4", frames=16, fps=12, size=(64, 48), audio=False, faststart=True)
    data = (bad / "truncated.mp4").read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) * 6 // 10])  # 4 of 16 frames decode
    make_not_video(bad / "text.mp4")
    make_zero_frames(bad / "empty.avi")
    (root / "nothing").mkdir()
    (root / "notes.txt").write_text("not media\n")
    (root / "blocker").write_text("a file where a folder should be\n")
    weights = root / "weights"
    weights.mkdir()
    with open(weights / "evil.pth", "wb") as fh:
        pickle.dump({"0.weight": _Evil()}, fh)
    (weights / "junk.pth").write_bytes(b"not a checkpoint at all")
    torch.save({"0.weight": torch.zeros(64, 3, 3, 3)}, weights / "small.pth")
    return root


@pytest.fixture(scope="module")
def results(bad_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every row's result: the `process` rows in subprocesses, two at a time, while the others run here."""
    # Module scope runs before conftest's per-test isolation: set it here.
    # One torch thread: tiny tensors, and a second thread on a busy machine slows each op ~100x.
    env = {"COLUMNS": "200", "NST_BATCH_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TORCH_HOME": str(tmp_path_factory.mktemp("torch_home"))}
    for row in ROWS:
        if row.manifest is not None:
            (bad_tree / f"{row.id}.yaml").write_text(row.manifest.replace("OUT", f"out/{row.id}"), encoding="utf-8")

    def args(row: Row) -> list[str]:
        return [f"{row.id}.yaml" if a == "M" else a for a in row.args]

    def in_a_process(row: Row) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nst_batch", *args(row)], cwd=bad_tree,
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=600)

    results: dict[str, subprocess.CompletedProcess[str]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        spawned = {row.id: pool.submit(in_a_process, row) for row in ROWS if row.process}
        cwd = os.getcwd()
        os.chdir(bad_tree)  # the rows name their files relative to the tree; so would a crafted pickle
        try:
            results.update({row.id: nst_here(*args(row), env=env) for row in ROWS if not row.process})
        finally:
            os.chdir(cwd)
        results.update({key: future.result() for key, future in spawned.items()})
    return results


def test_the_table_is_big_enough() -> None:
    assert len(ROWS) >= 25 and len({r.id for r in ROWS}) == len(ROWS)
    assert {r.args[0] for r in ROWS if r.process} >= {"validate", "run"}  # the real command, for each kind


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, results: dict[str, subprocess.CompletedProcess[str]]) -> None:
    res = results[row.id]
    output = res.stdout + res.stderr
    assert res.returncode == row.rc, output
    for fragment in row.fragments:
        assert fragment.replace("M.yaml", f"{row.id}.yaml") in output, output
    assert "Traceback" not in output


def test_no_code_from_a_crafted_file_ever_ran(bad_tree: Path,
                                              results: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert {"python-tag", "weights-code", "weights-code-run", "weights-code-import"} <= set(results)
    assert not (bad_tree / MARKER).exists()
    assert not list(bad_tree.rglob(MARKER))


def test_debug_shows_the_traceback_of_a_failed_output(bad_tree: Path) -> None:
    (bad_tree / "debug.yaml").write_text(_job(input="bad", output="out/debug"), encoding="utf-8")
    res = nst_here("--debug", "run", "debug.yaml", *FAST, *RANDOM, cwd=bad_tree, env={"NST_BATCH_OFFLINE": "1"})
    assert res.returncode == 1, res.stdout + res.stderr
    assert "traceback of the failure of j/broken.png:" in res.stderr, res.stderr
    after = res.stderr.split("traceback of the failure of j/broken.png:", 1)[1]
    assert after.lstrip().startswith("Traceback (most recent call last):")
    assert "MediaError: " in after and "broken.jpg: cannot decode the image" in after
