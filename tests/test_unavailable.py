"""A database that does not answer: UNAVAILABLE in the contract's shape, /readyz says 503."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import CLI, free_port


@pytest.fixture
def api_without_database(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    down = {**env, "EVENT_MANAGER_MONGODB_URL": f"mongodb://127.0.0.1:{free_port()}"}
    log = (tmp_path / "api.log").open("w")
    process = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=down, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


def test_api_answers_unavailable_while_mongodb_is_down(api_without_database: str,
                                                       redis_client: object) -> None:
    started = time.monotonic()
    response = httpx.post(f"{api_without_database}/graphql", timeout=30,
                          json={"query": "{ me { role } }"},
                          headers={"Authorization": "Bearer em_" + "x" * 43})
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert "Traceback" not in response.text
    assert time.monotonic() - started < 15
    assert httpx.get(f"{api_without_database}/healthz").status_code == 200
    ready = httpx.get(f"{api_without_database}/readyz", timeout=30)
    assert ready.status_code == 503
    assert "mongodb" in ready.json()["failing"] and "redis" not in ready.json()["failing"]


def test_readyz_is_200_when_both_answer(api_url: str) -> None:
    assert httpx.get(f"{api_url}/readyz").json() == {"status": "ready"}
