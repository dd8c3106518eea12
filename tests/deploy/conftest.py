"""The chart, rendered by helm (built by scripts/bootstrap from the Go module proxy): no servers needed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
CHART = ROOT / "deploy" / "helm" / "recipe-outbound"
PRODUCTION = ROOT / "deploy" / "helm" / "ci-values-production.yaml"
CRD_SCHEMAS = ROOT / "deploy" / "helm" / "crd-schemas"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest kubernetes-validate knows.
KUBE_VERSIONS = ("1.27.0", "1.37.0")
NAMESPACE = "outbound"

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm() -> str:
    cache = Path(os.environ.get("OUTBOUND_CACHE", Path.home() / ".cache" / "recipe-outbound"))
    path = cache / "helm-v3.22.0" / "helm"
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/bootstrap")
    return str(path)


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)


def template_args(values: tuple[Path, ...], sets: dict[str, Any] | None, kube_version: str) -> list[str]:
    args = ["template", "r", str(CHART), "--namespace", NAMESPACE, "--kube-version", kube_version]
    for path in values:
        args += ["--values", str(path)]
    for key, value in (sets or {}).items():
        args += ["--set-string" if isinstance(value, str) else "--set", f"{key}={value}"]
    return args


@pytest.fixture(scope="session")
def render(helm: str) -> Render:
    """`helm template` of the chart with values files and --set pairs, as a list of manifests."""

    def render(
        *values: Path, sets: dict[str, Any] | None = None, kube_version: str = KUBE_VERSIONS[-1]
    ) -> list[dict[str, Any]]:
        result = run_helm(helm, *template_args(values, sets, kube_version))
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return render


@pytest.fixture(scope="session")
def refused(helm: str) -> Callable[..., str]:
    """What helm says when it refuses to render the chart with these values."""

    def refused(*values: Path, sets: dict[str, Any] | None = None) -> str:
        result = run_helm(helm, *template_args(values, sets, KUBE_VERSIONS[-1]))
        assert result.returncode != 0, "helm rendered values it should have refused"
        return result.stderr

    return refused


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]
