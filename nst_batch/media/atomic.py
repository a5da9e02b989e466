"""Atomic writes: write under a temporary name in the same folder, then rename.

A reader (or a resumed run) never sees half a file: either the old file, no file,
or the whole new one. A crash leaves at most a `*.partial-HOST-PID-RANDOM*` file,
which the next run removes (`remove_stale_partials`) before it writes there. The
host and the random part keep two writers apart even when they share a process id
on different machines of a Ray cluster writing to one shared filesystem.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic", "remove_stale_partials", "remove_dead_partials",
           "temp_tag"]

PARTIAL_MARK = ".partial"
# `x.partial-host-123-9f86d081.png` → final name `x.png` (stem "x", suffix ".png"); also the
# older `x.partial-123.png`, which a run of an earlier version may have left.
_PARTIAL_NAME = re.compile(rf"(?P<stem>.+){re.escape(PARTIAL_MARK)}-[A-Za-z0-9-]+(?P<suffix>\.[^.]*)?")


def temp_tag() -> str:
    """`HOST-PID-RANDOM`: unique across processes and machines (letters, digits and '-' only)."""
    return f"{_host()}-{os.getpid()}-{secrets.token_hex(4)}"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-")[:40] or "host"


_NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, tmpfs, APFS)
_TAG_MAX = 40 + 1 + 10 + 1 + 8  # the longest `temp_tag()`: host, pid, random


def _temp_stem(final: Path) -> str:
    """The stem of `final`'s temporary names: its own, or, where a long (but legal) name would make the
    temporary one too long for the filesystem, its first characters and a hash of the whole stem (the
    same for every writer, so `remove_stale_partials` still finds a killed writer's file)."""
    room = _NAME_MAX - len(os.fsencode(f"{PARTIAL_MARK}-{final.suffix}")) - _TAG_MAX
    if len(os.fsencode(final.stem)) <= room:
        return final.stem
    digest = "~" + hashlib.sha256(os.fsencode(final.stem)).hexdigest()[:12]
    stem = final.stem
    while stem and len(os.fsencode(stem + digest)) > room:
        stem = stem[:-1]
    return stem + digest


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` if the block succeeds.

    The temporary name keeps the suffix of `final` (`x.partial-host-123-9f86d081.png`) so
    that libraries choosing a format by extension still do the right thing.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{_temp_stem(final)}{PARTIAL_MARK}-{temp_tag()}{final.suffix}")
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)
    except OSError as exc:
        if exc.filename:
            raise
        # A write that fails on its open file (a full disk: ENOSPC from write or fsync) names no file:
        # the one that could not be written is `final`.
        raise OSError(exc.errno, exc.strerror or str(exc), str(final)) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def remove_dead_partials(folder: Path) -> list[Path]:
    """Delete the temporary files in `folder` whose writer is a process of this machine that has ended.

    For files that many runs share without a lock (the report's thumbnails): a live writer's file (its
    process is running), and any other machine's, is kept. Returns what was removed.
    """
    host = _host()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        # HOST-PID-RANDOM only: an older name's PID alone says no machine, and on a shared filesystem it may
        # be another machine's live writer.
        tag = re.fullmatch(rf".+{re.escape(PARTIAL_MARK)}-(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)-[0-9a-f]{{8}}"
                           r"(?:\.[^.]*)?", entry.name)
        if tag is None or tag["host"] != host or _alive(int(tag["pid"])):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or not a pid we can ask about): leave its file
    return True


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(final: Path, text: str) -> None:
    write_bytes_atomic(final, text.encode("utf-8"))


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def remove_stale_partials(finals: Iterable[Path]) -> list[Path]:
    """Delete the temporary files that a killed writer left beside `finals`; return them.

    The temporary name is unique to its writer, so a later run never reuses it: without
    this, a `kill -9` during a write would leave the file forever. Call it only while
    holding the lock on these outputs, or it could delete a live writer's file.
    """
    names: dict[Path, set[str]] = {}
    for final in finals:
        names.setdefault(Path(final).parent, set()).add(_temp_stem(Path(final)) + Path(final).suffix)
    removed: list[Path] = []
    for folder, wanted in names.items():  # one listing per folder, not one per output
        try:
            entries = list(os.scandir(folder))
        except OSError:  # no folder yet (nothing to remove) or unreadable (the writes will say so)
            continue
        for entry in entries:
            match = _PARTIAL_NAME.fullmatch(entry.name)
            if match and match["stem"] + (match["suffix"] or "") in wanted and entry.is_file():
                try:
                    os.unlink(entry.path)
                except OSError:
                    continue  # gone already, or a read-only folder: the write there will say so
                removed.append(Path(entry.path))
    return removed
