"""The ``helm`` binary that the chart's tests run (tests/test_helm.py): Helm 4.3.2, built
from the Go module proxy with ``go install`` (no release download is needed).

It is built once into ``.state/tools/helm-v4.3.2/``; a stamp file beside it names the
module and version it was built from, and a lock file keeps two test sessions from
building it at the same time. A fresh machine builds it at its first test run: 9 min
20 s on two busy cores (4 min 40 s of CPU), the modules' download included; 16 s when
Go's module and build caches hold it already (README, "Dependencies").
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

HELM_MODULE = "helm.sh/helm/v4"
HELM_VERSION = "v4.3.2"
ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".state" / "tools" / f"helm-{HELM_VERSION}"
BUILD_MINUTES = 30
STAMP = f"{HELM_MODULE}@{HELM_VERSION}\n"
"""What the stamp file beside a finished build says."""


class HelmUnavailable(Exception):
    """Raised when helm is not built and cannot be: Go is missing or the build failed."""


_early: concurrent.futures.Future[Path] | None = None


def build_early() -> None:
    """Start building helm in a thread of its own, at the lowest CPU priority, when it is
    not built: a fresh machine's test session then builds it while the tests before the
    chart's run (most of their time is waiting), instead of stopping for it."""
    global _early
    if _early is not None or _built():
        return
    future = _early = concurrent.futures.Future()

    def build() -> None:  # a daemon: a session that ends first does not wait for it
        try:
            future.set_result(_ensure())
        except BaseException as exc:  # noqa: BLE001 - handed to ensure_helm
            future.set_exception(exc)

    threading.Thread(target=build, name="helm-build", daemon=True).start()


def ensure_helm() -> Path:
    """Path of a working ``helm`` of ``HELM_VERSION``, building it when there is none (or
    waiting for ``build_early``'s build)."""
    if _early is not None:
        return _early.result()
    return _ensure()


def _ensure() -> Path:
    target = TOOLS / "helm"
    if _built():
        return target
    go = shutil.which("go") or shutil.which("/usr/local/go/bin/go")
    if go is None:
        raise HelmUnavailable("helm is not built and Go is missing to build it")
    TOOLS.mkdir(parents=True, exist_ok=True)
    with (TOOLS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _built():
            _build(go, target)
            (TOOLS / ".build").write_text(STAMP)
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
                ["nice", "-n", "19", go, "install", "-trimpath",
                 f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}"],
                env=environment, capture_output=True, text=True, timeout=BUILD_MINUTES * 60)
        except subprocess.TimeoutExpired:
            raise HelmUnavailable(f"building helm took over {BUILD_MINUTES} minutes") from None
        if result.returncode != 0:
            last = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise HelmUnavailable(f"go install {HELM_MODULE}/cmd/helm@{HELM_VERSION} "
                                  f"failed:\n{last}")
        os.replace(Path(gobin) / "helm", target)


def _built() -> bool:
    """Whether ``TOOLS`` holds a finished build of ``HELM_VERSION``."""
    stamp = TOOLS / ".build"
    return (TOOLS / "helm").exists() and stamp.exists() and stamp.read_text() == STAMP


def _works(target: Path) -> bool:
    try:
        return subprocess.run([str(target), "version", "--short"], capture_output=True,
                              timeout=30).returncode == 0
    except OSError:
        return False
