"""Compare the installed packages with a pip-compile lock file; one line per drift, exit 1 on any.

Used by `make setup` (so by `make demo`, `make test` and CI) to notice a hand-upgraded package in the
venv and reinstall the locked versions. Stdlib only: it must run before anything else is installed.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """`name==version` pins of a pip-compile output (hash and comment lines skipped)."""
    pins = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def drift(pins: dict[str, str]) -> list[str]:
    installed = {_norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
    out = []
    for name, want in sorted(pins.items()):
        have = installed.get(name)
        if have != want:
            out.append(f"{name} {have or 'missing'} (locked {want})")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_env.py LOCKFILE", file=sys.stderr)
        return 2
    lock = Path(argv[0])
    found = drift(read_lock(lock))
    if found:
        print(
            f"environment drifted from {lock}: {', '.join(found)}; reinstalling the locked versions "
            "(make setup)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
