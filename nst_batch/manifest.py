"""Read `pipeline.yaml` into frozen, typed `Job`s, or fail with file:line: key: what.

Precedence of settings (lowest first): the dataclass defaults in `settings.py`,
the manifest's `defaults:`, the job's own keys, then `--set KEY=VALUE` overrides
(which apply to every job). Relative paths in the manifest resolve against the manifest's
folder; paths given on the command line (`--set init=...`, `--weights ...`), against the
current folder, as a shell user expects.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
import reprlib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from nst_batch.engine.vgg import layer_names
from nst_batch.errors import ManifestError
from nst_batch.media.images import IMAGE_SUFFIXES, PILLOW_SUFFIXES, is_image_file
from nst_batch.media.video import VIDEO_EXTENSIONS, is_video_file
from nst_batch.settings import FORMAT_BITS, Job, Region, Settings, StyleSpec, SweepCell, VideoSettings

__all__ = ["Manifest", "load_manifest", "manifest_from_text", "one_line_manifest", "read_yaml", "parse_overrides",
           "parse_sweeps",
           "SETTING_FIELDS", "VIDEO_FIELDS"]

SUPPORTED_VERSIONS = (1,)
TOP_KEYS = ("version", "defaults", "jobs")
JOB_KEYS = ("name", "input", "style", "output", "exclude", "sweep", "regions")
REGION_KEYS = ("mask", "style", "style_weight", "style_scale")
MAX_SWEEP = 256  # combinations in one job's sweep: more is a typo, not a contact sheet
SETTING_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
VIDEO_FIELDS = {f.name: f for f in dataclasses.fields(VideoSettings)}
_HINTS = {**typing.get_type_hints(Settings),
          **{f"video.{k}": v for k, v in typing.get_type_hints(VideoSettings).items()}}
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_INT64 = 2**63
MAX_NUMBER = 1e30  # any number setting


@dataclass(frozen=True)
class Manifest:
    path: Path
    jobs: tuple[Job, ...]


# --- YAML with line numbers ---------------------------------------------------


class _MarkedDict(dict):
    line: int = 0
    key_lines: dict[Any, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}  # also in the empty mapping that stands in for an empty file or `defaults:`


class _MarkedList(list):
    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that remembers the line of every mapping, key and list item."""


_MERGE = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _MarkedDict:
    own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
    loader.flatten_mapping(node)  # `<<: *anchor` entries first, then the mapping's own (which override them)
    first_own = len(node.value) - own
    out = _MarkedDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    own_lines: dict[Any, int] = {}
    for i, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            kind = _kind(key) if isinstance(key, (list, dict)) else f"a {type(key).__name__}"
            raise yaml.constructor.ConstructorError("while reading a mapping", node.start_mark,
                                                    f"found {kind} as a key", key_node.start_mark) from None
        if i >= first_own:  # a key given twice is a typo that silently drops one value
            if key in own_lines:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found the key {_shown(key)} twice (first on line {own_lines[key]})", key_node.start_mark)
            own_lines[key] = line
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _MarkedList:
    out = _MarkedList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


# YAML 1.2 floats: PyYAML (YAML 1.1) reads `1.0e4` and `1e4` (no exponent sign) as strings;
# editors and users expect numbers.
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
    r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$"),
    list("-+0123456789."))
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class _Where:
    """Builds 'file:line: key.path' prefixes for messages."""

    def __init__(self, file: str, line: int = 0, key: str = "") -> None:
        self.file, self.line, self.key = file, line, key

    def child(self, key: str | int, container: Any = None) -> _Where:
        line = self.line
        if isinstance(container, _MarkedDict):
            line = container.key_lines.get(key, container.line)
        elif isinstance(container, _MarkedList) and isinstance(key, int) and key < len(container.item_lines):
            line = container.item_lines[key]
        if isinstance(key, int) and not isinstance(key, bool):
            path = f"{self.key}[{key}]"
        else:
            text = key if isinstance(key, str) and key.isprintable() and key else _shown(key)
            path = f"{self.key}.{text}" if self.key else text
        return _Where(self.file, line, path)

    def error(self, problem: str) -> ManifestError:
        loc = f"{self.file}:{self.line}" if self.line else self.file
        return ManifestError(f"{loc}: {self.key}: {problem}" if self.key else f"{loc}: {problem}")


class _ShortRepr(reprlib.Repr):
    """reprlib's short repr, which also knows the loader's lists and mappings (it dispatches by type name)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring, self.maxother, self.maxlevel, self.maxlist, self.maxdict = 60, 60, 2, 6, 4

    def repr__MarkedList(self, x: list[Any], level: int) -> str:  # noqa: N802 - the name reprlib looks up
        return self.repr_list(x, level)

    def repr__MarkedDict(self, x: dict[Any, Any], level: int) -> str:  # noqa: N802
        return self.repr_dict(x, level)


_REPR = _ShortRepr()


def _shown(value: Any) -> str:
    """`repr(value)` for a message: one line, and short whatever the value (a YAML anchor can nest a billion items)."""
    text = _REPR.repr(value)
    return text if len(text) <= 100 else text[:96] + " ..."


def _did_you_mean(key: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(choices)})"


# --- values -------------------------------------------------------------------


def _coerce(value: Any, hint: Any, where: _Where) -> Any:
    """Check `value` against a type hint of the settings dataclasses; return it in that type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise where.error(f"must be one of {', '.join(map(str, args))}, got {_shown(value)}" + _close(value, args))
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(value, inner[0], where)
        for alternative in inner:  # e.g. size: a whole number, or `original`
            try:
                return _coerce(value, alternative, where)
            except ManifestError:
                continue
        raise where.error(f"must be {' or '.join(_describe(a) for a in inner)}, got {_shown(value)}")
    if origin is tuple:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, list):
            raise where.error(f"must be a list, got {_kind(value)}")
        return tuple(_coerce(v, args[0], where.child(i, value)) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise where.error(f"must be true or false, got {_shown(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise where.error(f"must be a whole number, got {_shown(value)}")
        if not -_INT64 <= value < _INT64:  # torch, NumPy and the ledger's JSON readers take 64 bits
            raise where.error(f"must be a whole number below 2^63, got {_shown(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise where.error(f"must be a number, got {_shown(value)}")
        try:
            number = float(value)
        except OverflowError:  # a whole number beyond a float's range
            number = math.inf
        if not math.isfinite(number):
            raise where.error(f"must be a finite number, got {_shown(value)}")
        if abs(number) > MAX_NUMBER:  # losses and pixels are float32 tensors: 1e39 is already infinite there
            raise where.error(f"must be at most {MAX_NUMBER:g} in size, got {_shown(value)}")
        return number
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise where.error(f"must be a string, got {_kind(value)}")
        return str(value)
    raise TypeError(f"no coercion for {hint}")  # a programming error, not user input


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(hint, str(hint))


def _close(value: Any, choices: Sequence[Any]) -> str:
    return _did_you_mean(str(value), [str(c) for c in choices]) if isinstance(value, str) else ""


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {_shown(value)}"


def _check_range(key: str, value: Any, where: _Where) -> None:
    """Constraints beyond the type: a number's range from its field (`settings.Bounds`), then the rules of
    the settings that are not numbers."""
    if key == "size" and value == "original":
        return
    field = VIDEO_FIELDS[key[6:]] if key.startswith("video.") else SETTING_FIELDS[key]
    bounds = field.metadata.get("bounds")
    if bounds is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        problem = bounds.problem(value)
        if problem is not None:
            raise where.error(problem)
    if key in ("content_layers", "style_layers") and not value:  # the names depend on `model`: _check_layers
        raise where.error("must name at least one layer")
    if key == "scales":
        if not value:
            raise where.error("must name at least one scale, e.g. [0.25, 0.5, 1.0]")
        if any(not 0.0 < v <= 1.0 for v in value):
            raise where.error(f"every scale must be in (0, 1], got {list(value)}")
        if any(b <= a for a, b in zip(value, value[1:])) or value[-1] != 1.0:
            raise where.error(f"must rise and end at 1.0 (full size), e.g. [0.25, 0.5, 1.0]; got {list(value)}")
    if key == "device" and not _DEVICE_RE.fullmatch(value):
        raise where.error(f"must be auto, cpu, cuda, cuda:N or mps, got {_shown(value)}")


class _Sourced(dict):
    """{dotted key: value}, remembering where each value was given, for checks made after merging."""

    def __init__(self) -> None:
        super().__init__()
        self.wheres: dict[str, _Where] = {}

    def put(self, key: str, value: Any, where: _Where) -> None:
        self[key] = value
        self.wheres[key] = where


def _settings_layer(raw: Mapping[str, Any], where: _Where, *, allowed_extra: Sequence[str] = ()) -> _Sourced:
    """Validate the setting keys of one mapping (defaults or a job) → {dotted key: value}."""
    out = _Sourced()
    known = list(SETTING_FIELDS) + list(allowed_extra)
    for key, value in raw.items():
        w = where.child(key, raw)
        if not isinstance(key, str) or key not in known:
            raise w.error(f"unknown key {_shown(key)}" + _did_you_mean(str(key), known))
        if key in allowed_extra:
            continue
        if key == "video":
            if not isinstance(value, dict):
                raise w.error(f"must be a mapping of video settings, got {_kind(value)}")
            for vkey, vvalue in value.items():
                vw = w.child(vkey, value)
                if vkey not in VIDEO_FIELDS:
                    raise vw.error(f"unknown video key {_shown(vkey)}" + _did_you_mean(str(vkey), list(VIDEO_FIELDS)))
                out.put(f"video.{vkey}", _checked(f"video.{vkey}", vvalue, vw), vw)
        else:
            out.put(key, _checked(key, value, w), w)
    return out


def _checked(key: str, value: Any, where: _Where) -> Any:
    value = _coerce(value, _HINTS[key], where)
    if value is not None:
        _check_range(key, value, where)
    return value


# Settings whose value may be a path: what the file is, and the words that are not paths.
_PATH_SETTINGS = {"init": ("init image", ("content", "noise")), "weights": ("weights file", ("imagenet", "random"))}


def parse_overrides(items: Sequence[str]) -> dict[str, object]:
    """`--set KEY=VALUE` strings → {dotted key: value}; VALUE is read as YAML (`5`, `[a, b]`, `null`)."""
    out = _Sourced()
    for item in items:
        where = _Where(f"--set {item}")
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise where.error("expected KEY=VALUE, e.g. --set size=256")
        try:
            value = read_yaml(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise where.error(f"cannot read the value: {_yaml_problem(exc)}") from exc
        w = _Where(f"--set {item}", 0, key)
        top, _, sub = key.partition(".")
        if top == "video" and sub:
            if sub not in VIDEO_FIELDS:
                raise w.error(f"unknown video key {_shown(sub)}" + _did_you_mean(sub, list(VIDEO_FIELDS)))
        elif key not in SETTING_FIELDS or key == "video":
            raise w.error(f"unknown setting {_shown(key)}" + _did_you_mean(key, list(SETTING_FIELDS)))
        value = _checked(key, value, w)
        if key in _PATH_SETTINGS and isinstance(value, str) and value not in _PATH_SETTINGS[key][1]:
            # What a user types resolves against the current folder (the manifest's paths, against the
            # manifest's): made absolute here, and a missing file blamed on this --set, not on a job.
            value = str(_existing_path(value, w, Path.cwd(), _PATH_SETTINGS[key][0], file=True))
        out.put(key, value, w)
    return out


# --- the manifest ---------------------------------------------------------------


def read_yaml(text: str) -> Any:
    """Parse YAML safely (no tags that build objects), with YAML 1.2 floats and line numbers."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a yaml.SafeLoader
    except RecursionError:  # PyYAML composes and constructs recursively
        raise yaml.YAMLError("nested more deeply than this reader can follow") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's reason on one line, without its "<unicode string>" position (the message gives the place)."""
    text = getattr(exc, "problem", None) or str(exc)
    return " ".join(text.replace('in "<unicode string>", ', "").split())


def load_manifest(path: Path, overrides: Mapping[str, Any] | None = None,
                  sweeps: Mapping[str, Sequence[Any]] | None = None) -> Manifest:
    """Read and validate a manifest; every error is a ManifestError naming file, line and key."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{file}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{file}: cannot read the manifest: {exc}") from exc
    return manifest_from_text(text, path, overrides, sweeps)


def manifest_from_text(text: str, path: Path, overrides: Mapping[str, Any] | None = None,
                       sweeps: Mapping[str, Sequence[Any]] | None = None) -> Manifest:
    """`load_manifest` of a manifest's text: relative paths resolve against `path`'s folder, and messages
    name `path` (the one-line form of `run` gives the manifest it stands for, in the current folder)."""
    file = str(path)
    try:
        raw = read_yaml(text) or _MarkedDict()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        loc = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        hint = (": YAML indents with spaces, not tabs; replace the tab with spaces"
                if "'\\t'" in _yaml_problem(exc) else "")
        raise ManifestError(f"{loc}: YAML syntax error: {_yaml_problem(exc)}{hint}") from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"{file}: YAML error: {_yaml_problem(exc)}") from exc
    root = _Where(file, 1)
    if not isinstance(raw, dict):
        raise root.error(f"the manifest must be a mapping with 'version' and 'jobs', got {_kind(raw)}")
    for key in raw:
        if key not in TOP_KEYS:
            raise root.child(key, raw).error(f"unknown top-level key {_shown(key)}" + _did_you_mean(str(key), TOP_KEYS))
    version = raw.get("version")
    if "version" not in raw:
        raise root.error("no `version:` key: a manifest starts with the line `version: 1` (the manifest "
                         "format it is written in), then `jobs:`")
    if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        raise root.child("version", raw).error(
            f"unsupported manifest version {_shown(version)}; this nst-batch reads version 1")
    defaults_raw = raw.get("defaults") or _MarkedDict()
    if not isinstance(defaults_raw, dict):
        raise root.child("defaults", raw).error(f"must be a mapping of settings, got {_kind(defaults_raw)}")
    defaults = _settings_layer(defaults_raw, root.child("defaults", raw))
    jobs_raw = raw.get("jobs")
    if not isinstance(jobs_raw, list) or not jobs_raw:
        raise root.child("jobs", raw).error("must be a non-empty list of jobs")
    base = path.resolve().parent
    jobs: list[Job] = []
    seen: dict[str, str] = {}
    for i, job_raw in enumerate(jobs_raw):
        where = root.child("jobs", raw).child(i, jobs_raw)
        for job in _swept_jobs(job_raw, where, base, defaults, overrides or {}, sweeps or {}):
            if job.name in seen:
                raise where.error(f"duplicate job name '{job.name}' (first at {seen[job.name]})")
            seen[job.name] = job.source
            jobs.append(job)
    _check_outputs(jobs)
    return Manifest(path=path, jobs=tuple(jobs))


_ONE_LINE = "<the command line>"


def one_line_manifest(target: Path, styles: Sequence[Path], output: Path | None,
                      overrides: Mapping[str, Any] | None = None,
                      sweeps: Mapping[str, Sequence[Any]] | None = None) -> Manifest:
    """The manifest that `nst-batch run TARGET --style S... -o OUTPUT` stands for: one job, paths as typed
    (against the current folder), equal style weights, output `out` by default. It is the very text
    `nst-batch init --input TARGET --style S... -o OUTPUT` writes, so both make the same job, settings
    hash and ledger. A mistake is blamed on the argument or option that made it, not on a line."""
    from nst_batch.schema import OneJob, starter_manifest  # schema imports settings and vgg only

    if not target.exists():
        raise ManifestError(f"{target}: not found (give a manifest, or an image, a video or a folder to stylize)")
    if not (target.is_dir() or is_image_file(target) or is_video_file(target)):
        raise ManifestError(f"{target}: neither a manifest (.yaml) nor an image, a video or a folder")
    if not styles and "style" in (sweeps or {}):
        styles = [Path(str((sweeps or {})["style"][0]))]  # the job's style, replaced by each swept one
    if not styles:
        raise ManifestError(f"{target}: to stylize it directly, give --style STYLE_IMAGE (and -o OUTPUT); "
                            "or give a manifest")
    job = OneJob(input=target, styles=tuple(styles), output=output or Path("out"))
    text = starter_manifest(job, base=Path.cwd())
    try:
        return manifest_from_text(text, Path.cwd() / _ONE_LINE, overrides, sweeps)
    except ManifestError as exc:
        raise ManifestError(_blame_option(str(exc))) from exc


def _blame_option(message: str) -> str:
    """'<the command line>:NN: jobs[0].style[1]: ...' → '--style: ...' (the generated text has no lines to show)."""
    match = re.match(rf"^.*?{re.escape(_ONE_LINE)}(?::\d+)?: (?:(jobs\[0\][^:]*): )?(.*)$", message, re.S)
    if match is None:
        return message
    key, problem = match.group(1) or "", match.group(2)
    for prefix, option in (("jobs[0].input", "INPUT"), ("jobs[0].style", "--style"), ("jobs[0].output", "--output")):
        if key.startswith(prefix):
            return f"{option}: {problem}"
    return problem


def _swept_jobs(raw: Any, where: _Where, base: Path, defaults: Mapping[str, Any], overrides: Mapping[str, Any],
                cli_sweeps: Mapping[str, Sequence[Any]]) -> list[Job]:
    """The job, or with `sweep:` (and `--sweep`) one job per combination of the swept values, each a normal
    job (its own ledger, resume and settings file) in a folder of its own named by its values."""
    if not isinstance(raw, dict) or ("sweep" not in raw and not cli_sweeps):
        return [_load_job(raw, where, base, defaults, overrides)]
    w = where.child("sweep", raw)
    own = raw.get("sweep", {})
    if not isinstance(own, dict) or (not own and not cli_sweeps):
        raise w.error(f"must be a mapping of setting (or style) to a list of values, e.g. "
                      f"{{style_weight: [2, 5, 10]}}, got {_shown(own)}")
    axes: dict[str, list[tuple[Any, _Where]]] = {}
    for key, values in own.items():
        kw = w.child(key, own)
        axes[str(key)] = [(v, kw) for v in _sweep_values(key, values, kw)]
    for key, values in cli_sweeps.items():  # --sweep: for every job, over the manifest's own sweep of that key
        axes[key] = [(v, _Where(f"--sweep {key}")) for v in values]
    clash = sorted(set(axes) & set(overrides))
    if clash:
        raise w.error(f"{', '.join(clash)} is both swept and set by --set: leave one")
    count = math.prod(len(v) for v in axes.values())
    if count > MAX_SWEEP:
        raise w.error(f"{count} combinations (more than {MAX_SWEEP}): sweep fewer values")
    cells: list[tuple[Job, tuple[tuple[str, str], ...]]] = []
    for combo in itertools.product(*axes.values()):
        layer = _Sourced()
        style: tuple[Any, _Where] | None = None
        for key, (value, kw) in zip(axes, combo):
            if key == "style":
                style = (value, kw)
            else:
                layer.put(key, _checked(key, value, kw), kw)
        job = _load_job(raw, where, base, defaults, {**layer, **overrides}, style_from=style,
                        wheres_extra=layer.wheres)
        cells.append((job, tuple((key, _sweep_text(key, value)) for key, (value, _) in zip(axes, combo))))
    first = cells[0][0]  # every cell has the job's own name and output
    named = first.output.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_EXTENSIONS)  # `out/clip.mp4`: a file
    root = first.output.parent / first.output.stem if named else first.output
    jobs = []
    for job, values in cells:
        folder = root / "_".join(f"{key}-{_safe(text)}" for key, text in values)
        label = ", ".join(f"{key}={text}" for key, text in values)
        jobs.append(dataclasses.replace(job, name=f"{first.name} [{label}]",
                                        output=folder / first.output.name if named else folder,
                                        sweep=SweepCell(of=first.name, root=root, values=values)))
    return jobs


def _sweep_values(key: Any, values: Any, where: _Where) -> list[Any]:
    if key != "style" and (not isinstance(key, str) or key not in _HINTS or key == "video"):
        known = ["style", *SETTING_FIELDS, *(f"video.{k}" for k in VIDEO_FIELDS)]
        raise where.error(f"cannot sweep {_shown(key)}: not a setting" + _did_you_mean(str(key), known))
    if not isinstance(values, list) or not values:
        raise where.error(f"must be a list of values to try, got {_shown(values)}")
    return list(values)


def _sweep_text(key: str, value: Any) -> str:
    """A swept value as its folder and label show it: a style by its image's name (a blend by theirs)."""
    if key == "style":
        items = value if isinstance(value, list) else [value]
        return "+".join(Path(str(i.get("image", "") if isinstance(i, dict) else i)).stem for i in items)
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+,-]+", "-", text).strip("-") or "x"


def parse_sweeps(items: Sequence[str]) -> dict[str, list[Any]]:
    """`--sweep KEY=V1,V2` → {key: [v1, v2]}; the values read as YAML (`2,5,10`; `[1.0],[0.5, 1.0]`); style
    images typed on the command line resolve against the current folder."""
    out: dict[str, list[Any]] = {}
    for item in items:
        where = _Where(f"--sweep {item}")
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise where.error("expected KEY=V1,V2,..., e.g. --sweep style_weight=2,5,10")
        try:
            values = read_yaml(f"[{text}]")
        except yaml.YAMLError as exc:
            raise where.error(f"cannot read the values: {_yaml_problem(exc)}") from exc
        values = _sweep_values(key, values, where)
        if key == "style":
            values = [str(_existing_path(str(v), where, Path.cwd(), "style image", file=True)) for v in values]
        else:
            for value in values:
                _checked(key, value, where)
        out[key] = values
    return out


def _load_job(raw: Any, where: _Where, base: Path, defaults: Mapping[str, Any], overrides: Mapping[str, Any],
              style_from: tuple[Any, _Where] | None = None, wheres_extra: Mapping[str, _Where] | None = None) -> Job:
    """One job; `style_from` (a swept style, with where it was given) replaces its `style`."""
    if not isinstance(raw, dict):
        raise where.error(f"a job must be a mapping with input, style and output, got {_kind(raw)}")
    # Unknown keys first: a misspelt required key (`styel:`) is a typo to name, not a missing key.
    own = _settings_layer(raw, where, allowed_extra=JOB_KEYS)
    for key in ("input", "style", "output"):
        if key not in raw and not (key == "style" and (style_from is not None or "regions" in raw)):
            raise where.error(f"missing required key '{key}'")
    merged = {**defaults, **own, **overrides}
    wheres = {k: w for layer in (defaults, own, overrides) for k, w in getattr(layer, "wheres", {}).items()}
    wheres.update(wheres_extra or {})
    settings = _build_settings(merged, where, base, wheres)
    input_path = _existing_path(raw["input"], where.child("input", raw), base, "input")
    output = _path(raw["output"], where.child("output", raw), base)
    _check_kinds(input_path, output, where.child("output", raw))
    styles = (_styles(style_from[0], style_from[1], base) if style_from is not None
              else _styles(raw["style"], where.child("style", raw), base) if "style" in raw else ())
    regions = _regions(raw["regions"], where.child("regions", raw), base, settings) if "regions" in raw else ()
    name = raw.get("name", input_path.stem)
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise where.child("name", raw).error(f"must be one line of printable text, got {_shown(name)}")
    exclude = _exclude(raw.get("exclude", []), where.child("exclude", raw), input_path)
    return Job(name=name, input=input_path, styles=styles, output=output, settings=settings,
               source=f"{where.file}:{where.line}", exclude=exclude, regions=regions)


def _regions(raw: Any, where: _Where, base: Path, settings: Settings) -> tuple[Region, ...]:
    """`regions:` a list of {mask, style, style_weight, style_scale}: each part of the picture its own style."""
    if not isinstance(raw, list) or not raw:
        raise where.error("must be a list of regions, each {mask: PATH, style: IMAGE} (style_weight, style_scale "
                          "optional), e.g. [{mask: masks/sky.png, style: styles/starry.jpg}]")
    if settings.strength is not None:
        raise where.error("strength (set for this job, in defaults or by --set) finds one style weight per picture "
                          "and cannot weigh regions: set strength: null for this job")
    out = []
    for i, item in enumerate(raw):
        w = where.child(i, raw)
        if not isinstance(item, dict) or "mask" not in item:
            raise w.error(f"a region must be a mapping with a mask (and a style), got {_shown(item)}")
        for key in item:
            if key not in REGION_KEYS:
                raise w.child(key, item).error(f"unknown region key {_shown(key)}"
                                               + _did_you_mean(str(key), list(REGION_KEYS)))
        mask = _existing_path(item["mask"], w.child("mask", item), base, "mask")
        styles = _styles(item["style"], w.child("style", item), base) if "style" in item else ()
        weight = scale = None
        if "style_weight" in item:
            weight = _checked("style_weight", item["style_weight"], w.child("style_weight", item))
        if "style_scale" in item:
            scale = _checked("style_scale", item["style_scale"], w.child("style_scale", item))
        if not styles and weight != 0:
            raise w.error("a region without a style keeps the photo there: say so with style_weight: 0, or give "
                          "it a style")
        out.append(Region(mask=mask, styles=styles, style_weight=weight, style_scale=scale,
                          source=f"{w.file}:{w.line}"))
    return tuple(out)


def _exclude(raw: Any, where: _Where, input_path: Path) -> tuple[str, ...]:
    """`exclude:` a list of globs (one glob alone is taken as a list of one), relative to a folder input."""
    globs = [raw] if isinstance(raw, str) else raw
    if not isinstance(globs, list) or not all(isinstance(g, str) and g.strip() for g in globs):
        raise where.error(f"must be a list of globs relative to the input folder (e.g. ['raw/*', '*.tif']), "
                          f"got {_shown(raw)}")
    if globs and not input_path.is_dir():
        raise where.error(f"leaves files of a folder out, but the input {input_path} is a file")
    return tuple(g.strip().strip("/") for g in globs)


def _build_settings(values: dict[str, Any], where: _Where, base: Path,
                    wheres: Mapping[str, _Where] | None = None) -> Settings:
    """Settings from merged values; `wheres` says where each value was given (the job's `where` if absent)."""
    video = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("video.")}
    flat = {k: v for k, v in values.items() if not k.startswith("video.")}
    if flat.get("init") not in (None, "content", "noise"):
        flat["init"] = str(_existing_path(flat["init"], where, base, "init image", file=True))
    if flat.get("weights") not in (None, "imagenet", "random"):
        flat["weights"] = str(_existing_path(flat["weights"], where, base, "weights file", file=True))
    settings = Settings(**flat, video=VideoSettings(**video))
    _check_layers(settings, wheres or {}, where)
    slw = settings.style_layer_weights
    if slw is not None and len(slw) != len(settings.style_layers):
        raise where.error(
            f"style_layer_weights has {len(slw)} values but style_layers has {len(settings.style_layers)}"
        )
    if slw is not None and (any(w < 0 for w in slw) or not any(w > 0 for w in slw)):
        raise where.error(f"style_layer_weights must be >= 0 with at least one > 0, got {list(slw)}")
    if settings.bit_depth == 16 and FORMAT_BITS[settings.format] < 16:
        raise (wheres or {}).get("bit_depth", where).error(
            f"16 bits per channel need format: png ({settings.format} holds {FORMAT_BITS[settings.format]}); "
            "set format: png, or "
            "bit_depth: auto (16 bits where the input and format have them) or 8")
    if settings.content_weight == settings.style_weight == settings.tv_weight == 0:
        raise where.error("content_weight, style_weight and tv_weight are all 0: nothing to optimise")
    if settings.strength is not None:
        here = (wheres or {}).get("strength", where)
        if settings.content_weight <= 0 or settings.style_weight <= 0:
            raise here.error("strength needs content_weight and style_weight above 0 (it finds the style weight "
                             "that keeps that much of the photo, starting from style_weight)")
        if settings.batch_size > 1:
            raise here.error("strength gives each picture its own style weight, so its pictures cannot share a "
                             "batch: set batch_size: 1, or leave strength out")
        if settings.init != "content":
            raise here.error("strength measures how much of the photo each probe keeps, starting from the photo: "
                             "it needs init: content")
    v = settings.video
    if v.end is not None and v.end <= v.start:
        raise where.error(f"video.end ({v.end}) must be after video.start ({v.start})")
    return settings


def _check_layers(settings: Settings, wheres: Mapping[str, _Where], job: _Where) -> None:
    """Layer names exist in the job's model, known only once defaults, job and --set are merged."""
    names = layer_names(settings.model)
    vgg19 = layer_names("vgg19")
    for key in ("content_layers", "style_layers"):
        for name in getattr(settings, key):
            if name not in names:
                hint = f"; {name} is a VGG19 layer: set `model: vgg19` for it" if name in vgg19 else ""
                where = wheres.get(key) or job.child(key)
                problem = f"unknown {settings.model.upper()} layer '{name}'" + _did_you_mean(name, names)
                raise where.error(problem + hint)


def _path(value: Any, where: _Where, base: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise where.error(f"must be a path, got {_shown(value)}")
    if "\0" in value:
        raise where.error(f"a path cannot hold a NUL character, got {_shown(value)}")
    try:
        p = Path(value).expanduser()
        return (p if p.is_absolute() else base / p).resolve()
    except (OSError, RuntimeError) as exc:  # `~user` unknown, a loop of links
        raise where.error(f"not a usable path: {_shown(value)}: {exc}") from exc


def _existing_path(value: Any, where: _Where, base: Path, what: str, *, file: bool = False) -> Path:
    """An existing path; with `file`, one that is not a folder (a style, init or weights file)."""
    p = _path(value, where, base)
    try:
        exists, is_dir = p.exists(), p.is_dir()
    except OSError as exc:  # a name too long, a folder that cannot be entered
        raise where.error(f"{what}: cannot look at {_shown(str(p))}: {exc.strerror or exc}") from exc
    if not exists:
        raise where.error(f"{what} not found: {p}")
    if file and is_dir:
        raise where.error(f"{p}: is a folder, not {'an image' if 'image' in what else 'a file'}")
    return p


def _styles(value: Any, where: _Where, base: Path) -> tuple[StyleSpec, ...]:
    if isinstance(value, str):
        return (StyleSpec(_existing_path(value, where, base, "style image", file=True)),)
    if not isinstance(value, list) or not value:
        raise where.error("must be an image path or a list of {image, weight}")
    specs = []
    for i, item in enumerate(value):
        w = where.child(i, value)
        if isinstance(item, str):
            item = {"image": item}
        if not isinstance(item, dict) or "image" not in item:
            raise w.error("each style must be a path or a mapping with 'image' (and optional 'weight')")
        for key in item:
            if key not in ("image", "weight"):
                raise w.child(key, item).error(f"unknown key {_shown(key)}"
                                               + _did_you_mean(str(key), ["image", "weight"]))
        weight = _coerce(item.get("weight", 1.0), float, w.child("weight", item))
        if weight <= 0:
            raise w.child("weight", item).error(f"must be > 0, got {weight}")
        specs.append(StyleSpec(_existing_path(item["image"], w.child("image", item), base, "style image", file=True),
                               weight))
    return tuple(specs)


def _check_kinds(src: Path, output: Path, where: _Where) -> None:
    """The output is what the input makes: a folder for a folder; an image file (or a folder) for an
    image; an .mp4 (or a folder) for a video. Found now, not after a night's optimisation."""
    suffix = output.suffix.lower()
    if suffix not in IMAGE_SUFFIXES and suffix not in VIDEO_EXTENSIONS:
        return  # a folder
    if suffix in PILLOW_SUFFIXES:
        raise where.error(f"{output.suffix} is read, not written: name the output {output.stem}.png or .jpg "
                          f"(or give a folder)")
    if output.is_dir():
        raise where.error(f"{output} is a folder, but a name ending in {output.suffix} is the output file "
                          f"itself: give another name, or the folder without the file name")
    if src.is_dir():
        raise where.error(f"the input {src} is a folder, so the output must be a folder, not the file name "
                          f"{output.name} (e.g. output: {output.with_suffix('').name})")
    if is_video_file(src):
        if suffix in IMAGE_SUFFIXES:
            raise where.error(f"the input {src.name} is a video, so the output is a video: name it "
                              f"{output.stem}.mp4 (or give a folder), not {output.name}")
        if suffix != ".mp4":
            raise where.error(f"a video is written as an H.264 mp4: name the output {output.stem}.mp4 "
                              f"(or give a folder), not {output.name}")
    elif is_image_file(src) and suffix in VIDEO_EXTENSIONS:
        raise where.error(f"the input {src.name} is an image, so the output is an image: name it "
                          f"{output.stem}.png or .jpg (or give a folder), not {output.name}")


def _check_outputs(jobs: Sequence[Job]) -> None:
    """No job may write into another job's input, and no two jobs' outputs may meet: the same path, or
    one inside the other (their files, locks and ledgers would mix)."""
    for i, job in enumerate(jobs):
        for other in jobs[:i]:
            both = f"jobs '{other.name}' ({other.source}) and '{job.name}' ({job.source})"
            if job.output == other.output:
                raise ManifestError(f"{job.source}: output: {both} write to the same output {job.output}; "
                                    "give each job its own")
            if other.output in job.output.parents or job.output in other.output.parents:
                inner, outer = (job, other) if other.output in job.output.parents else (other, job)
                raise ManifestError(f"{job.source}: output: {both} have nested outputs: {inner.output} lies inside "
                                    f"{outer.output}, so one job's files would land among the other's; "
                                    "give each job a folder of its own (e.g. side by side)")
    for job in jobs:
        for other in jobs:
            if job.output == other.input or other.input in job.output.parents:
                raise ManifestError(
                    f"{job.source}: output: {job.output} would write into the input of job '{other.name}'")
