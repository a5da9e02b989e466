"""The manifest as JSON Schema (for editors' YAML language server) and a commented starter manifest.

Both are derived from the settings dataclasses, so they cannot drift from what
`manifest.py` accepts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nst_batch.engine.vgg import MODELS, layer_names
from nst_batch.settings import Bounds, Settings, VideoSettings

__all__ = ["OneJob", "manifest_schema", "starter_manifest"]

_LAYER_KEYS = ("content_layers", "style_layers")


def _type(hint: Any, name: str) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_type(a, name) if a is not type(None) else {"type": "null"} for a in args]}
    if origin is tuple:
        item = {"enum": list(layer_names("vgg19"))} if name in _LAYER_KEYS else _type(args[0], name)
        return {"type": "array", "items": item}
    return {bool: {"type": "boolean"}, int: {"type": "integer"}, float: {"type": "number"},
            str: {"type": "string"}}[hint]


def _properties(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name == "video":
            continue
        prop = _ranged(_type(hints[f.name], f.name), f.metadata.get("bounds"))
        prop["description"] = f.metadata["help"]
        if f.default is not dataclasses.MISSING:
            prop["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
        props[f.name] = prop
    return props


def _ranged(schema: dict[str, Any], bounds: Bounds | None) -> dict[str, Any]:
    """`schema` with the field's range (`settings.Bounds`) on its number (the number branch of an anyOf)."""
    if bounds is None:
        return schema
    if "anyOf" in schema:
        return {**schema, "anyOf": [_ranged(branch, bounds) for branch in schema["anyOf"]]}
    if schema.get("type") not in ("number", "integer"):
        return schema
    out = dict(schema)
    if bounds.at_least is not None:  # a floor above `low` (size: > 0, and at least 16 px)
        out["minimum"] = bounds.at_least
    elif bounds.low is not None:
        out["exclusiveMinimum" if bounds.open_low else "minimum"] = bounds.low
    if bounds.high is not None:
        out["maximum"] = bounds.high
    return out


def _model_layers() -> list[dict[str, Any]]:
    """Layer names by `model` where a mapping names both (a job's layers under the defaults' model: the loader)."""
    rules = []
    for model in MODELS:
        layers = {"type": "array", "items": {"enum": list(layer_names(model))}}
        rules.append({"if": {"required": ["model"], "properties": {"model": {"const": model}}},
                      "then": {"properties": {key: layers for key in _LAYER_KEYS}}})
    return rules


def manifest_schema() -> dict[str, object]:
    settings = _properties(Settings)
    settings["video"] = {"type": "object", "additionalProperties": False, "properties": _properties(VideoSettings),
                         "description": "video settings"}
    style_item = {"type": "object", "additionalProperties": False, "required": ["image"],
                  "properties": {"image": {"type": "string"}, "weight": {"type": "number", "exclusiveMinimum": 0}}}
    style = {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1,
                                            "items": {"anyOf": [{"type": "string"}, style_item]}}]}
    region = {"type": "object", "additionalProperties": False, "required": ["mask"],
              "properties": {"mask": {"type": "string", "description": "a grayscale mask image (white = the region), "
                                      "a mask video, a folder of numbered mask frames, or a folder mirroring the "
                                      "input folder"},
                             "style": {**style, "description": "the region's style (none: the photo kept, with "
                                                               "style_weight 0)"},
                             "style_weight": {"type": "number", "minimum": 0},
                             "style_scale": {"type": "number", "exclusiveMinimum": 0}}}
    job = {
        "type": "object", "additionalProperties": False, "required": ["input", "output"],
        "properties": {
            "name": {"type": "string", "description": "the job's name (default: the input's file name)"},
            "input": {"type": "string", "description": "an image, a video, or a folder of them"},
            "style": {**style, "description": "a style image, or a list of {image, weight} (required unless the "
                                                "job has regions)"},
            "regions": {"type": "array", "minItems": 1, "items": region,
                        "description": "parts of each picture with styles of their own"},
            "output": {"type": "string", "description": "a folder, or an .mp4 file for a video input"},
            "sweep": {"type": "object", "additionalProperties": {"type": "array", "minItems": 1},
                      "description": "settings (or style) to try, each a list of values: one output folder per "
                      "combination and a contact sheet per input"},
            "exclude": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                        "description": "globs of files a folder input leaves out, relative to the folder"},
            **settings,
        },
        "allOf": [*_model_layers(), {"anyOf": [{"required": ["style"]}, {"required": ["regions"]}]}],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "nst-batch manifest", "type": "object", "additionalProperties": False,
        "required": ["version", "jobs"],
        "properties": {
            "version": {"const": 1},
            "defaults": {"type": "object", "additionalProperties": False, "properties": settings,
                         "allOf": _model_layers()},
            "jobs": {"type": "array", "minItems": 1, "items": job},
        },
    }


@dataclass(frozen=True)
class OneJob:
    """The job of the one-line form (`nst-batch run INPUT --style S -o OUT`, `init --input ...`)."""

    input: Path
    styles: tuple[Path, ...]  # blended with equal weights
    output: Path


def starter_manifest(job: OneJob | None = None, *, base: Path | None = None) -> str:
    """A commented manifest with every setting at its default, and `job` (or an example job) as its job.

    `job`'s paths are written relative to `base` (the manifest's folder) where they lie inside it.
    """
    lines = ["# nst-batch manifest (see README.md). Check it: nst-batch validate pipeline.yaml",
             "# yaml-language-server: $schema=nst-batch.schema.json", "version: 1", "defaults:"]
    for cls, indent in ((Settings, "  "), (VideoSettings, "    ")):
        if cls is VideoSettings:
            lines.append("  # video:")
        for f in dataclasses.fields(cls):
            if f.name == "video":
                continue
            lines.append(f"{indent}# {f.name}: {_yaml(f.default)}    # {f.metadata['help']}")
    lines += ["jobs:", *(_job_lines(job, base or Path.cwd()) if job else
                         ["  - name: photos", "    input: photos            # a folder, an image or a video",
                          "    style: style.jpg", "    output: out/photos"])]
    return "\n".join(lines) + "\n"


def _job_lines(job: OneJob, base: Path) -> list[str]:
    def path(p: Path) -> str:
        p = p.resolve()
        shown = Path(os.path.relpath(p, base.resolve())) if base.resolve() in p.parents else p
        return json.dumps(shown.as_posix())  # a JSON string is a YAML string: any character, quoted

    lines = [f"  - input: {path(job.input)}"]
    if len(job.styles) == 1:
        lines.append(f"    style: {path(job.styles[0])}")
    else:
        lines.append("    style:")
        lines += [f"      - {{image: {path(s)}, weight: 1}}" for s in job.styles]
    return [*lines, f"    output: {path(job.output)}"]


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
