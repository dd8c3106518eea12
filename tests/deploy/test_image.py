"""The image: its Dockerfile passes hadolint, and the package it installs carries its own catalog and schemas."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT

pytestmark = pytest.mark.deploy

BIN = Path(sys.executable).parent


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install faust-streaming\nCMD outbound worker\n")
    result = subprocess.run([str(BIN / "hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the latest tag


def test_dockerfile_installs_from_the_lock_and_runs_the_worker_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes" in text and "requirements.lock" in text
    assert text.index("COPY requirements.lock") < text.index("COPY service"), "dependencies get their own layer"
    assert 'ENTRYPOINT ["outbound"]' in text and 'CMD ["worker"]' in text
    context = (ROOT / ".dockerignore").read_text()
    for needed in ("requirements.lock", "pyproject.toml", "README.md", "topics/", "schemas/", "service/"):
        assert f"!{needed}" in context, f"{needed} is not in the build context"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built into a wheel from a copy of what the image's build context holds, then installed."""
    src = tmp_path_factory.mktemp("context")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("service", "topics", "schemas"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [str(BIN / "python"), "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), "."],
        cwd=src,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("*.whl")
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_installed_package_reads_its_own_catalog_and_schemas(installed: Path) -> None:
    # -I keeps the source tree (and the editable install's path entries) from being found first.
    probe = (
        f"import sys; sys.path.insert(0, {str(installed)!r}); import json; from service.settings import Settings;"
        "s = Settings(); print(json.dumps([str(s.topic_catalog), str(s.schemas_dir)]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOUND_")}
    result = subprocess.run(
        [str(BIN / "python"), "-I", "-c", probe], cwd=installed, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    catalog, schemas = map(Path, json.loads(result.stdout))
    assert catalog.is_relative_to(installed) and schemas.is_relative_to(installed)
    assert catalog.read_bytes() == (ROOT / "topics" / "catalog.json").read_bytes()
    assert {p.name for p in schemas.glob("*.schema.json")} == {p.name for p in (ROOT / "schemas").glob("*.schema.json")}
    assert not catalog.is_symlink() and not schemas.is_symlink()
