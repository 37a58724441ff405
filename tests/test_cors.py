"""Browser frontends on other origins (``EVENT_MANAGER_ALLOWED_ORIGINS``): a page served
by a second local origin (another port) runs a query and opens the live subscription,
in headless Chromium, as a PBX's own web UI would. Against an API that lists the page's
origin both work, preflight included; against one that does not (the default), the
browser refuses the query's answer and the API refuses the WebSocket handshake."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser
from pydantic import ValidationError

from event_manager.config import Settings, environment
from tests.conftest import TenantHandle
from tests.support import api_process, free_port
from tests.test_subscription import probe

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>PBX</title></head><body>
<script>
// What a frontend on another origin does: a query over HTTP with its key in the
// Authorization header (so the browser sends a preflight first), then the activity
// subscription over graphql-transport-ws, the key in connection_init.
const params = new URLSearchParams(location.search);
const api = params.get("api"), key = params.get("key");
window.outcome = {http: null, ws: null, row: null};
fetch(api + "/graphql", {
  method: "POST",
  headers: {"Content-Type": "application/json", "Authorization": "Bearer " + key},
  body: JSON.stringify({query: "{ settings { timezone } }"}),
}).then(r => r.json()).then(body => { window.outcome.http = body; })
  .catch(error => { window.outcome.http = {refused: String(error)}; });
const ws = new WebSocket(api.replace("http://", "ws://") + "/graphql", "graphql-transport-ws");
ws.onopen = () => ws.send(JSON.stringify(
  {type: "connection_init", payload: {Authorization: "Bearer " + key}}));
ws.onmessage = (event) => {
  const message = JSON.parse(event.data);
  if (message.type === "connection_ack") {
    window.outcome.ws = "ack";
    ws.send(JSON.stringify({id: "1", type: "subscribe",
      payload: {query: "subscription { activity { triggerId status } }"}}));
  } else if (message.type === "next" && !window.outcome.row) {
    window.outcome.row = message.payload.data.activity;
  }
};
ws.onclose = (event) => {
  if (window.outcome.ws !== "ack") window.outcome.ws = "closed " + event.code;
};
</script></body></html>"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """The frontend's origin: a second local HTTP server, on a port of its own."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass
class Listing:
    url: str
    """An API process whose ``EVENT_MANAGER_ALLOWED_ORIGINS`` lists the page's origin."""


@pytest.fixture(scope="module")
def listing(settings: Settings, page_origin: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listing]:
    """The session's installation (same database and Redis) served by a second API
    process that allows the page's origin, written as an operator might (upper case,
    with a trailing slash, next to another origin)."""
    own = settings.model_copy(update={
        "allowed_origins": f"https://pbx.example.com, {page_origin.upper()}/"})
    log = tmp_path_factory.mktemp("cors") / "api.log"
    with api_process({**os.environ, **environment(own)}, log) as (url, _):
        yield Listing(url)


def outcome(browser: Browser, page_origin: str, api: str, key: str,
            tenant: TenantHandle | None = None) -> dict[str, Any]:
    """Opens the page with ``api`` and ``key``; its outcome once the query and the
    WebSocket have each ended one way or the other (with ``tenant``: once a row of one
    of its triggers has also arrived on the subscription)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{page_origin}/?api={api}&key={key}")
        page.wait_for_function("window.outcome.http !== null && window.outcome.ws !== null",
                               timeout=20_000)
        if tenant is not None and page.evaluate("window.outcome.ws") == "ack":
            for _ in range(50):  # no "subscribed" acknowledgement: probe until one arrives
                probe(tenant)
                if page.evaluate("window.outcome.row") is not None:
                    break
                page.wait_for_timeout(200)
        return page.evaluate("window.outcome")
    finally:
        context.close()


def test_a_page_on_a_listed_origin_queries_and_subscribes(
        browser: Browser, page_origin: str, listing: Listing, tenant: TenantHandle) -> None:
    found = outcome(browser, page_origin, listing.url, tenant.admin.key, tenant)
    assert found["http"] == {"data": {"settings": {"timezone": "UTC"}}}
    assert found["ws"] == "ack"
    assert found["row"]["status"] == "SKIPPED"


def test_a_page_on_another_origin_is_refused_both(
        browser: Browser, page_origin: str, api_url: str, tenant: TenantHandle) -> None:
    """The session's API lists no origin (the default): the browser refuses the page the
    query's answer (no CORS header), and the API refuses the WebSocket handshake (403):
    the socket closes before it opens (1006)."""
    found = outcome(browser, page_origin, api_url, tenant.admin.key)
    assert "refused" in found["http"], found
    assert found["ws"] == "closed 1006"
    assert found["row"] is None


def test_the_preflight_is_answered_for_listed_origins_only(
        page_origin: str, listing: Listing, api_url: str) -> None:
    ask = {"Origin": page_origin, "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type, x-tenant"}
    allowed = httpx.options(f"{listing.url}/graphql", headers=ask)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == page_origin
    assert {h.strip().lower() for h in allowed.headers["access-control-allow-headers"]
            .split(",")} >= {"authorization", "content-type", "x-tenant"}
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert allowed.headers["access-control-max-age"] == "600"
    other = httpx.options(f"{listing.url}/graphql",
                          headers={**ask, "Origin": "http://127.0.0.1:1"})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    unlisted = httpx.options(f"{api_url}/graphql", headers=ask)
    assert unlisted.status_code == 400
    answer = httpx.post(f"{listing.url}/graphql", headers={"Origin": page_origin},
                        json={"query": "{ __typename }"})
    assert answer.headers["access-control-allow-origin"] == page_origin
    plain = httpx.post(f"{api_url}/graphql", json={"query": "{ __typename }"})
    assert plain.status_code == 200  # no Origin (a server, the PBX): CORS does not apply


def test_a_setting_that_is_not_an_origin_is_refused_naming_it() -> None:
    for bad in ("https://pbx.example.com/path", "pbx.example.com", "null"):
        with pytest.raises(ValidationError, match="allowed_origins") as error:
            Settings(allowed_origins=f"https://ok.example.com,{bad}")
        assert repr(bad) in str(error.value)
    assert Settings(allowed_origins=" HTTPS://Pbx.Example.com:443 ,,").origins == (
        "https://pbx.example.com",)
    assert Settings().origins == ()

