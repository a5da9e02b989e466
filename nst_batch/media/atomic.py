"""Atomic writes: write under a temporary name in the same folder, then rename.

A reader (or a resumed run) never sees half a file: either the old file, no file,
or the whole new one. A crash leaves at most a `*.partial*` file, which the next
run overwrites or removes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic"]

PARTIAL_MARK = ".partial"


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` if the block succeeds.

    The temporary name keeps the suffix of `final` (`x.partial-123.png`) so that
    libraries choosing a format by extension still do the right thing.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.stem}{PARTIAL_MARK}-{os.getpid()}{final.suffix}")
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(final: Path, text: str) -> None:
    write_bytes_atomic(final, text.encode("utf-8"))


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
