"""Headless Chromium for the tests that drive a browser (the console, pages on other
origins): Debian's chromium, installed when missing, driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")


def install_chromium() -> str | None:
    """Installs Debian's chromium when it is missing; the reason when that fails."""
    if CHROMIUM.exists():
        return None
    if shutil.which("apt-get") is None:
        return "apt-get is not available to install chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    # A fresh machine may have no package lists yet: update only when the install needs it.
    for steps in ([install], [["apt-get", "update", "-q"], install]):
        try:
            if all(subprocess.run(step, env=env, capture_output=True, timeout=900).returncode == 0
                   for step in steps) and CHROMIUM.exists():
                return None
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"apt-get could not install chromium: {error}"
    return "apt-get could not install chromium (are you root?)"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module scope: Playwright's sync API keeps an event loop running on the main thread
    until it stops, and later tests that run their own loop (asyncio.run) need it gone."""
    reason = install_chromium()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()
