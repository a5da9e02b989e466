"""Manifest loading: the contract from the issue is accepted; each mistake gives file:line: key: message."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_manifest
from nst_batch.errors import ManifestError
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.settings import Settings


@pytest.fixture()
def tree(tmp_path: Path, photos: Path, style_image: Path, style_image2: Path) -> Path:
    return tmp_path


CONTRACT = """
version: 1
defaults:
  size: 512
  iterations: 300
  optimizer: lbfgs
  learning_rate: 1.0
  content_weight: 1.0
  style_weight: 1.0e4
  tv_weight: 1.0e-3
  content_layers: [conv4_2]
  style_layers: [conv1_1, conv2_1, conv3_1, conv4_1, conv5_1]
  init: content
  seed: 0
  device: auto
  weights: imagenet
  format: png
jobs:
  - name: paris
    input: photos
    style: styles/starry.jpg
    output: out/paris
  - name: blend
    input: photos/astronaut.jpg
    style:
      - {image: styles/starry.jpg, weight: 0.7}
      - {image: styles/graffiti.jpg, weight: 0.3}
    output: out/blend
    iterations: 200
"""


def test_contract_manifest_is_accepted(tree: Path) -> None:
    m = load_manifest(write_manifest(tree / "pipeline.yaml", CONTRACT))
    paris, blend = m.jobs
    assert paris.input == tree / "photos" and paris.output == tree / "out" / "paris"
    assert paris.settings.iterations == 300 and blend.settings.iterations == 200  # per-job override
    assert paris.settings.style_weight == 1.0e4 and blend.settings.learning_rate == 1.0
    assert [s.weight for s in blend.styles] == [0.7, 0.3]
    assert blend.styles[1].image == tree / "styles" / "graffiti.jpg"


def test_builtin_defaults_and_set_overrides(tree: Path) -> None:
    path = write_manifest(tree / "p.yaml", """
version: 1
jobs:
  - {input: photos, style: styles/starry.jpg, output: out/a, iterations: 7}
""")
    job = load_manifest(path).jobs[0]
    assert job.settings == Settings(iterations=7) and job.name == "photos"
    over = parse_overrides(["size=64", "iterations=5", "weights=random", "video.iterations=3",
                            "style_layers=[conv1_1]"])
    job = load_manifest(path, over).jobs[0]
    assert (job.settings.size, job.settings.iterations, job.settings.weights) == (64, 5, "random")
    assert job.settings.video.iterations == 3 and job.settings.style_layers == ("conv1_1",)


BAD = [
    # (manifest text, expected fragments of the one-line message)
    ("version: 1\njobs: [\n", ["p.yaml:3:", "YAML syntax error"]),
    ("version: 2\njobs: []\n", ["p.yaml:1: version", "unsupported manifest version 2"]),
    ("- a\n- b\n", ["p.yaml:1", "must be a mapping"]),
    ("version: 1\njbos: []\n", ["p.yaml:2", "unknown top-level key 'jbos'", "did you mean 'jobs'"]),
    ("version: 1\njobs: []\n", ["p.yaml:2: jobs", "non-empty list"]),
    ("version: 1\ndefaults:\n  sise: 64\njobs: [{input: photos, style: styles/starry.jpg, output: o}]\n",
     ["p.yaml:3: defaults.sise", "did you mean 'size'"]),
    ("version: 1\ndefaults:\n  size: -3\njobs: [{input: photos, style: styles/starry.jpg, output: o}]\n",
     ["p.yaml:3: defaults.size", "must be > 0"]),
    ("version: 1\ndefaults:\n  size: big\njobs: [{input: photos, style: styles/starry.jpg, output: o}]\n",
     ["defaults.size", "whole number"]),
    ("version: 1\ndefaults:\n  optimizer: sgd\njobs: [{input: photos, style: styles/starry.jpg, output: o}]\n",
     ["p.yaml:3: defaults.optimizer", "lbfgs, adam", "'sgd'"]),
    ("version: 1\ndefaults:\n  style_layers: [conv1_1, conv6_1]\n"
     "jobs: [{input: photos, style: styles/starry.jpg, output: o}]\n",
     ["defaults.style_layers", "unknown VGG19 layer 'conv6_1'"]),
    ("version: 1\ndefaults:\n  content_layers: [conv4_3x]\n"
     "jobs: [{input: photos, style: styles/starry.jpg, output: o}]\n",
     ["did you mean 'conv4_3'"]),
    ("version: 1\ndefaults:\n  device: gpu\njobs: [{input: photos, style: styles/starry.jpg, output: o}]\n",
     ["defaults.device", "cuda:N"]),
    ("version: 1\njobs:\n  - input: nowhere\n    style: styles/starry.jpg\n    output: o\n",
     ["p.yaml:3: jobs[0].input", "input not found", "nowhere"]),
    ("version: 1\njobs:\n  - input: photos\n    style: styles/missing.jpg\n    output: o\n",
     ["p.yaml:4: jobs[0].style", "style image not found"]),
    ("version: 1\njobs:\n  - input: photos\n    output: o\n", ["p.yaml:3: jobs[0]", "missing required key 'style'"]),
    ("version: 1\njobs:\n  - input: photos\n    style: styles/starry.jpg\n    output: o\n    iteratons: 5\n",
     ["p.yaml:6: jobs[0].iteratons", "did you mean 'iterations'"]),
    ("version: 1\njobs:\n  - input: photos\n    style: styles/starry.jpg\n    output: photos/out\n",
     ["output", "would write into the input"]),
    ("version: 1\njobs:\n  - {name: a, input: photos, style: styles/starry.jpg, output: o}\n"
     "  - {name: a, input: photos, style: styles/starry.jpg, output: o2}\n", ["p.yaml:4", "duplicate job name 'a'"]),
    ("version: 1\njobs:\n  - input: photos\n    style: [{image: styles/starry.jpg, weight: -1}]\n    output: o\n",
     ["jobs[0].style[0].weight", "must be > 0"]),
    ("version: 1\njobs:\n  - input: photos\n    style: styles/starry.jpg\n    output: o\n    video: {iteration: 3}\n",
     ["jobs[0].video.iteration", "did you mean 'iterations'"]),
    ("version: 1\njobs:\n  - input: photos\n    style: styles/starry.jpg\n    output: o\n"
     "    video: {start: 2, end: 1}\n",
     ["video.end (1.0) must be after video.start"]),
    ("version: 1\njobs:\n  - input: photos\n    style: styles/starry.jpg\n    output: o\n    weights: nope.pth\n",
     ["weights file not found"]),
    ("version: 1\njobs:\n  - input: photos\n    style: styles/starry.jpg\n    output: o\n"
     "    style_layer_weights: [1, 2]\n", ["style_layer_weights has 2 values but style_layers has 5"]),
    ("version: 1\njobs:\n  - input: photos\n    style: styles/starry.jpg\n    output: o\n"
     "    style_layer_weights: [0, 0, 0, 0, 0]\n",
     ["p.yaml:3: jobs[0]", "style_layer_weights must be >= 0 with at least one > 0"]),
    ("version: 1\njobs:\n  - input: photos\n    style: styles/starry.jpg\n    output: o\n"
     "    style_layer_weights: [1, -1, 1, 1, 1]\n", ["style_layer_weights must be >= 0"]),
    ("version: 1\njobs:\n  - input: photos\n    style: styles/starry.jpg\n    output: o\n"
     "    content_weight: 0\n    style_weight: 0\n    tv_weight: 0\n", ["are all 0: nothing to optimise"]),
]


@pytest.mark.parametrize(("text", "fragments"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_manifest_messages(tree: Path, text: str, fragments: list[str]) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(write_manifest(tree / "p.yaml", text))
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(("item", "fragment"), [
    ("size", "expected KEY=VALUE"),
    ("colour=red", "unknown setting 'colour'"),
    ("iterations=many", "whole number"),
    ("video.flw=dis", "did you mean 'flow'"),
])
def test_bad_overrides(item: str, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment):
        parse_overrides([item])


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found"):
        load_manifest(tmp_path / "nope.yaml")


# --- outputs that meet, and outputs of the wrong kind: manifest errors, before any work -----------


@pytest.mark.parametrize(("a", "b", "inner", "outer"), [
    ("{input: photos, output: out}", "{input: photos/astronaut.jpg, output: out/x.png}", "out/x.png", "out"),
    ("{input: photos/astronaut.jpg, output: out/x.png}", "{input: photos, output: out}", "out/x.png", "out"),
    ("{input: photos, output: out/a}", "{input: photos, output: out/a/b}", "out/a/b", "out/a"),
])
def test_nested_outputs_name_both_jobs(tree: Path, a: str, b: str, inner: str, outer: str) -> None:
    style = "style: styles/starry.jpg, "
    path = write_manifest(tree / "p.yaml", f"""
version: 1
jobs:
  - {a.replace("{", "{name: a, " + style)}
  - {b.replace("{", "{name: b, " + style)}
""")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert "\n" not in message
    assert f"jobs 'a' ({path}:3) and 'b' ({path}:4)" in message, message
    assert f"{tree / inner} lies inside {tree / outer}" in message, message


def test_the_same_output_twice_names_both_jobs(tree: Path) -> None:
    path = write_manifest(tree / "p.yaml", """
version: 1
jobs:
  - {name: a, input: photos/astronaut.jpg, style: styles/starry.jpg, output: out/x.png}
  - {name: b, input: photos/chelsea.png, style: styles/starry.jpg, output: out/x.png}
""")
    with pytest.raises(ManifestError, match=rf"jobs 'a' \({path}:3\) and 'b' \({path}:4\) write to the same output"):
        load_manifest(path)


def test_side_by_side_outputs_are_fine(tree: Path) -> None:
    (tree / "clip.mp4").write_bytes(b"")  # the manifest goes by the name; `validate` opens it
    path = write_manifest(tree / "p.yaml", """
version: 1
jobs:
  - {name: a, input: photos, style: styles/starry.jpg, output: out/a}
  - {name: b, input: photos/astronaut.jpg, style: styles/starry.jpg, output: out/ab.png}
  - {name: c, input: clip.mp4, style: styles/starry.jpg, output: out/c.mp4}
  - {name: d, input: clip.mp4, style: styles/starry.jpg, output: out/d}
  - {name: e, input: photos/chelsea.png, style: styles/starry.jpg, output: out/e}
""")
    assert [j.name for j in load_manifest(path).jobs] == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(("input_", "output", "fragment"), [
    ("photos/astronaut.jpg", "out/x.mp4", "is an image, so the output is an image: name it x.png or .jpg"),
    ("photos/astronaut.jpg", "out/x.mov", "is an image, so the output is an image"),
    ("clip.mp4", "out/x.png", "is a video, so the output is a video: name it x.mp4"),
    ("clip.mp4", "out/x.jpg", "is a video, so the output is a video"),
    ("clip.mp4", "out/x.mov", "a video is written as an H.264 mp4: name the output x.mp4"),
    ("photos", "out/x.png", "is a folder, so the output must be a folder, not the file name x.png"),
    ("photos", "out/x.mp4", "is a folder, so the output must be a folder"),
    ("videos", "out/x.mp4", "is a folder, so the output must be a folder"),
])
def test_an_output_of_the_wrong_kind_is_a_manifest_error(tree: Path, input_: str, output: str, fragment: str) -> None:
    (tree / "clip.mp4").write_bytes(b"")
    (tree / "videos").mkdir()
    (tree / "videos" / "v.mp4").write_bytes(b"")
    path = write_manifest(tree / "p.yaml", f"""
version: 1
jobs:
  - name: j
    input: {input_}
    style: styles/starry.jpg
    output: {output}
""")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert message.startswith(f"{path}:6: jobs[0].output: ") and fragment in message, message


def test_paths_on_the_command_line_resolve_against_the_current_folder(
        tree: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 24 item 3: `--weights ./w/my.pth` and `--set init=...` are what the user typed, where they stand."""
    (tree / "project").mkdir()
    manifest = write_manifest(tree / "project" / "pipeline.yaml",
                              CONTRACT.replace("photos", "../photos").replace("styles/", "../styles/"))
    here = tmp_path_factory.mktemp("elsewhere")
    (here / "w").mkdir()
    (here / "w" / "my.pth").write_bytes(b"not read here")
    (here / "start.png").write_bytes(b"not read here")
    monkeypatch.chdir(here)
    job = load_manifest(manifest, parse_overrides(["weights=./w/my.pth", "init=start.png"])).jobs[0]
    assert job.settings.weights == str(here / "w" / "my.pth")
    assert job.settings.init == str(here / "start.png")
    # A file missing where the user stands is blamed on the --set, not on a line of the manifest.
    with pytest.raises(ManifestError) as missing:
        parse_overrides(["weights=./w/other.pth"])
    assert str(missing.value).startswith("--set weights=./w/other.pth: weights: weights file not found")
    assert str(here / "w" / "other.pth") in str(missing.value)
    # Words are not paths; and the manifest's own paths still resolve against the manifest.
    assert parse_overrides(["weights=random", "init=noise"]) == {"weights": "random", "init": "noise"}
    monkeypatch.chdir(tree / "project")
    inside = write_manifest(tree / "project" / "p2.yaml",
                            CONTRACT.replace("photos", "../photos").replace("styles/", "../styles/")
                            .replace("init: content", "init: ../photos/astronaut.jpg"))
    assert load_manifest(inside).jobs[0].settings.init == str(tree / "photos" / "astronaut.jpg")
