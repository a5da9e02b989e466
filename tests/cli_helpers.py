"""Run the real `nst-batch` console command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def nst(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "nst_batch", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


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
