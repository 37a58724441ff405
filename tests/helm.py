"""The ``helm`` binary that the chart's tests run (tests/test_helm.py): Helm 4.3.2, built
from the Go module proxy with ``go install`` (no release download is needed).

It is built once into ``.state/tools/helm-v4.3.2/``; a stamp file beside it names the
module and version it was built from, and a lock file keeps two test sessions from
building it at the same time. A fresh machine builds it at its first test run: 9 min
20 s on two busy cores (4 min 40 s of CPU), the modules' download included; 16 s when
Go's module and build caches hold it already (README, "Dependencies").
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HELM_MODULE = "helm.sh/helm/v4"
HELM_VERSION = "v4.3.2"
ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".state" / "tools" / f"helm-{HELM_VERSION}"
BUILD_MINUTES = 30


class HelmUnavailable(Exception):
    """Raised when helm is not built and cannot be: Go is missing or the build failed."""


def ensure_helm() -> Path:
    """Path of a working ``helm`` of ``HELM_VERSION``, building it when there is none."""
    target, stamp = TOOLS / "helm", TOOLS / ".build"
    wanted = f"{HELM_MODULE}@{HELM_VERSION}\n"
    if _built(target, stamp, wanted):
        return target
    go = shutil.which("go") or shutil.which("/usr/local/go/bin/go")
    if go is None:
        raise HelmUnavailable("helm is not built and Go is missing to build it")
    TOOLS.mkdir(parents=True, exist_ok=True)
    with (TOOLS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _built(target, stamp, wanted):
            _build(go, target)
            stamp.write_text(wanted)
    if not _works(target):
        raise HelmUnavailable(f"the helm binary built at {target} does not run")
    return target


def _build(go: str, target: Path) -> None:
    """``go install`` into a folder of its own, then moved into place: a build that stops
    half-way leaves no binary behind that looks finished."""
    with tempfile.TemporaryDirectory(prefix="helm-build-", dir=TOOLS) as gobin:
        environment = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0"}
        try:
            result = subprocess.run(
                [go, "install", "-trimpath", f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}"],
                env=environment, capture_output=True, text=True, timeout=BUILD_MINUTES * 60)
        except subprocess.TimeoutExpired:
            raise HelmUnavailable(f"building helm took over {BUILD_MINUTES} minutes") from None
        if result.returncode != 0:
            last = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise HelmUnavailable(f"go install {HELM_MODULE}/cmd/helm@{HELM_VERSION} "
                                  f"failed:\n{last}")
        os.replace(Path(gobin) / "helm", target)


def _built(target: Path, stamp: Path, wanted: str) -> bool:
    return target.exists() and stamp.exists() and stamp.read_text() == wanted


def _works(target: Path) -> bool:
    try:
        return subprocess.run([str(target), "version", "--short"], capture_output=True,
                              timeout=30).returncode == 0
    except OSError:
        return False
