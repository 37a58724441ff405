"""No input holds the API's event loop: while one client sends each heavy input of issue
14, a second client asking ``{ me { role } }`` waits at most 100 ms beyond its quiet
latency (the worst of its latencies during the call, minus its quiet median), or, on a
machine so busy that this is not kept, at most 15 % of the heavy call's own time.

On the old code, with the collection read on the event loop, the second client waited
(worst minus quiet median): 2.0 s during the 10 MB collection, 0.6 s during 8,000
requests of one name; the ``ONLY_PLACEHOLDERS`` token had stalled every client 11.5 s.
Each of those waits was most of the heavy call's own time (the loop was held while the
call worked), which 15 % still catches; a CI run on a loaded machine saw 178 ms
during an import of several seconds with the loop free.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from resolvers.postman import MAX_BYTES, MAX_REQUESTS, parse_collection
from tests.conftest import SHARED, Client, Reply, TenantHandle

ME = "{ me { role } }"
REQUESTS = "query($c: String!) { postmanRequests(collection: $c) { ref } }"
IMPORT = ("mutation($c: String!) { importPostmanCollection(collection: $c) "
          "{ imported { id } skipped } }")
CREATE_ACTION = "mutation($input: ActionInput!) { createAction(input: $input) { id } }"
V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
ALLOWED_WAIT = 0.100
"""Seconds the second client may wait beyond its quiet latency (the issue's figure)."""
ALLOWED_SHARE = 0.15
"""The share of the heavy call's time the second client may wait when that is longer:
an API that holds its loop for the work makes it wait nearly all of it."""


def timed(client: Client) -> float:
    started = time.perf_counter()
    assert client(ME).data["me"]["role"] == "VIEWER"
    return time.perf_counter() - started


def extra_wait(pinger: Client, call: Callable[[], Reply]) -> tuple[float, float, Reply]:
    """(the worst latency of ``pinger`` while ``call`` runs minus its quiet median, the
    seconds ``call`` took, its reply). The quiet latency is measured first, here, on the
    same machine."""
    quiet = statistics.median(timed(pinger) for _ in range(20))
    during: list[float] = []
    done = threading.Event()

    def ping() -> None:
        while not done.is_set():
            during.append(timed(pinger))

    thread = threading.Thread(target=ping)
    thread.start()
    started = time.perf_counter()
    try:
        reply = call()
    finally:
        took = time.perf_counter() - started
        done.set()
        thread.join()
    return max(during) - quiet, took, reply


def assert_loop_stays_free(pinger: Client, call: Callable[[], Reply]) -> Reply:
    """On a busy 2-core machine shared with other work, one measurement may catch a
    pause that is not the API's (the test process, the database): the measurement is
    made once more before failing, and the bound is 100 ms or 15 % of the call."""
    for _ in range(2):
        waited, took, reply = extra_wait(pinger, call)
        allowed = max(ALLOWED_WAIT, ALLOWED_SHARE * took)
        print(f"the second client waited at worst {waited * 1000:.0f} ms longer, during a "
              f"call of {took * 1000:.0f} ms (allowed {allowed * 1000:.0f} ms)")
        if waited <= allowed:
            return reply
    raise AssertionError(f"the second client waited {waited * 1000:.0f} ms longer during a "
                         f"call of {took * 1000:.0f} ms (allowed {allowed * 1000:.0f} ms)")


def prepared(client: Client, query: str, **variables: Any) -> Callable[[], Reply]:
    """A call of ``client`` whose body is encoded now: encoding 14 MB in the test process
    while the second client is timed would pause that client's thread, not the API."""
    body = json.dumps({"query": query, "variables": variables}).encode()
    headers = {"Authorization": f"Bearer {client.key}", "Content-Type": "application/json"}

    def call() -> Reply:
        response = client.http.post(f"{client.url}/graphql", content=body, headers=headers)
        assert response.status_code == 200, response.text[:500]
        return Reply(response.json())

    return call


def viewer_pair(tenant: TenantHandle) -> tuple[Client, Client]:
    return tenant.key("VIEWER"), tenant.key("VIEWER")


def biggest_allowed_collection() -> str:
    """``MAX_REQUESTS`` requests (copies of a real collection) in just under ``MAX_BYTES``,
    the rest filled by the collection's description."""
    source = json.loads((SHARED / "fixtures" / "postman" / "transferwise-banks-flow.v2.1.json")
                        .read_text(encoding="utf-8"))
    per_copy = len(parse_collection(json.dumps(source)).requests)
    doc = {**source, "item": [{"name": "copy", "item": source["item"]}]
           * (MAX_REQUESTS // per_copy)}
    size = len(json.dumps(doc, indent="\t").encode())
    doc["info"] = {**doc["info"], "description": "lorem ipsum " * ((MAX_BYTES - size - 1000) // 12)}
    text = json.dumps(doc, indent="\t")
    assert MAX_BYTES - 2000 < len(text.encode()) <= MAX_BYTES
    return text


def test_a_schema_url_repeating_collection_does_not_hold_the_loop(tenant: TenantHandle) -> None:
    viewer, pinger = viewer_pair(tenant)
    schema = "https://schema.getpostman.com/" + "collection" * 10_000 + "/v2"
    collection = json.dumps({"info": {"name": "x", "schema": schema}, "item": []})
    reply = assert_loop_stays_free(pinger, prepared(viewer, REQUESTS, c=collection))
    assert reply.code == "BAD_USER_INPUT" and "unknown schema" in reply.error["message"]


def test_8000_requests_of_one_name_are_refused_without_holding_the_loop(
        tenant: TenantHandle) -> None:
    viewer, pinger = viewer_pair(tenant)
    ping = {"name": "Ping", "request": {"method": "GET", "url": "https://example.com/"}}
    collection = json.dumps({"info": {"name": "c", "schema": V21}, "item": [ping] * 8000})
    reply = assert_loop_stays_free(pinger, prepared(viewer, REQUESTS, c=collection))
    assert reply.code == "BAD_USER_INPUT" and reply.field == "collection"
    assert f"more than {MAX_REQUESTS} requests" in reply.error["message"]


def test_the_biggest_allowed_collection_is_read_without_holding_the_loop(
        tenant: TenantHandle) -> None:
    viewer, pinger = viewer_pair(tenant)
    collection = biggest_allowed_collection()
    reply = assert_loop_stays_free(pinger, prepared(viewer, REQUESTS, c=collection))
    assert len(reply.data["postmanRequests"]) > MAX_REQUESTS * 0.9


def test_importing_the_biggest_allowed_collection_does_not_hold_the_loop(
        tenant: TenantHandle) -> None:
    _, pinger = viewer_pair(tenant)
    collection = biggest_allowed_collection()
    reply = assert_loop_stays_free(pinger, prepared(tenant.admin, IMPORT, c=collection))
    result = reply.data["importPostmanCollection"]  # skipped: imported by a first try
    assert len(result["imported"]) + len(result["skipped"]) > MAX_REQUESTS * 0.9


def test_a_token_that_made_the_placeholder_pattern_backtrack_does_not_hold_the_loop(
        tenant: TenantHandle) -> None:
    _, pinger = viewer_pair(tenant)
    token = "{{a}}  " * 17 + "!"
    action: dict[str, Any] = {"name": "Hook", "url": "https://example.com/hook",
                              "authorization": {"type": "BEARER_TOKEN", "token": token}}
    reply = assert_loop_stays_free(pinger, prepared(tenant.admin, CREATE_ACTION, input=action))
    assert reply.data["createAction"]["id"]
