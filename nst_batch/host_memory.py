"""Memory free on the host, torch-free (media's decode guard and the memory plan both ask it)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_available"]


def cpu_available() -> int:
    """Bytes the CPU side may use now: MemAvailable, within a container's memory limit."""
    available = _meminfo("MemAvailable")
    limit = _cgroup_room()
    return available if limit is None else min(available, limit)


def _meminfo(field: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    # not Linux: the physical memory, a generous guess
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _cgroup_room(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Room left under a container's memory limit (cgroup v2, or v1), or None when there is no limit."""
    for limit_file, used_file in (("memory.max", "memory.current"),
                                  ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = (root / limit_file).read_text().strip()
            used = int((root / used_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 1 << 60:  # v1 writes "no limit" as a huge number
            return None
        return max(0, int(limit) - used)
    return None
