"""`nst-batch schema` describes what the manifest loader accepts; `nst-batch init` writes a manifest that loads."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from cli_helpers import nst_here
from conftest import REPO
from test_manifest import CONTRACT
from nst_batch.manifest import load_manifest, read_yaml


def test_schema_accepts_good_and_rejects_bad(tmp_path: Path) -> None:
    res = nst_here("schema")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    jsonschema.validate(read_yaml((REPO / "pipeline.yaml").read_text()), schema)
    jsonschema.validate(read_yaml(CONTRACT), schema)
    ranges = schema["properties"]["defaults"]["properties"]
    assert ranges["size"]["anyOf"][0] == {"type": "integer", "minimum": 16, "maximum": 16384}
    assert ranges["strength"]["anyOf"][0] == {"type": "number", "exclusiveMinimum": 0, "maximum": 1.5}
    jsonschema.validate({"version": 1, "jobs": [{"input": "a", "style": "b", "output": "c", "size": "original",
                                             "strength": 1.5}]},
                        schema)
    jsonschema.validate({"version": 1, "jobs": [{"input": "a", "output": "c", "strength": 0.5, "regions": [
        {"mask": "m.png", "style": "s.jpg", "style_weight": 8}, {"mask": "f/", "style_weight": 0}]}]}, schema)
    for bad in ({"version": 1, "jobs": [{"input": "a", "style": "b", "output": "c", "optimizer": "sgd"}]},
                {"version": 1, "jobs": [{"input": "a", "style": "b", "output": "c", "sise": 3}]},
                {"version": 1, "jobs": [{"input": "a", "output": "c"}]},
                {"version": 1, "jobs": [{"input": "a", "style": "b", "output": "c", "size": 8}]},
                {"version": 1, "jobs": [{"input": "a", "style": "b", "output": "c", "strength": 0}]},
                {"version": 1, "jobs": [{"input": "a", "style": "b", "output": "c", "quality": 101}]},
                {"version": 1, "jobs": [{"input": "a", "style": "b", "output": "c", "video": {"scene_cut": 2}}]},
                {"version": 1, "jobs": [{"input": "a", "output": "c", "regions": [{"style": "s.jpg"}]}]},
                {"version": 1, "jobs": [{"input": "a", "output": "c", "regions": [{"mask": "m", "colour": 1}]}]},
                {"version": 1, "defaults": {"style_layers": ["conv9_1"]},
                 "jobs": [{"input": "a", "style": "b", "output": "c"}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_init_writes_a_manifest_that_loads(tmp_path: Path, photos: Path) -> None:
    (tmp_path / "style.jpg").write_bytes((REPO / "samples" / "styles" / "starry_night.jpg").read_bytes())
    res = nst_here("init", tmp_path / "pipeline.yaml")
    assert res.returncode == 0, res.stderr
    job = load_manifest(tmp_path / "pipeline.yaml").jobs[0]
    assert job.input == photos and job.settings.size == 512
    again = nst_here("init", tmp_path / "pipeline.yaml")
    assert again.returncode == 2 and "exists" in again.stderr  # never overwrites a manifest


def test_init_creates_missing_folders(tmp_path: Path) -> None:
    res = nst_here("init", tmp_path / "new" / "project" / "pipeline.yaml")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert (tmp_path / "new" / "project" / "nst-batch.schema.json").is_file()
    assert read_yaml((tmp_path / "new" / "project" / "pipeline.yaml").read_text())["version"] == 1
    # A folder, existing or not, gets pipeline.yaml inside.
    assert nst_here("init", tmp_path / "other").returncode == 0 and (tmp_path / "other" / "pipeline.yaml").is_file()
    assert nst_here("init", tmp_path / "new").returncode == 0 and (tmp_path / "new" / "pipeline.yaml").is_file()
    # Where nothing can be written: one line, no traceback.
    (tmp_path / "blocker").write_text("a file where a folder should be\n")
    blocked = nst_here("init", tmp_path / "blocker" / "pipeline.yaml")
    assert blocked.returncode == 1 and "Traceback" not in blocked.stderr, blocked.stderr
    assert "cannot write the starter manifest" in blocked.stderr and len(blocked.stderr.strip().splitlines()) == 1
