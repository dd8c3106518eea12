"""Stamps the lock files with a digest of pyproject.toml's requirements, and checks them offline.

The lock is stale when pyproject.toml's requirements changed since `scripts/lock` last ran, or when a
locked version no longer fits a range, or when a locked package has no hash to check it by.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCKS = {"requirements.lock": False, "requirements-test.lock": True}  # file -> includes the test extra
STAMP = "# pyproject-requirements-sha256: "
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def requirements(root: Path) -> dict:
    doc = tomllib.loads((root / "pyproject.toml").read_text())
    project = doc["project"]
    return {
        "requires-python": project.get("requires-python"),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {k: sorted(v) for k, v in sorted(project.get("optional-dependencies", {}).items())},
        "build-system": sorted(doc.get("build-system", {}).get("requires", [])),
    }


def digest(root: Path) -> str:
    return hashlib.sha256(json.dumps(requirements(root), sort_keys=True).encode()).hexdigest()


def pins(text: str) -> dict[str, tuple[str, int]]:
    """Locked name -> (version, number of hashes)."""
    found: dict[str, tuple[str, int]] = {}
    current = None
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            found[current] = (match.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
    return found


def problems(root: Path) -> list[str]:
    wanted = requirements(root)
    stamp = STAMP + digest(root)
    found = []
    for name, with_test in LOCKS.items():
        path = root / name
        if not path.exists():
            found.append(f"{name} is missing")
            continue
        text = path.read_text()
        if stamp not in text.splitlines():
            found.append(f"{name} was made from other requirements than pyproject.toml's")
        locked = pins(text)
        reqs = list(wanted["dependencies"]) + (wanted["optional-dependencies"].get("test", []) if with_test else [])
        for raw in reqs:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate():
                continue
            pin = locked.get(canonicalize_name(req.name))
            if pin is None:
                found.append(f"{name}: {req.name} is not locked")
            elif not req.specifier.contains(pin[0], prereleases=True):
                found.append(f"{name}: {req.name}=={pin[0]} does not satisfy {raw}")
        found.extend(f"{name}: {pkg}=={ver} has no hash" for pkg, (ver, hashes) in sorted(locked.items()) if not hashes)
    return found


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    if sys.argv[1:] == ["stamp"]:
        for name in LOCKS:
            path = root / name
            lines = [line for line in path.read_text().splitlines() if not line.startswith(STAMP)]
            path.write_text("\n".join([STAMP + digest(root), *lines]) + "\n")
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        root = Path(sys.argv[2])
    found = problems(root)
    for problem in found:
        print(f"stale lock: {problem}", file=sys.stderr)
    if found:
        print("the lock does not match pyproject.toml: run scripts/lock", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
