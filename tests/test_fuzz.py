"""Fuzz: generated manifests and `--set` values through `validate` and `run`, in process.

The property, for every example: no exception escapes the command (no traceback), the
exit code is 0 or 2, and an exit 2 comes with its reason on stderr, one line per problem,
each starting with `error: `. Generated values are wrong types, unicode, huge, negative,
NaN and infinite numbers, missing and unknown keys, odd paths (missing, NUL, too long,
`..`, absolute, unicode, a folder where a file belongs) and nested junk (deep nesting,
anchors that expand a billion times, unhashable and non-string keys, YAML tags).

`run` stays cheap: the inputs are a few pixels, and `--set` pins what costs time
(size 16, one iteration, random weights on the CPU, the first VGG layer) *after* the
generated overrides, so those keys are fuzzed by `validate` only. Its inputs are only
files that decode. An output that cannot be made from its input is a failed output
(exit 1) by design, the rest of the night going on: a file that does not decode
(`tests/test_bad_inputs.py`), or a `video.start` past a clip's end (`validate` says so
up front). So `run` may also exit 1, but only with each failure's reason in words,
never a bare Python error (`IndexError: ...`).

More examples: `NST_BATCH_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz.py` (each
test scales from its default); examples are random each run, and a failure prints the
one that broke (and `@seed` to reproduce it).
"""

from __future__ import annotations

import math
import os
import re
import string
import time
from collections.abc import Callable
from pathlib import Path
import typing
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from conftest import sample_photo, write_rgb
from nst_batch.cli import app
from nst_batch.manifest import SETTING_FIELDS, VIDEO_FIELDS
from nst_batch.settings import Settings, VideoSettings
from videogen import make_clip

_SCALE = float(os.environ.get("NST_BATCH_FUZZ_EXAMPLES", "0")) / 300 or 1.0


def _examples(n: int) -> Callable[[Any], Any]:
    return settings(max_examples=max(1, round(n * _SCALE)), deadline=None, database=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


# What keeps `run` cheap; given after the generated --set items, so these win.
CHEAP = ["size=16", "iterations=1", "video.first_iterations=1", "video.iterations=1", "weights=random",
         "device=cpu", "style_layers=[conv1_1]", "content_layers=[conv1_1]", "style_layer_weights=null",
         "compile=false"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    write_rgb(root / "photos" / "a.png", sample_photo("astronaut.jpg", 24))
    write_rgb(root / "photos" / "b.jpg", sample_photo("coffee.jpg", 20))
    write_rgb(root / "one.png", sample_photo("chelsea.jpg", 24))
    write_rgb(root / "styles" / "s.png", sample_photo("coffee.jpg", 24))
    write_rgb(root / "styles" / "t.jpg", sample_photo("astronaut.jpg", 20))
    make_clip(root / "clip.mp4", frames=3, fps=12, size=(32, 24), audio=False)
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not media\n")
    (root / "weights.pth").write_bytes(b"not a checkpoint")
    return root


# --- values -------------------------------------------------------------------------------------

FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1e-300, -1e-300, 1e300, 5e-324, math.inf, -math.inf, math.nan])
INTS = st.integers(-(2**70), 2**70) | st.sampled_from([0, -1, 1, 2**31, 2**32, 2**63, 2**64, -(2**63) - 1])
TEXT = st.text(max_size=12) | st.sampled_from(
    ["", " ", "ü", "日本語", "🎨", "[/bold]", "[red]x", ":smile:", "\n", "a\nb", "\t", "\x00", "%s%n", "{0}",
     "~", "..", "null", "true", "1e5", "0x10", "nan", ".inf", "auto", "original", "cuda:99999999999999999999"])
SCALARS = st.none() | st.booleans() | INTS | FLOATS | TEXT


def junk(depth: int = 2) -> st.SearchStrategy[Any]:
    """Any YAML-able value: scalars, and lists and mappings of them, a few levels deep."""
    return st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(SCALARS.filter(lambda k: k is None or not isinstance(k, float)
                                                         or not math.isnan(k)), inner, max_size=3),
                        max_leaves=8 if depth else 1)


GOOD = {  # values each setting accepts, so that examples also get past the first bad key
    "size": [16, 24, "original"], "iterations": [0, 1, 2], "optimizer": ["lbfgs", "adam"],
    "learning_rate": [0.02, 1], "content_weight": [0, 1.0], "style_weight": [0, 5.0], "tv_weight": [0, 2],
    "content_layers": [["relu1_1"], "conv1_1", ["relu4_2", "conv5_4"]], "style_layers": [["conv1_1", "relu2_1"]],
    "style_layer_weights": [None, [1.0], [0.5, 1]], "style_scale": [0.5, 1.0, 2], "init": ["content", "noise"],
    "preserve_colors": [True, False], "output_size": ["working", "original"], "pooling": ["max", "avg"],
    "seed": [0, 7], "device": ["cpu", "auto"], "model": ["vgg19", "vgg16"], "weights": ["random"],
    "preprocess": ["auto", "torchvision", "caffe"], "format": ["png", "jpg"], "quality": [1, 95, 100],
    "tolerance": [0, 1e-3], "scales": [[1.0], [0.5, 1.0], [0.25, 0.5, 1.0]], "precision": ["fp32", "tf32", "bf16"],
    "memory_saving": [True, False], "compile": [False], "batch_size": [1, 2],
    "video.first_iterations": [1, 2], "video.iterations": [0, 1], "video.temporal_weight": [0, 1e3],
    "video.warm_start": [True, False], "video.flow": ["dis", "none"], "video.scene_cut": [0, 0.5, 1],
    "video.start": [0, 0.05, 0.1], "video.end": [None, 0.2, 10], "video.keep_frames": [True, False],
    "video.segment_frames": [None, 1, 2], "video.overlap": [0, 1, 5],
}
ALL_KEYS = [k for k in SETTING_FIELDS if k != "video"] + [f"video.{k}" for k in VIDEO_FIELDS]
assert set(GOOD) <= set(ALL_KEYS), set(GOOD) - set(ALL_KEYS)
for _key in set(ALL_KEYS) - set(GOOD):  # a setting added since: its default, and its choices if it has them
    _field = VIDEO_FIELDS[_key[6:]] if _key.startswith("video.") else SETTING_FIELDS[_key]
    _default = list(_field.default) if isinstance(_field.default, tuple) else _field.default
    _hint = typing.get_type_hints(VideoSettings if _key.startswith("video.") else Settings)[_field.name]
    GOOD[_key] = [_default, *(typing.get_args(_hint) if typing.get_origin(_hint) is typing.Literal else ())]


def value_for(key: str, paths: list[str]) -> st.SearchStrategy[Any]:
    files = st.sampled_from(paths) if key in ("init", "weights") else st.nothing()
    return st.sampled_from(GOOD[key]) | files | junk()


# Paths, relative to the manifest's folder unless absolute ("ABS/" stands for the tree).
RUN_INPUTS = ["one.png", "photos", "./photos/", "photos/../one.png", "ABS/one.png", "clip.mp4", "photos/a.png"]
MISSING = ["nowhere.png", "no/such/dir", "ünïcödé.png", "", "  ", "\x00", "a\x00b.png", "x" * 300,
           "/".join(["deep"] * 200), "photos/a.png/inside", "ABS/nowhere"]
ODD = ["empty", "notes.txt", ".", "/", "~", "~nobody/x.png", "/dev/null", "weights.pth", "styles"]
RUN_STYLES = ["styles/s.png", "styles/t.jpg", "ABS/styles/s.png", "photos/a.png"]
RUN_OUTPUTS = ["out/a", "out/b.png", "out/c.jpg", "out/d.mp4", "out/e.webm", "out/ü n", "out/f.PNG", "out/x.txt",
               "ABS/out/g", "out/", "out/h.", "out//i", "photos/out", "one.png", "out/d.mp4/inside", "out/a/b.png"]
FOLDERS = ["empty", "styles", "."]  # a folder where a file belongs: refused by the manifest


def setting_items(paths: list[str]) -> st.SearchStrategy[dict[Any, Any]]:
    """A mapping of settings (flat keys, and `video:` as a mapping), some keys unknown."""
    known = st.sampled_from(sorted(GOOD)).flatmap(lambda k: st.tuples(st.just(k), value_for(k, paths)))
    unknown = st.tuples(SCALARS.filter(lambda k: not (isinstance(k, float) and math.isnan(k))), junk())

    def nest(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        flat: dict[Any, Any] = {}
        for key, value in pairs:
            if isinstance(key, str) and key.startswith("video."):
                video = flat.setdefault("video", {})
                if isinstance(video, dict):
                    video[key.split(".", 1)[1]] = value
            else:
                flat[key] = value
        return flat

    return st.lists(st.one_of(known, known, known, unknown), max_size=6).map(nest) | st.sampled_from(
        [{"video": None}, {"video": []}, {"video": "fast"}, {"video": {"nope": 1}}])


def job(*, inputs: list[str], styles: list[str], outputs: list[str]) -> st.SearchStrategy[Any]:
    style_list = st.lists(st.sampled_from(styles) | st.fixed_dictionaries(
        {"image": st.sampled_from(styles)}, optional={"weight": st.sampled_from([0.5, 1, 0, -1, math.nan, math.inf,
                                                                                "x", None]),
                                                       "extra": junk()}), max_size=3)
    required = st.fixed_dictionaries({}, optional={
        "input": st.sampled_from(inputs) | junk(), "style": st.sampled_from(styles) | style_list | junk(),
        "output": st.sampled_from(outputs) | junk(), "name": TEXT | junk()})
    return st.tuples(required, setting_items(styles)).map(lambda t: {**t[0], **t[1]}) | junk()


def manifest(*, inputs: list[str], styles: list[str], outputs: list[str]) -> st.SearchStrategy[Any]:
    version = st.sampled_from([1, 1, 1, 1, 2, "1", 1.0, True, None, 0]) | junk()
    top = st.fixed_dictionaries({}, optional={
        "version": version, "defaults": setting_items(styles) | junk(),
        "jobs": st.lists(job(inputs=inputs, styles=styles, outputs=outputs), max_size=3) | junk()})
    extra = st.dictionaries(TEXT, junk(), max_size=1)
    return st.tuples(top, extra).map(lambda t: {**t[1], **t[0]}) | junk()


# A billion laughs: 9^9 strings if anything walks or prints the value whole.
BILLION_LAUGHS = ("version: 1\ndefaults:\n  optimizer: [&a0 [x, x, x, x, x, x, x, x, x], "
                  + ", ".join(f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)) + "]\njobs: []\n")
# Hand-written YAML that a dump of Python values never produces.
TRICKY_YAML = [
    "version: 1\njobs:\n  - ? [a, b]\n    : 1\n",  # an unhashable key
    "version: 1\njobs:\n  - {input: one.png, style: styles/s.png, output: out/k, ? {a: 1} : 2}\n",
    "version: 1\njobs: &j [*j]\n",  # a list that holds itself
    "version: 1\ndefaults: &d {size: 16, defaults: *d}\njobs: []\n",
    "version: 1\ndefaults: &d {size: 16}\njobs:\n  - {<<: *d, input: one.png, style: styles/s.png, output: out/m}\n",
    "version: 1\njobs:\n  - {<<: [1, 2], input: one.png}\n",  # a merge of non-mappings
    "version: !!binary aGVsbG8=\njobs: []\n",
    "version: 1\njobs:\n  - {input: one.png, style: styles/s.png, output: out/t, init: 2001-12-14}\n",
    "version: 1\njobs:\n  - {input: one.png, style: styles/s.png, output: 2001-12-14 21:59:43.10-05:00}\n",
    "version: 1\ndefaults: !!set {size: null}\njobs: []\n",
    "version: 1\njobs:\n  - {input: !!float 1, style: x, output: y}\n",
    "version: 1\njobs:\n  - !!python/name:os.system {}\n",
    "version: 1\njobs: " + "[" * 3000 + "]" * 3000 + "\n",  # deep nesting
    "version: 1\njobs: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "\ufeffversion: 1\njobs:\n  - {input: one.png, style: styles/s.png, output: out/bom}\n",
    "version: 1\njobs:\n\t- {input: one.png}\n",
    "version: 1\nversion: 2\njobs: []\n",
    "version: 1\njobs:\n  - {input: one.png, style: styles/s.png, output: out/big, size: 1e400}\n",
    "version: 1\njobs:\n  - {input: one.png, style: styles/s.png, output: out/nan, style_weight: .nan}\n",
    BILLION_LAUGHS,
    "version: 1\njobs:\n  - {input: one.png, style: styles/s.png, output: out/n, name: \"[/x]\"}\n",
    "version: 1\njobs:\n  - {input: one.png, style: styles/s.png, output: out/o, name: \"a\\nb\"}\n",
]


def _write(tree: Path, text: str | bytes, tag: str) -> Path:
    path = tree / f"m-{tag}.yaml"
    text = text.replace("ABS/", f"{tree}/") if isinstance(text, str) else text
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    return path


def _dump(value: Any) -> str:
    try:
        return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, UnicodeEncodeError):  # a value PyYAML cannot write (a lone surrogate)
        return yaml.safe_dump(str(value))


_RUNNER = CliRunner()


def invoke(*args: str) -> Result:
    return _RUNNER.invoke(app, list(args), env={"COLUMNS": "200", "NST_BATCH_OFFLINE": "1"})


def check(result: Result, *, allowed: tuple[int, ...] = (0, 2)) -> None:
    """No traceback; exit 0 or 2; an exit 2 says why, in lines that each start with `error: `."""
    import traceback

    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else repr(result.exception)
        pytest.fail(f"an exception escaped the command:\n{trace}\n--- stdout\n{result.stdout}\n--- stderr\n"
                    f"{result.stderr}")
    output = result.stdout + result.stderr
    assert result.exit_code in allowed, f"exit {result.exit_code}\n{output}"
    assert "Traceback" not in output, output
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines, f"exit 2 without a message\n{output}"
        assert all(line.startswith("error: ") for line in lines), f"not one line per problem:\n{result.stderr}"


# --- validate -------------------------------------------------------------------------------------

ALL_INPUTS = RUN_INPUTS + MISSING + ODD
ALL_STYLES = RUN_STYLES + MISSING + ODD
ALL_OUTPUTS = RUN_OUTPUTS + MISSING + ODD + ["~/nst-batch-fuzz-never-written"]


@_examples(250)
@given(value=manifest(inputs=ALL_INPUTS, styles=ALL_STYLES, outputs=ALL_OUTPUTS))
def test_validate_generated_manifests(tree: Path, value: Any) -> None:
    check(invoke("validate", str(_write(tree, _dump(value), "validate")), "--weights", "random"))


@_examples(60)
@given(text=st.sampled_from(TRICKY_YAML) | st.text(alphabet=string.printable + "ü🎨\x00\ufeff", max_size=80)
       | st.binary(max_size=40))
def test_validate_odd_yaml(tree: Path, text: str | bytes) -> None:
    check(invoke("validate", str(_write(tree, text, "text")), "--weights", "random"))


def test_validate_every_tricky_yaml(tree: Path) -> None:
    for i, text in enumerate(TRICKY_YAML):
        check(invoke("validate", str(_write(tree, text, f"tricky{i}")), "--weights", "random"))


SET_KEYS = sorted(GOOD) + ["video", "video.", "video.video", ".size", "size.x", "Size", "sïze", "", " size",
                           "video.size", "jobs", "defaults", "name", "input"]
SET_VALUES = st.sampled_from(["", "5", "-5", "1e400", "-1e400", ".nan", ".inf", "nan", "[1, 2]", "[]", "{a: 1}",
                              "null", "~", "!!python/object/apply:os.system [echo]", "&a [*a]", "[", "{", "'",
                              "ü", "[/x]", "\x00", "a\nb", "16\n", "2001-12-14", "0x10", "0o17", "1_000",
                              "18446744073709551616", "1" * 400, "[" * 500, "*a", "%", "@x", "`x`"]) | TEXT


def good_set_item() -> st.SearchStrategy[str]:
    return st.sampled_from(sorted(GOOD)).flatmap(lambda k: st.sampled_from(GOOD[k]).map(
        lambda v: f"{k}={_dump(v).strip().removesuffix('...').strip()}"))


def set_item() -> st.SearchStrategy[str]:
    pair = st.tuples(st.sampled_from(SET_KEYS) | TEXT, SET_VALUES).map(lambda kv: f"{kv[0]}={kv[1]}")
    return pair | good_set_item() | TEXT


@_examples(150)
@given(items=st.lists(set_item(), max_size=4), device=st.none() | TEXT | st.sampled_from(["cpu", "cuda", "mps"]),
       weights=st.none() | st.sampled_from(["random", "imagenet", "weights.pth", "nowhere.pth", "styles", ""]))
def test_validate_generated_set_values(tree: Path, items: list[str], device: str | None,
                                       weights: str | None) -> None:
    path = _write(tree, "version: 1\njobs:\n  - {input: one.png, style: styles/s.png, output: out/sets}\n", "sets")
    args = ["validate", str(path), *(a for item in items for a in ("--set", item))]
    args += ["--device", device] if device is not None else []
    args += ["--weights", weights] if weights is not None else ["--weights", "random"]
    check(invoke(*[a.replace("\x00", "") if a.startswith("--") else a for a in args]))


# --- what the fuzz found, one example each ------------------------------------------------------

JOB = "version: 1\njobs:\n  - {input: one.png, style: styles/s.png, output: out/found"
FOUND = [  # (id, manifest text, --set items, exit code, a fragment of the message)
    ("unhashable-key", "version: 1\njobs:\n  - ? [a, b]\n    : 1\n", [], 2, "found a list as a key"),
    ("duplicate-key", "version: 1\nversion: 1\njobs: []\n", [], 2, "found the key 'version' twice (first on line 1)"),
    ("deep-nesting", "version: 1\njobs: " + "[" * 3000 + "]" * 3000 + "\n", [], 2, "nested more deeply"),
    ("nan", JOB + ", style_weight: .nan}\n", [], 2, "jobs[0].style_weight: must be a finite number, got nan"),
    ("huge-float", JOB + "}\n", ["tv_weight=1e300"], 2, "tv_weight: must be at most 1e+30 in size"),
    ("huge-int", JOB + ", seed: 18446744073709551616}\n", [], 2, "seed: must be a whole number below 2^63"),
    ("negative-seed", JOB + ", seed: -1}\n", [], 2, "seed: must be >= 0, got -1"),
    ("learning-rate", JOB + ", learning_rate: 5}\n", [], 2, "learning_rate: must be at most 1"),
    ("size", JOB + ", size: 100000}\n", [], 2, "size: must be at most 16384 px"),
    ("style-scale", JOB + ", style_scale: 1000}\n", [], 2, "style_scale: must be at most 10"),
    ("device-newline", JOB + "}\n", ["device=\"cpu\\n\""], 2, "must be auto, cpu, cuda, cuda:N or mps, got 'cpu\\n'"),
    ("markup-name", JOB + ", name: \"[/x]\"}\n", [], 0, "manifest OK"),
    ("newline-name", JOB + ", name: \"a\\nb\"}\n", [], 2, "name: must be one line of printable text, got 'a\\nb'"),
    ("control-in-set", JOB + "}\n", ["\x1e"], 2, "error: --set \\x1e: expected KEY=VALUE"),
    ("style-folder", JOB[:JOB.index("styles/s.png")] + "styles, output: out/found}\n", [], 2,
     "styles: is a folder, not an image"),
    ("init-not-an-image", JOB + ", init: notes.txt}\n", [], 2, "notes.txt: cannot decode the image"),
    ("start-past-the-end", JOB.replace("one.png", "clip.mp4") + "}\n", ["video.start=100"], 2,
     "clip.mp4: no frames between video.start (100 s) and its end: the video lasts 0.25 s"),
    ("output-is-a-folder", JOB.replace("one.png", "clip.mp4").replace("out/found", "made.mp4") + "}\n", [], 2,
     "made.mp4 is a folder, but a name ending in .mp4 is the output file itself"),
    ("nul-in-path", JOB.replace("one.png", "\"a\\0b.png\"") + "}\n", [], 2, "a path cannot hold a NUL character"),
    ("name-too-long", JOB.replace("one.png", "x" * 300) + "}\n", [], 2, "input: cannot look at"),
]


@pytest.mark.parametrize(("text", "sets", "rc", "fragment"), [f[1:] for f in FOUND], ids=[f[0] for f in FOUND])
def test_found_by_the_fuzz(tree: Path, text: str, sets: list[str], rc: int, fragment: str) -> None:
    (tree / "made.mp4").mkdir(exist_ok=True)
    result = invoke("validate", str(_write(tree, text, "found")), "--weights", "random",
                    *(a for item in sets for a in ("--set", item)))
    check(result)
    assert result.exit_code == rc and fragment in result.stdout + result.stderr, result.stdout + result.stderr


def test_a_billion_laughs_is_refused_at_once(tree: Path) -> None:
    """An anchor that expands to 9^9 items is named in a short message, not printed whole (a minute, gigabytes)."""
    started = time.monotonic()
    result = invoke("validate", str(_write(tree, BILLION_LAUGHS, "laughs")), "--weights", "random")
    assert time.monotonic() - started < 5
    check(result)
    assert result.exit_code == 2 and "defaults.optimizer: must be one of lbfgs, adam, got [[" in result.stderr
    assert len(result.stderr) < 300, result.stderr


# --- run ------------------------------------------------------------------------------------------


RUN_PATHS = RUN_INPUTS + RUN_STYLES + RUN_OUTPUTS + MISSING + FOLDERS


def _inside_the_tree(value: Any) -> bool:
    """Whether every path-like string of a generated manifest stays in the tree (a run writes its outputs)."""
    if isinstance(value, dict):
        return all(_inside_the_tree(k) and _inside_the_tree(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_inside_the_tree(v) for v in value)
    if not isinstance(value, str) or value in RUN_PATHS:
        return True
    text = value.strip()
    return not (text.startswith(("/", "~")) or text == "." or ".." in Path(text).parts)


def near_valid_manifest() -> st.SearchStrategy[dict[str, Any]]:
    """Manifests that mostly load: good inputs, styles, outputs and settings, and at most one bad setting."""
    good = st.sampled_from(sorted(GOOD)).flatmap(lambda k: st.tuples(st.just(k), st.sampled_from(GOOD[k])))
    bad = st.sampled_from(sorted(GOOD)).flatmap(lambda k: st.tuples(st.just(k), value_for(k, RUN_STYLES + FOLDERS)))

    def nest(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key.startswith("video."):
                out.setdefault("video", {})[key[6:]] = value
            else:
                out[key] = value
        return out

    def settings_(one_bad: bool) -> st.SearchStrategy[dict[str, Any]]:
        pairs = st.lists(good, max_size=4)
        if one_bad:
            pairs = st.tuples(pairs, bad).map(lambda t: [*t[0], t[1]])
        return pairs.map(nest)

    def job_(one_bad: bool) -> st.SearchStrategy[dict[str, Any]]:
        style = st.sampled_from(RUN_STYLES) | st.lists(st.fixed_dictionaries(
            {"image": st.sampled_from(RUN_STYLES), "weight": st.sampled_from([0.3, 1, 2])}), min_size=1, max_size=2)
        keys = st.fixed_dictionaries({"input": st.sampled_from(RUN_INPUTS), "output": st.sampled_from(RUN_OUTPUTS),
                                      "style": style},
                                     optional={"name": st.sampled_from(["a", "b", "ü [x]", "[/x]", ":smile:"])})
        return st.tuples(keys, settings_(one_bad)).map(lambda t: {**t[0], **t[1]})

    where_bad = st.sampled_from(["nowhere", "defaults", "job"])
    return where_bad.flatmap(lambda w: st.fixed_dictionaries({
        "version": st.just(1), "defaults": settings_(w == "defaults"),
        "jobs": st.tuples(job_(w == "job"), st.lists(job_(False), max_size=1)).map(lambda t: [t[0], *t[1]])}))


def _run(tree: Path, value: Any, items: list[str]) -> None:
    path = _write(tree, _dump(value), "run")
    sets = [a for item in [*items, *CHEAP] for a in ("--set", item)]
    result = invoke("run", str(path), *sets, "--quiet")
    event(f"exit {result.exit_code}")
    if os.environ.get("NST_BATCH_FUZZ_WHY"):
        event(re.sub(r"/\S*", "PATH", (result.stderr.splitlines() or [""])[0])[:90])
    check(result, allowed=(0, 1, 2))
    if result.exit_code == 1:  # outputs failed: each with its reason, never a bare Python error
        reasons = [line.split(": ", 2)[-1] for line in result.stdout.splitlines() if line.startswith("failed: ")]
        assert reasons, result.stdout + result.stderr
        for why in reasons:
            assert not re.match(r"[\w.]*(Error|error|Exception): ", why) or why.startswith("OutOfMemoryError"), \
                f"a failure without a reason a user can act on: {why}"
    assert not list(tree.rglob("*.partial-*"))


@_examples(120)
@given(value=near_valid_manifest(), items=st.tuples(st.lists(good_set_item(), max_size=2), st.none() | set_item()).map(
    lambda t: [*t[0], *([t[1]] if t[1] is not None else [])]))
def test_run_nearly_valid_manifests(tree: Path, value: Any, items: list[str]) -> None:
    _run(tree, value, items)


@_examples(20)
@given(value=manifest(inputs=RUN_INPUTS + MISSING, styles=RUN_STYLES + MISSING + FOLDERS,
                      outputs=RUN_OUTPUTS + MISSING),
       items=st.lists(set_item(), max_size=2))
def test_run_generated_manifests(tree: Path, value: Any, items: list[str]) -> None:
    assume(_inside_the_tree(value))
    _run(tree, value, items)
