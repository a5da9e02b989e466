"""Run the real `nst-batch` command: in a subprocess, as a user would (`nst`), or in this process (`nst_here`)."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path


def nst(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "nst_batch", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def nst_here(*args: str | Path, cwd: Path | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The same command run in this process by typer's CliRunner, in `cwd`, with `env` added to the
    environment meanwhile: no interpreter, torch and OpenCV to start (seconds a call on 2 cores). For tests
    of what a command does; `nst` for those of the process itself (signals, the entry point, a fresh
    interpreter or hash seed). An exception that escapes the command is in stderr as its traceback, as
    Python prints it."""
    from typer.testing import CliRunner

    from nst_batch.cli import app

    argv = [str(a) for a in args]
    before = os.getcwd()
    os.chdir(cwd or before)
    try:
        result = CliRunner().invoke(app, argv, env={"COLUMNS": "200", **(env or {})})
    finally:
        os.chdir(before)
    stderr = result.stderr
    if result.exc_info is not None and not isinstance(result.exc_info[1], SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))  # "Traceback (most recent call last)"
    return subprocess.CompletedProcess(["nst-batch", *argv], result.exit_code, result.stdout, stderr)


def output_files(root: Path) -> dict[str, bytes]:
    """Every output file under root/out, relative → bytes; job state, settings sidecars and the report left out."""
    out = root / "out"
    found = {}
    for path in sorted(out.rglob("*")) if out.exists() else []:
        rel = path.relative_to(out)
        if (path.is_file() and not any(p.startswith((".", "report")) for p in rel.parts)
                and not path.name.endswith("nst-batch.json")):
            found[rel.as_posix()] = path.read_bytes()
    return found
