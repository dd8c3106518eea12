"""The lock: current with pyproject.toml, every package pinned and hashed, and a stale lock is caught."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT

pytestmark = pytest.mark.deploy


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "lock"), "--check", str(root)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_lock_is_current() -> None:
    result = check(ROOT)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for name in ("pyproject.toml", "requirements.lock", "requirements-test.lock"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def test_a_new_dependency_without_a_new_lock_is_caught(copy: Path) -> None:
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("dependencies = [\n", 'dependencies = [\n  "left-pad>=1",\n', 1))
    result = check(copy)
    assert result.returncode != 0
    assert "left-pad is not locked" in result.stderr
    assert "run scripts/lock" in result.stderr


def test_a_hand_edited_pin_outside_its_range_is_caught(copy: Path) -> None:
    lock = copy / "requirements-test.lock"
    text = lock.read_text()
    start = text.index("\npytest==") + len("\npytest==")
    end = text.index(" ", start)
    lock.write_text(text[:start] + "8.0.0" + text[end:])
    result = check(copy)
    assert result.returncode != 0
    assert "pytest==8.0.0 does not satisfy" in result.stderr


def test_the_image_lock_is_the_test_lock_without_the_test_tools() -> None:
    def pins(name: str) -> dict[str, str]:
        lines = (ROOT / name).read_text().splitlines()
        return dict(
            line.split(" ")[0].split("==") for line in lines if "==" in line and not line.startswith(("#", " "))
        )

    image, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert image.items() <= test.items(), "the tests run the versions the image ships"
    assert "pytest" not in image and "pytest" in test
