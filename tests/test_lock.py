"""CI's lock: every range of pyproject.toml pinned inside it, and the check that keeps it from going stale."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
from packaging.requirements import Requirement

from conftest import REPO

tomllib = pytest.importorskip("tomllib")


def _lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_lock", REPO / ".ci" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ci_lock"] = module
    spec.loader.exec_module(module)
    return module


lock = _lock_module()


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in project["dependencies"] + extras["test"] + extras["ray"]]


def test_every_range_of_pyproject_is_pinned_in_the_lock_within_its_range() -> None:
    pins = lock.parse(lock.LOCK.read_text())
    wrong = []
    for req in _requirements():
        version = pins.get(lock.canonical(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            wrong.append(f"{req} (lock: {version})")
    assert not wrong, f"refresh .ci/requirements.lock (its header says how): {wrong}"


def test_lock_pins_every_line_exactly() -> None:
    text = lock.LOCK.read_text()
    pins = lock.parse(text)
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(body) == len(pins) and all("==" in line for line in body)
    assert "pip" not in pins and "nst-batch" not in pins  # the venv's own pip; the project itself


def test_parse_refuses_a_range() -> None:
    with pytest.raises(ValueError, match="not an exact pin"):
        lock.parse("torch>=2.1\n")


def test_differences_name_upgrades_additions_and_removals_by_canonical_name() -> None:
    pinned = lock.parse("Pillow_heif==1.8.1\nopencv-python-headless==5.0.0.93\nrich==15.0.0\nsix==1.16\n")
    env = lock.parse("pillow-heif==1.8.1\nopencv_python_headless==5.1.0.95\nrich==15.0.0\nonnx==1.20\n")
    assert lock.differences(pinned, env) == [
        "onnx 1.20 (not in the lock)",
        "opencv-python-headless 5.0.0.93 -> 5.1.0.95",
        "six 1.16 (in the lock, not installed)",
    ]
    assert lock.differences(pinned, pinned) == []


def test_blame_names_the_upgrade_whose_old_version_alone_makes_the_step_pass(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pinned = tmp_path / "requirements.lock"
    pinned.write_text("opencv-python-headless==5.0.0.93\nmypy==2.4.0\nrich==15.0.0\n")
    env = {"opencv-python-headless": "5.1.0.95", "mypy": "2.4.1", "rich": "15.0.0", "onnx": "1.20"}
    installs: list[str] = []

    def pip_install(name: str, version: str) -> bool:
        installs.append(f"{name}=={version}")
        env[name] = version
        return True

    monkeypatch.setattr(lock, "LOCK", pinned)
    monkeypatch.setattr(lock, "installed", lambda: dict(env))
    monkeypatch.setattr(lock, "_pip_install", pip_install)
    # The step passes only with the old OpenCV, whatever mypy is.
    monkeypatch.setattr(lock, "_passes", lambda command: env["opencv-python-headless"] == "5.0.0.93")
    assert lock.blame(["mypy"]) == 0
    out = capsys.readouterr().out
    assert "is broken by: opencv-python-headless 5.0.0.93 -> 5.1.0.95" in out
    assert "mypy 2.4.0 (the lock's) instead of 2.4.1: still fails" in out
    assert "new since the lock, not tried: onnx" in out
    # Each package is put back to its new version after its try, so the environment ends as it began.
    assert installs == ["mypy==2.4.0", "mypy==2.4.1", "opencv-python-headless==5.0.0.93",
                        "opencv-python-headless==5.1.0.95"]
    assert env["opencv-python-headless"] == "5.1.0.95" and env["mypy"] == "2.4.1"
