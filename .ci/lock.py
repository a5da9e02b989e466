"""The lock CI installs from, and the tools that keep it honest.

CI installs exact versions (`.ci/requirements.lock`) so that an upstream release cannot turn it
red on a day nobody changed anything; `pyproject.toml` keeps the ranges users install from.

    python .ci/lock.py write FILE     freeze this environment into FILE (the lock's format)
    python .ci/lock.py check          fail unless this environment holds exactly the lock
    python .ci/lock.py diff           what this environment holds that the lock does not
    python .ci/lock.py blame -- CMD   CMD fails here: which release, taken back to the lock's
                                      version alone, makes it pass

Run inside the environment in question (`.ci/run` does). Standard library only: it must work
before anything else is installed, and in any Python the project supports.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

LOCK = Path(__file__).with_name("requirements.lock")
# pip itself is the venv's own (whatever `python3 -m venv` gave this machine), not ours to pin.
UNPINNED = {"pip"}
HEADER = """\
# Exact versions CI installs (.ci/run); pyproject.toml keeps the ranges users install from.
# Made by `NST_BATCH_CI=newest bash .ci/run` (the newest releases the ranges allow, every CI step
# run on them), which writes .ci/newest.lock; when it is green, `cp .ci/newest.lock .ci/requirements.lock`.
# A step of .ci/run fails if what it installed differs from this file in any line.
"""


def canonical(name: str) -> str:
    """PEP 503's normal form of a distribution name: `Pillow_heif` and `pillow-heif` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(text: str) -> dict[str, str]:
    """`name==version` lines (comments, blanks and editable lines skipped) as {canonical name: version}."""
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise ValueError(f"not an exact pin: {raw!r}")
        pins[canonical(name.strip())] = version.strip()
    return pins


def installed() -> dict[str, str]:
    """What this environment holds, as pip sees it (the project itself, installed editable, left out)."""
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                         check=True, capture_output=True, text=True).stdout
    return {name: version for name, version in parse(out).items() if name not in UNPINNED}


def differences(lock: dict[str, str], env: dict[str, str]) -> list[str]:
    """One line per package whose version differs, or that only one side holds; sorted by name."""
    lines = []
    for name in sorted(set(lock) | set(env)):
        old, new = lock.get(name), env.get(name)
        if old == new:
            continue
        if old is None:
            lines.append(f"{name} {new} (not in the lock)")
        elif new is None:
            lines.append(f"{name} {old} (in the lock, not installed)")
        else:
            lines.append(f"{name} {old} -> {new}")
    return lines


def write(path: Path) -> None:
    env = installed()
    path.write_text(HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(env.items())))
    print(f"lock: {len(env)} packages written to {path}")


def check() -> int:
    diff = differences(parse(LOCK.read_text()), installed())
    if diff:
        print(f"lock: what was installed differs from {LOCK.name} (refresh it: see its header):")
        for line in diff:
            print(f"  {line}")
        return 1
    print(f"lock: the environment is exactly {LOCK.name} ({len(parse(LOCK.read_text()))} packages)")
    return 0


def diff() -> int:
    lines = differences(parse(LOCK.read_text()), installed())
    print(f"newest: {len(lines)} package(s) differ from {LOCK.name}" + (":" if lines else ""))
    for line in lines:
        print(f"  {line}")
    return 0


def _pip_install(name: str, version: str) -> bool:
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", f"{name}=={version}"],
                          capture_output=True, text=True)
    return done.returncode == 0


def _passes(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True).returncode == 0
    except OSError as err:  # the command itself is missing: it fails the same way whatever is installed
        print(f"blame: cannot run {command[0]!r}: {err.strerror}")
        return False


def blame(command: list[str]) -> int:
    """Take each upgraded package back to the lock's version, one at a time, and run `command` again.

    A package whose old version alone makes the command pass is named as the release that broke it.
    Each package is put back to its new version before the next is tried, so the answer for one
    does not depend on the others. Packages new since the lock cannot be taken back; they are listed.
    """
    lock, env = parse(LOCK.read_text()), installed()
    upgraded = [name for name in sorted(env) if name in lock and lock[name] != env[name]]
    if _passes(command):
        print(f"blame: `{' '.join(command)}` passes when run again: nothing to blame (a flaky step?)")
        return 0
    culprits = []
    for name in upgraded:
        if not _pip_install(name, lock[name]):
            print(f"blame: {name} {lock[name]} could not be installed; not tried")
            continue
        try:
            passed = _passes(command)
        finally:
            _pip_install(name, env[name])
        verdict = "passes" if passed else "still fails"
        print(f"blame: with {name} {lock[name]} (the lock's) instead of {env[name]}: {verdict}")
        if passed:
            culprits.append(f"{name} {lock[name]} -> {env[name]}")
    new = [name for name in sorted(env) if name not in lock]
    if new:
        print(f"blame: new since the lock, not tried: {', '.join(new)}")
    if culprits:
        print(f"blame: `{' '.join(command)}` is broken by: {'; '.join(culprits)}")
    else:
        print(f"blame: no single upgrade taken back makes `{' '.join(command)}` pass"
              " (several together, a new package, or the code itself)")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["write"] and len(argv) == 2:
        write(Path(argv[1]))
        return 0
    if argv == ["check"]:
        return check()
    if argv == ["diff"]:
        return diff()
    if argv[:2] == ["blame", "--"] and len(argv) > 2:
        return blame(argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
