"""The admin console at ``/``, end to end in headless Chromium: the manual's pages, live.

Debian's chromium drives the console as a person would, through labels and roles, against
the real API process, worker and webhook receiver. Each page is saved as a PNG under
``.state/screenshots/`` (``EVENT_MANAGER_SCREENSHOTS`` to change it); the folder is
printed at the end of the run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from bson import ObjectId
from playwright.sync_api import Browser, Locator, Page, Route, expect

from tests.conftest import ROOT, SHARED, TenantHandle, make_tenant, wait_until
from tests.receiver import Receiver, Reply
from tests.tls import PrivateCA

pytestmark = pytest.mark.browser

CARDS = SHARED / "fixtures" / "postman" / "transferwise-cards-api.v2.1.json"
ROWS = "#activity-table tbody tr"
expect.set_options(timeout=15_000)
"""Assertions wait as long as actions do (``page.set_default_timeout``): on a slow, busy
machine a page refreshed after importing 42 actions took more than Playwright's 5 s."""
SCHEMA_V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"


# --- fixtures ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def shots(request: pytest.FixtureRequest) -> Iterator[Path]:
    """The folder of this run's screenshots, emptied first and printed at the end."""
    folder = Path(os.environ.get("EVENT_MANAGER_SCREENSHOTS") or ROOT / ".state" / "screenshots")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write("\n")
            count = len(list(folder.glob("*.png")))
            reporter.write_line(f"console screenshots ({count}): {folder}")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab; the test fails on any uncaught script error in the console."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and "status of 4" not in m.text else None)
    yield page
    context.close()
    assert not errors, f"script errors in the console: {errors}"


def sign_in(page: Page, api_url: str, key: str) -> None:
    page.goto(f"{api_url}/")
    page.get_by_label("API key").fill(key)
    page.get_by_label("API key").press("Enter")
    expect(page.get_by_role("navigation", name="Sections")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Event List")


def sign_in_anywhere(page: Page, api_url: str, key: str) -> None:
    """Signs in without waiting for the Event List: the first page may be refused."""
    page.goto(f"{api_url}/")
    page.get_by_label("API key").fill(key)
    page.get_by_label("API key").press("Enter")
    expect(page.get_by_role("navigation", name="Sections")).to_be_visible()


def go(page: Page, section: str, heading: str | re.Pattern[str]) -> None:
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=section,
                                                                 exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)


def snap(page: Page, shots: Path, name: str) -> None:
    """The whole page as a PNG: the window is made as tall as the page for the shot, so
    that sticky bars and dialogs stand where a person sees them."""
    page.wait_for_timeout(150)  # let a toast or a dialog finish appearing
    size = page.viewport_size or {"width": 1360, "height": 900}
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    page.screenshot(path=shots / f"{name}.png")
    page.set_viewport_size(size)


def graphql_posts(page: Page) -> list[str]:
    """Bodies of the GraphQL requests the page sends over HTTP, as they happen."""
    bodies: list[str] = []
    page.on("request", lambda r: bodies.append(r.post_data or "")
            if r.method == "POST" and r.url.endswith("/graphql") else None)
    return bodies


def attach(tenant: TenantHandle, url: str, event: str = "ANSWERED_CALL") -> str:
    """An action posting to ``url``, attached to an active ``event``; its id."""
    action = tenant.admin("""mutation($i: ActionInput!) { createAction(input: $i) { id } }""",
                          i={"name": f"hook {event}", "url": url}).data["createAction"]["id"]
    tenant.admin("""mutation($t: EventType!, $ids: [ID!]) {
        updateEvent(type: $t, input: {active: true, actionIds: $ids}) { type } }""",
                 t=event, ids=[action]).data
    return action


# --- serving ---------------------------------------------------------------------------

def test_console_is_served_at_root_and_graphiql_stays_on_get_graphql(api_url: str) -> None:
    page = httpx.get(f"{api_url}/")
    assert page.status_code == 200
    assert '<script type="module" src="/console/app.js">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = httpx.get(f"{api_url}/console/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert httpx.get(f"{api_url}/console/pages/action-editor.js").status_code == 200
    assert httpx.get(f"{api_url}/console/../../config.py").status_code == 404
    graphiql = httpx.get(f"{api_url}/graphql", headers={"Accept": "text/html"})
    assert graphiql.status_code == 200
    assert "graphiql" in graphiql.text.lower()
    assert "unpkg.com" not in graphiql.text and "script-src 'self'" in \
        graphiql.headers["content-security-policy"]
    vendored = httpx.get(f"{api_url}/graphql/assets/graphiql-3.8.3.min.js")
    assert vendored.status_code == 200
    assert vendored.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert httpx.get(f"{api_url}/graphql/assets/start.js").headers["cache-control"] == "no-cache"


def offline(page: Page) -> list[str]:
    """Every request for a host other than 127.0.0.1 fails, as on an operator's network
    without internet; the URLs that were asked for."""
    elsewhere: list[str] = []

    def only_here(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", only_here)
    page.on("websocket", lambda socket: elsewhere.append(socket.url)
            if urlsplit(socket.url).hostname != "127.0.0.1" else None)
    return elsewhere


def type_into(page: Page, editor: str, text: str) -> None:
    """Replace the text of one of GraphiQL's editors, as pasting it would."""
    page.locator(f"{editor} .CodeMirror").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)


def test_graphiql_loads_and_runs_a_query_and_a_subscription_with_no_internet(
        page: Page, api_url: str, tenant: TenantHandle, receiver: Receiver,
        shots: Path) -> None:
    attach(tenant, f"{receiver.url}/console/{tenant.code}/graphiql")
    elsewhere = offline(page)
    page.goto(f"{api_url}/graphql")
    run = page.get_by_role("button", name="Execute query (Ctrl-Enter)")
    expect(run).to_be_visible()

    # The README's way: the key under Headers, then a query.
    page.get_by_role("button", name="Headers").click()
    type_into(page, ".graphiql-editor-tool .graphiql-editor:not(.hidden)",
              json.dumps({"Authorization": f"Bearer {tenant.admin.key}"}))
    type_into(page, ".graphiql-query-editor", "{ settings { timezone } }")
    run.click()
    response = page.locator(".graphiql-response")
    expect(response).to_contain_text('"timezone": "UTC"')
    snap(page, shots, "25-graphiql-offline")

    # The README's live rows: the key goes in the WebSocket's connection_init.
    type_into(page, ".graphiql-query-editor",
              "subscription { activity { actionName status } }")
    # GraphiQL reads the operation's kind (WebSocket or POST) 100 ms after an edit.
    wait_until(lambda: page.evaluate(
        "document.querySelector('.graphiql-query-editor .CodeMirror')"
        ".CodeMirror.documentAST?.definitions[0].operation") == "subscription")
    run.click()
    expect(page.get_by_role("button", name="Stop query (Ctrl-Enter)")).to_be_visible()
    tenant.admin("mutation { testEvent(event: ANSWERED_CALL) { triggerId } }").data
    expect(response).to_contain_text('"actionName": "hook ANSWERED_CALL"')
    assert elsewhere == [], f"GraphiQL asked another host: {elsewhere}"


# --- the manual's scenario -------------------------------------------------------------

def test_manual_scenario_action_on_answered_call_turns_succeeded_live(
        page: Page, api_url: str, tenant: TenantHandle, worker: Path, receiver: Receiver,
        shots: Path) -> None:
    path = f"/console/{tenant.code}/crm"
    page.goto(f"{api_url}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    snap(page, shots, "01-sign-in")
    sign_in(page, api_url, tenant.admin.key or "")

    # Event List: five events, inactive, and actions globally disabled.
    events = page.locator("#events-table tbody tr")
    expect(events).to_have_count(5)
    expect(page.get_by_text("Actions are disabled for all events.")).to_be_visible()
    snap(page, shots, "02-events")

    # Actions → Add Action: POST to the receiver, raw JSON body, bearer token, a header.
    go(page, "Actions", "Actions")
    page.get_by_role("link", name="Add Action").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add Action")
    page.get_by_label("Name", exact=True).fill("CRM answered")
    page.get_by_label("Description").fill("Posts answered calls to the CRM")
    page.get_by_label("HTTP Method").select_option("POST")
    page.get_by_label("URL", exact=True).fill(f"{receiver.url}{path}?caller={{{{caller_id}}}}")
    page.get_by_role("button", name="Add query parameter").click()
    page.get_by_label("Query parameter 1 key").fill("source")
    page.get_by_label("Query parameter 1 value").fill("pbx")
    page.get_by_text("raw", exact=True).click()
    page.get_by_label("Content type").fill("application/json")
    page.get_by_label("Body", exact=True).fill('{"caller": "{{caller_id}}", "team": "{{team}}"}')
    page.get_by_label("Type", exact=True).select_option("BEARER_TOKEN")
    page.get_by_label("Token").fill("crm-secret")
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header 1 key").fill("X-Source")
    page.get_by_label("Header 1 value").fill("pbx")
    snap(page, shots, "04-action-editor")
    page.get_by_label("Name", exact=True).press("Enter")  # Enter submits

    # Saved: the editor shows the undefined-parameters banner; add {{team}} from it.
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit action: CRM answered")
    banner = page.get_by_role("region", name="Undefined parameters")
    expect(banner).to_contain_text("{{team}}")
    snap(page, shots, "05-action-undefined-banner")
    banner.get_by_role("button", name="Add parameter team").click()
    dialog = page.get_by_role("dialog", name="Add parameter")
    expect(dialog.get_by_label("Tag")).to_have_value("team")
    expect(dialog.get_by_label("Data")).to_be_focused()
    dialog.get_by_label("Data").fill("support")
    snap(page, shots, "06-add-parameter-from-banner")
    dialog.get_by_label("Data").press("Enter")
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("region", name="Undefined parameters")).to_have_count(0)
    parameters = tenant.admin("{ parameters { tag value system } }").data["parameters"]
    assert {"tag": "team", "value": "support", "system": False} in parameters
    action = tenant.admin("{ actions { id name undefinedParameters } }").data["actions"][0]
    assert action["name"] == "CRM answered" and action["undefinedParameters"] == []

    # Event List → Answered Call: attach the action, make it active. Still grayed.
    go(page, "Event List", "Event List")
    page.get_by_role("link", name="Answered Call", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit event: Answered Call")
    page.get_by_label("CRM answered").check()
    page.get_by_role("switch", name="Active").check()
    snap(page, shots, "07-event-editor")
    page.get_by_role("switch", name="Active").press("Enter")  # Enter saves here too
    expect(page.get_by_role("heading", level=1)).to_have_text("Event List")
    answered = page.locator('#events-table tr[data-event="ANSWERED_CALL"]')
    expect(answered).to_contain_text("CRM answered")
    expect(answered.locator(".col-active")).to_have_text("Yes")
    expect(answered).to_have_attribute("data-effective", "false")
    expect(answered.locator(".badge.grayed")).to_have_count(1)

    # Settings: enable actions for all events; Answered Call is no longer grayed.
    go(page, "Settings", "Settings")
    page.get_by_role("switch", name="Actions enabled for all events").check()
    expect(page.get_by_label("Time zone")).to_have_value("UTC")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Settings saved")).to_be_visible()
    snap(page, shots, "08-settings")
    go(page, "Event List", "Event List")
    expect(answered).to_have_attribute("data-effective", "true")
    expect(page.get_by_text("Actions are disabled for all events.")).to_have_count(0)
    snap(page, shots, "03-events-active")

    # Activity Monitor: Test, and the row turns SUCCEEDED without a reload.
    go(page, "Activity Monitor", "Activity Monitor")
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    expect(page.locator(ROWS)).to_have_count(0)
    page.evaluate("window.sameDocument = true")
    posts = graphql_posts(page)
    page.get_by_role("button", name="Test Answered Call").click()
    dialog = page.get_by_role("dialog", name="Test Answered Call")
    expect(dialog.get_by_label("CRM answered")).to_be_checked()
    snap(page, shots, "09-test-dialog")
    dialog.get_by_role("button", name="Send test").click()
    row = page.locator(ROWS).first
    expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=30_000)
    expect(row).to_contain_text("TEST")
    expect(row).to_contain_text("CRM answered")
    sent = receiver.wait_for(path)[0]
    assert sent.query == "caller=%2B15550100&source=pbx"
    assert json.loads(sent.body) == {"caller": "+15550100", "team": "support"}
    assert sent.header("Authorization") == "Bearer crm-secret"
    assert sent.header("X-Source") == "pbx"

    # The PBX reports a call: its row arrives over the subscription alone and changes there.
    tenant.admin("""mutation { triggerEvent(input: {event: ANSWERED_CALL,
        params: {caller_id: "+38761111222", duration: 42}}) { accepted } }""").data
    system_row = page.locator(ROWS).filter(has_text="SYSTEM")
    expect(system_row).to_have_attribute("data-status", "SUCCEEDED", timeout=30_000)
    expect(page.locator(ROWS)).to_have_count(2)
    assert page.evaluate("window.sameDocument") is True
    assert not [body for body in posts if "activity(filter" in body], "the list was re-queried"
    snap(page, shots, "10-activity-monitor")

    # The row's detail: request summary, attempts, response, unresolved parameters.
    system_row.get_by_role("button", name=re.compile("^Details")).click()
    detail = page.get_by_role("dialog", name="Delivery")
    expect(detail).to_contain_text("SUCCEEDED")
    expect(detail).to_contain_text(f"{receiver.url}{path}?caller=%2B38761111222&source=pbx")
    expect(detail).to_contain_text("X-Source")
    expect(detail.locator("pre.response-body")).to_have_text("ok")
    snap(page, shots, "11-activity-detail")
    page.keyboard.press("Escape")  # Escape closes dialogs
    expect(detail).to_have_count(0)


def test_failed_delivery_is_retried_from_the_activity_monitor(
        page: Page, api_url: str, tenant: TenantHandle, worker: Path, receiver: Receiver,
        shots: Path) -> None:
    path = f"/console/{tenant.code}/flaky"
    receiver.script(path, Reply(404, "no such customer"))  # 404 is final: FAILED at once
    attach(tenant, f"{receiver.url}{path}?ticket={{{{ticket}}}}")
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Activity Monitor", "Activity Monitor")
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    page.get_by_role("button", name="Test Answered Call").click()
    page.get_by_role("dialog", name="Test Answered Call").get_by_role(
        "button", name="Send test").click()
    row = page.locator(ROWS).first
    expect(row).to_have_attribute("data-status", "FAILED", timeout=30_000)
    expect(row).to_contain_text("404")
    row.get_by_role("button", name=re.compile("^Details")).click()
    detail = page.get_by_role("dialog", name="Delivery")
    expect(detail.locator("pre.response-body")).to_have_text("no such customer")
    expect(detail).to_contain_text(f"{path}?ticket=%7B%7Bticket%7D%7D")  # sent as written
    snap(page, shots, "12-activity-failed-detail")
    # An unresolved placeholder is one click from being a parameter.
    detail.get_by_role("button", name="{{ticket}}").click()
    add = page.get_by_role("dialog", name="Add parameter")
    add.get_by_label("Data").fill("T-1")
    add.get_by_label("Data").press("Enter")
    expect(add).to_have_count(0)
    assert {"tag": "ticket", "value": "T-1"} in tenant.admin(
        "{ parameters { tag value } }").data["parameters"]
    detail.get_by_role("button", name="Retry").click()
    expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=30_000)
    expect(detail).to_contain_text("SUCCEEDED")
    assert len(receiver.received(path)) == 2
    assert receiver.received(path)[1].query == "ticket=T-1"  # the retry renders anew


def test_activity_monitor_says_the_time_zone_of_every_time_it_shows(
        page: Page, api_url: str, tenant: TenantHandle, worker: Path,
        receiver: Receiver) -> None:
    """The tenant's zone, far from UTC: the Time column and the details name it, and the
    row's message tells the retry in it too, naming it the same way."""
    tenant.admin('mutation { updateSettings(input: {timezone: "Asia/Tokyo"}) { timezone } }').data
    path = f"/console/{tenant.code}/busy"
    receiver.script(path, Reply(503, headers={"Retry-After": "60"}))
    attach(tenant, f"{receiver.url}{path}")
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Activity Monitor", "Activity Monitor")
    expect(page.locator("#activity-table thead")).to_contain_text("Time (Asia/Tokyo)")
    page.get_by_role("button", name="Test Answered Call").click()
    page.get_by_role("dialog", name="Test Answered Call").get_by_role(
        "button", name="Send test").click()
    row = page.locator(ROWS).first
    expect(row).to_have_attribute("data-status", "RETRYING", timeout=30_000)
    expect(row).to_contain_text(re.compile(
        r"503 Service Unavailable, retry 1 of \d+ at \d\d:\d\d:\d\d \(Asia/Tokyo\)"))
    shown = datetime.fromisoformat(row.locator("td").first.inner_text().strip())
    assert abs((shown.replace(tzinfo=ZoneInfo("Asia/Tokyo")) - datetime.now(UTC))
               .total_seconds()) < 120  # the row's time, in Tokyo
    row.get_by_role("button", name=re.compile("^Details")).click()
    detail = page.get_by_role("dialog", name="Delivery")
    expect(detail).to_contain_text("Created (Asia/Tokyo)")
    expect(detail).to_contain_text("Updated (Asia/Tokyo)")


def test_filters_narrow_the_activity_list_and_live_rows(
        page: Page, api_url: str, tenant: TenantHandle, worker: Path, receiver: Receiver) -> None:
    attach(tenant, f"{receiver.url}/console/{tenant.code}/filters")
    tenant.admin("mutation { testEvent(event: RINGING) { triggerId } }").data  # SKIPPED
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Activity Monitor", "Activity Monitor")
    expect(page.locator(ROWS)).to_have_count(1)
    page.get_by_label("Status", exact=True).select_option("SUCCEEDED")
    expect(page.locator(ROWS)).to_have_count(0)
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    tenant.admin("mutation { testEvent(event: ANSWERED_CALL) { triggerId } }").data
    expect(page.locator(ROWS)).to_have_count(1, timeout=30_000)
    expect(page.locator(ROWS).first).to_have_attribute("data-status", "SUCCEEDED")
    page.get_by_label("Status", exact=True).select_option("")
    page.get_by_label("Event", exact=True).select_option("RINGING")
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.locator(ROWS).first).to_have_attribute("data-status", "SKIPPED")
    page.get_by_label("Event", exact=True).select_option("")
    page.get_by_label("Search", exact=True).fill("hook")
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.locator(ROWS).first).to_contain_text("hook ANSWERED_CALL")
    page.get_by_label("Search", exact=True).fill("")
    page.get_by_label("Source", exact=True).select_option("TEST")
    expect(page.locator(ROWS)).to_have_count(2)


def test_details_name_the_call_parameters_sent_empty_and_a_test_sends_none(
        page: Page, api_url: str, tenant: TenantHandle, worker: Path, receiver: Receiver,
        shots: Path) -> None:
    """An Incoming Call without call_id and duration: its details say "Sent empty:
    call_id, duration". The Test dialog fills every system parameter of the call."""
    path = f"/console/{tenant.code}/empty"
    tags = [p["tag"] for p in tenant.admin("{ parameters { tag system } }").data["parameters"]
            if p["system"] and p["tag"] not in ("date", "time", "unix_time", "tenant")]
    attach(tenant, f"{receiver.url}{path}?" + "&".join(f"{t}={{{{{t}}}}}" for t in tags),
           event="INCOMING_CALL")
    tenant.admin("mutation { updateSettings(input: {actionsEnabled: true}) "
                 "{ actionsEnabled } }").data
    tenant.admin('mutation { triggerEvent(input: {event: INCOMING_CALL, params: '
                 '{caller_id: "+381", called_number: "200", calling_name: "A", call_cost: 0, '
                 'call_rating_duration: 0, direction: "inbound", extension: "200"}}) '
                 '{ accepted } }').data
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Activity Monitor", "Activity Monitor")
    row = page.locator(ROWS).filter(has_text="SYSTEM")
    expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=30_000)
    row.get_by_role("button", name=re.compile("^Details")).click()
    detail = page.get_by_role("dialog", name="Delivery")
    expect(detail.get_by_text("Sent empty: call_id, duration")).to_be_visible()
    snap(page, shots, "12b-activity-sent-empty")
    page.keyboard.press("Escape")

    page.get_by_role("button", name="Test Incoming Call").click()
    dialog = page.get_by_role("dialog", name="Test Incoming Call")
    keys = dialog.locator(".kv-key")
    expect(keys).to_have_count(len(tags))
    assert sorted(keys.evaluate_all("inputs => inputs.map(i => i.value)")) == sorted(tags)
    dialog.get_by_role("button", name="Send test").click()
    test_row = page.locator(ROWS).filter(has_text="TEST")
    expect(test_row).to_have_attribute("data-status", "SUCCEEDED", timeout=30_000)
    test_row.get_by_role("button", name=re.compile("^Details")).click()
    expect(detail).to_contain_text("Unresolved parameters")
    expect(detail.get_by_text("Sent empty")).to_have_count(0)
    sent = receiver.wait_for(path, 2)[1]
    assert all(value for _, value in parse_qsl(sent.query, keep_blank_values=True)), sent.query


# --- actions: errors, imports ------------------------------------------------------------

def test_dashboard_draws_the_deliveries_and_follows_them_live(
        page: Page, api_url: str, tenant: TenantHandle, worker: Path, receiver: Receiver,
        shots: Path) -> None:
    """Dashboard: the totals, both charts and the worst actions; a delivery that ends
    while it is open shows without a reload (activityStats asked again)."""
    path = f"/console/{tenant.code}/down"
    receiver.script(path, *[Reply(404)] * 2)  # 404 is final: FAILED at once
    attach(tenant, f"{receiver.url}{path}")
    send = "mutation { testEvent(event: ANSWERED_CALL) { triggerId } }"
    tenant.admin(send).data
    wait_until(lambda: tenant.collection("activity").find_one({"status": "FAILED"}), 30,
               "the first failure")
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Dashboard", "Dashboard")
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    expect(page.get_by_role("img", name="Deliveries over time by status")).to_be_visible()
    expect(page.get_by_role("img", name="Latency p50 and p95")).to_be_visible()
    worst = page.locator("#dashboard-actions tbody tr").first
    expect(worst).to_contain_text("hook ANSWERED_CALL")
    expect(worst.locator("td").nth(1)).to_have_text("1", timeout=30_000)
    expect(page.locator(".chart rect.bar-failed").first).to_be_visible()
    tenant.admin(send).data
    expect(worst.locator("td").nth(1)).to_have_text("2", timeout=30_000)
    expect(page.locator(".stat-failed strong")).to_have_text("2")
    snap(page, shots, "24-dashboard")


def test_api_errors_are_shown_next_to_the_field_they_name(
        page: Page, api_url: str, tenant: TenantHandle, shots: Path) -> None:
    sign_in(page, api_url, tenant.admin.key or "")
    page.goto(f"{api_url}/#/actions/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("Add Action")
    page.get_by_label("Name", exact=True).fill("Bad header")
    page.get_by_label("URL", exact=True).fill("https://crm.example.com/calls")
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header 1 key").fill("Accept")
    page.get_by_label("Header 1 value").fill("application/json")
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header 2 key").fill("Bad Header")
    page.get_by_role("button", name="Create action").click()
    key = page.get_by_label("Header 2 key")
    expect(key).to_have_attribute("aria-invalid", "true")
    expect(key).to_be_focused()
    error = page.locator(".kv-row:has([aria-invalid]) + .field-error")
    expect(error).to_have_text(re.compile("'Bad Header' is not a valid header name"))
    snap(page, shots, "13-action-field-error")
    key.fill("X-Good")
    page.get_by_label("URL", exact=True).fill("ftp://crm.example.com")
    page.get_by_label("URL", exact=True).press("Enter")
    url = page.get_by_label("URL", exact=True)
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field:has([aria-invalid]) + .field-error, "
                        ".field:has([aria-invalid]) .field-error")).to_contain_text("http://")
    expect(page.locator(".field-error")).to_have_count(1)
    assert tenant.admin("{ actions { id } }").data["actions"] == []


def test_postman_collection_import_of_two_requests(
        page: Page, api_url: str, tenant: TenantHandle, shots: Path) -> None:
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Actions", "Actions")
    page.get_by_role("button", name="Import Postman Collection").click()
    dialog = page.get_by_role("dialog", name="Import Postman Collection")
    dialog.get_by_label("Collection file").set_input_files(CARDS)
    expect(dialog).to_contain_text("Wise Cards API")
    expect(dialog.locator(".check-list li")).to_have_count(42)
    import_button = dialog.get_by_role("button", name="Import", exact=True)
    expect(import_button).to_be_disabled()
    dialog.get_by_label("Get cards", exact=False).first.check()
    dialog.get_by_label("Get a card order").check()
    expect(dialog).to_contain_text("2 selected")
    snap(page, shots, "14-import-postman-pick")
    import_button.click()
    expect(dialog.get_by_role("status")).to_have_text(
        "2 imported, 0 skipped, 0 renamed, 0 with errors")
    snap(page, shots, "15-import-postman-result")
    dialog.get_by_role("button", name="Done").click()
    rows = page.locator("#actions-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("undefined")
    names = sorted(a["name"] for a in tenant.admin("{ actions { name } }").data["actions"])
    assert names == ["3. Card Management / Get cards", "2. Card Issuance / Get a card order"][::-1]
    snap(page, shots, "16-actions-list")
    page.get_by_label("Search").fill("get cards")
    expect(rows).to_have_count(1)
    page.get_by_label("Search").fill("")
    expect(rows).to_have_count(2)

    # Select all, the second time, with RENAME: every request comes in, two renamed.
    page.get_by_role("button", name="Import Postman Collection").click()
    dialog = page.get_by_role("dialog", name="Import Postman Collection")
    dialog.get_by_label("Collection file").set_input_files(CARDS)
    dialog.get_by_label("Select all Actions").check()
    expect(dialog).to_contain_text("42 selected")
    dialog.get_by_label("Rename").check()
    dialog.get_by_role("button", name="Import", exact=True).click()
    expect(dialog.get_by_role("status")).to_have_text(
        "42 imported, 0 skipped, 2 renamed, 0 with errors")
    page.keyboard.press("Escape")
    expect(rows).to_have_count(44)


def test_postman_variables_become_parameters_in_one_click(
        page: Page, api_url: str, tenant: TenantHandle, shots: Path, tmp_path: Path) -> None:
    file = tmp_path / "crm.postman_collection.json"
    file.write_text(json.dumps({
        "info": {"name": "CRM hooks", "schema": SCHEMA_V21},
        "variable": [{"key": "crm_host", "value": "https://crm.example.com"},
                     {"key": "crm_team", "value": "support"}],
        "item": [
            {"name": "Log call", "request": {
                "method": "POST", "url": "{{crm_host}}/calls",
                "body": {"mode": "raw", "raw": '{"team": "{{crm_team}}"}'}}},
            {"name": "Ping", "request": {"method": "HEAD", "url": "{{crm_host}}/ping"}},
            {"name": "Upload", "request": {"method": "PUT", "url": "ftp://crm.example.com/"}},
        ],
    }))
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Actions", "Actions")
    page.get_by_role("button", name="Import Postman Collection").click()
    dialog = page.get_by_role("dialog", name="Import Postman Collection")
    dialog.get_by_label("Collection file").set_input_files(file)
    ping = dialog.get_by_role("checkbox", name=re.compile("^Ping"))
    expect(ping).to_be_disabled()  # HEAD is not a method an action sends
    expect(dialog).to_contain_text("method HEAD is not supported")
    upload = dialog.get_by_role("checkbox", name=re.compile("^Upload"))
    expect(upload).to_be_disabled()  # the import refuses an ftp:// URL: shown before it
    expect(dialog).to_contain_text("url must start with http:// or https://")
    dialog.get_by_label("Select all Actions").check()
    expect(dialog).to_contain_text("1 selected")
    dialog.get_by_role("button", name="Import", exact=True).click()
    expect(dialog.get_by_role("status")).to_have_text(
        "1 imported, 0 skipped, 0 renamed, 0 with errors")
    expect(dialog).to_contain_text("{{crm_host}}")
    dialog.get_by_role("button", name="Add as parameters").click()
    expect(dialog.locator(".outcome.ok")).to_have_count(2)
    snap(page, shots, "17-import-postman-variables")
    dialog.get_by_role("button", name="Done").click()
    parameters = {p["tag"]: p["value"] for p in
                  tenant.admin("{ parameters { tag value } }").data["parameters"]}
    assert parameters["crm_host"] == "https://crm.example.com"
    assert parameters["crm_team"] == "support"
    action = tenant.admin("{ actions { undefinedParameters } }").data["actions"][0]
    assert action["undefinedParameters"] == []


def test_import_actions_from_the_master_tenant(
        page: Page, api_url: str, tenant: TenantHandle, master: TenantHandle,
        shots: Path) -> None:
    name = f"Master hook {tenant.code}"
    master.admin("""mutation($i: ActionInput!) { createAction(input: $i) { id } }""",
                 i={"name": name, "url": "https://hooks.example.com/{{call_id}}",
                    "description": "Offered to every tenant"}).data
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Actions", "Actions")
    page.get_by_role("button", name="Import Actions").click()
    dialog = page.get_by_role("dialog", name="Import Actions")
    dialog.get_by_label(name).check()
    snap(page, shots, "18-import-master-pick")
    dialog.get_by_role("button", name="Import", exact=True).click()
    expect(dialog.get_by_role("status")).to_contain_text("1 imported")
    dialog.get_by_role("button", name="Done").click()
    expect(page.locator("#actions-table tbody tr")).to_have_count(1)
    notes = cells(page, "#actions-table", page.locator("#actions-table tbody tr"), "Notes")[0]
    expect(notes).to_have_text("Copied from Master")


def test_action_editor_keeps_secrets_and_deletes(
        page: Page, api_url: str, tenant: TenantHandle, shots: Path) -> None:
    created = tenant.admin("""mutation($i: ActionInput!) { createAction(input: $i) { id } }""", i={
        "name": "Signed", "url": "https://crm.example.com/x", "bodyType": "FORM_DATA",
        "bodyFields": [{"key": "caller", "value": "{{caller_id}}"}],
        "authorization": {"type": "BASIC_AUTH", "username": "pbx", "password": "hunter2"},
        "signingSecret": "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
        "policy": {"order": "PER_CALL", "expireAfterSeconds": 30}}).data["createAction"]
    sign_in(page, api_url, tenant.admin.key or "")
    page.goto(f"{api_url}/#/actions/{created['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit action: Signed")
    expect(page.get_by_label("Field 1 value")).to_have_value("{{caller_id}}")
    expect(page.get_by_label("Username")).to_have_value("pbx")
    expect(page.get_by_label("Password")).to_have_value("")  # write-only: kept unless typed
    expect(page.get_by_role("switch", name="Sign requests (Standard Webhooks)")).to_be_checked()
    page.get_by_label("Timeout (seconds)").fill("2.5")
    expect(page.get_by_label("Order")).to_have_value("PER_CALL")
    expect(page.get_by_label("Expire after (seconds)")).to_have_value("30")
    page.get_by_label("Expire after (seconds)").fill("0")
    page.get_by_role("button", name="Save").click()  # refused, naming the field
    expect(page.locator("form")).to_contain_text("expireAfterSeconds must be between 1 and")
    page.get_by_label("Expire after (seconds)").fill("45")
    page.get_by_label("Receiver's limit (requests/s)").fill("10")
    snap(page, shots, "19-action-editor-existing")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Signed saved")).to_be_visible()
    stored = tenant.collection("actions").find_one({"name": "Signed"})
    assert tenant.vault.open(stored["auth"]["password"]) == "hunter2"
    assert stored["signing_secret"] and stored["timeout_seconds"] == 2.5
    assert stored["policy"]["order"] == "PER_CALL"
    assert stored["policy"]["expire_after_seconds"] == 45
    assert stored["policy"]["max_requests_per_second"] == 10
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog", name="Delete action").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Actions")
    assert tenant.admin("{ actions { id } }").data["actions"] == []


def test_action_editor_trusts_a_private_ca(page: Page, api_url: str,
                                           tenant: TenantHandle) -> None:
    """The Delivery section's CA certificate: a paste that is not a certificate is
    refused at its field; a CA's PEM is saved and shown again; emptied, it is removed."""
    ca = PrivateCA("Console test CA")
    made = tenant.admin("""mutation($i: ActionInput!) { createAction(input: $i) { id } }""",
                        i={"name": "Internal", "url": "https://crm.internal/x"}).data
    sign_in(page, api_url, tenant.admin.key or "")
    page.goto(f"{api_url}/#/actions/{made['createAction']['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit action: Internal")
    page.get_by_label("CA certificate").fill("my CA, trust me")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("form")).to_contain_text("caCertificate is not a PEM certificate")
    page.get_by_label("CA certificate").fill(ca.pem)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Internal saved")).to_be_visible()
    assert tenant.collection("actions").find_one({"name": "Internal"})["ca_certificate"] == ca.pem
    page.reload()
    expect(page.get_by_label("CA certificate")).to_have_value(ca.pem)
    page.get_by_label("CA certificate").fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Internal saved")).to_be_visible()
    assert tenant.collection("actions").find_one({"name": "Internal"})["ca_certificate"] is None


def test_actions_page_shows_each_state_and_turns_an_action_off_and_on(
        page: Page, api_url: str, tenant: TenantHandle, shots: Path) -> None:
    action = attach(tenant, "https://crm.example.com/hook")
    tenant.collection("health").insert_one({
        "_id": ObjectId(action), "failures": 3, "paused_until": datetime.now(UTC),
        "paused_reason": "20 attempts in a row failed (last: connection refused); its "
                         "deliveries wait while one of them tries the endpoint"})
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Actions", "Actions")
    row = page.locator("#actions-table tbody tr", has_text="hook ANSWERED_CALL")
    expect(row).to_contain_text("Enabled")
    expect(row).to_contain_text("3 failed in a row")
    expect(row).to_contain_text("Paused: 20 attempts in a row failed (last: connection refused)")
    page.get_by_role("button", name="Disable hook ANSWERED_CALL").click()
    toast = page.get_by_role("status").filter(has_text="hook ANSWERED_CALL disabled")
    expect(toast).to_be_visible()
    expect(row).to_contain_text("Disabled")
    expect(row).to_contain_text("disabled by admin")
    snap(page, shots, "23-actions-disabled")
    state = tenant.admin("{ actions { health { state disabledReason } } }").data["actions"]
    assert state == [{"health": {"state": "DISABLED", "disabledReason": "disabled by admin"}}]
    page.get_by_role("button", name="Enable hook ANSWERED_CALL").click()
    expect(row).to_contain_text("Enabled")
    expect(row).not_to_contain_text("failed in a row")  # the streak forgotten
    expect(row).not_to_contain_text("Paused")  # and the pause
    assert tenant.admin("{ actions { health { state } } }").data["actions"] == [
        {"health": {"state": "ENABLED"}}]


# --- parameters, keys, tenants -------------------------------------------------------------

def test_parameters_system_read_only_custom_add_edit_delete_search(
        page: Page, api_url: str, tenant: TenantHandle, shots: Path) -> None:
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Parameters", "Parameters")
    system = page.locator('#parameters-table tr[data-system="true"]')
    expect(system).to_have_count(13)
    expect(system.locator("svg.icon-cog")).to_have_count(13)
    expect(system.get_by_role("button")).to_have_count(0)

    # Keyboard only: the dialog opens focused on Tag, Tab moves on, Enter adds.
    page.get_by_role("button", name="Add Parameter").click()
    dialog = page.get_by_role("dialog", name="Add parameter")
    expect(dialog.get_by_label("Tag")).to_be_focused()
    page.keyboard.type("crm_token")
    page.keyboard.press("Tab")
    expect(dialog.get_by_label("Data")).to_be_focused()
    page.keyboard.type("s3cret-value")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # Secret
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    row = page.locator('#parameters-table tr[data-tag="crm_token"]')
    expect(row).to_contain_text("********")
    page.get_by_role("button", name="Add Parameter").click()
    dialog = page.get_by_role("dialog", name="Add parameter")
    dialog.get_by_label("Tag").fill("team")
    dialog.get_by_label("Data").fill("support")
    dialog.get_by_label("Data").press("Enter")
    expect(page.locator('#parameters-table tr[data-tag="team"]')).to_contain_text("support")

    # The API's refusal stands next to Tag; Escape closes the dialog.
    page.get_by_role("button", name="Add Parameter").click()
    dialog = page.get_by_role("dialog", name="Add parameter")
    dialog.get_by_label("Tag").fill("caller_id")
    dialog.get_by_label("Data").fill("x")
    dialog.get_by_role("button", name="Add parameter").click()
    expect(dialog.locator(".field-error")).to_contain_text("system parameter")
    expect(dialog.get_by_label("Tag")).to_have_attribute("aria-invalid", "true")
    snap(page, shots, "20-parameter-error")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    snap(page, shots, "21-parameters")

    # Edit, search by tag or data, delete.
    page.get_by_role("button", name="Edit team").click()
    dialog = page.get_by_role("dialog", name="Edit parameter team")
    dialog.get_by_label("Data").fill("sales")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator('#parameters-table tr[data-tag="team"]')).to_contain_text("sales")
    page.get_by_label("Search").fill("sales")
    expect(page.locator("#parameters-table tbody tr")).to_have_count(1)
    page.get_by_label("Search").fill("caller")
    expect(page.locator("#parameters-table tbody tr")).to_have_count(1)
    page.get_by_label("Search").fill("")
    page.get_by_role("button", name="Delete team").click()
    page.get_by_role("dialog", name="Delete parameter").get_by_role(
        "button", name="Delete").click()
    expect(page.locator('#parameters-table tr[data-tag="team"]')).to_have_count(0)
    tags = {p["tag"] for p in tenant.admin("{ parameters { tag } }").data["parameters"]}
    assert "team" not in tags and "crm_token" in tags


def test_system_admin_works_in_the_tenant_it_selects(
        page: Page, api_url: str, system: Any, tenant: TenantHandle, receiver: Receiver,
        shots: Path) -> None:
    attach(tenant, f"{receiver.url}/console/{tenant.code}/system")
    sign_in(page, api_url, system.key)
    page.get_by_label("Tenant").select_option(tenant.code)
    expect(page.locator('#events-table tr[data-event="ANSWERED_CALL"]')).to_contain_text(
        "hook ANSWERED_CALL")
    go(page, "Settings", "Settings")
    page.get_by_label("Time zone").fill("Europe/Sarajevo")
    page.get_by_label("Time zone").press("Enter")
    expect(page.get_by_role("status").filter(has_text="Settings saved")).to_be_visible()
    assert tenant.admin("{ settings { timezone } }").data["settings"]["timezone"] == \
        "Europe/Sarajevo"
    page.get_by_label("Time zone").fill("Mars/Olympus")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Time zone")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_contain_text("IANA")
    snap(page, shots, "22-system-admin-settings-error")
    # The key stays in this tab's session only: a reload keeps it, signing out forgets it.
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    expect(page.get_by_label("Tenant")).to_have_value(tenant.code)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_unknown_key_is_refused_next_to_the_key_field(page: Page, api_url: str) -> None:
    page.goto(f"{api_url}/")
    page.get_by_label("API key").fill("em_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".field-error")).to_contain_text("unknown or revoked")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    wait_until(lambda: page.evaluate("sessionStorage.length") == 0)


def test_system_admin_reads_why_a_tenant_is_off_and_enables_it_from_the_console(
        page: Page, api_url: str, system: Any, tenant: TenantHandle, shots: Path) -> None:
    """``tenant``: an enabled tenant for the console to open first (run alone, this test's
    switched-off tenant would be the only one, and sign_in waits for the Event List)."""
    code = f"off{secrets.token_hex(3)}"
    system("mutation($c: String!) { createTenant(code: $c, name: \"Switched off\") { code } }",
           c=code).data
    sign_in(page, api_url, system.key)
    page.get_by_label("Tenant").select_option(code)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(f"The Event Manager is switched off for tenant {code}")
    expect(alert).not_to_contain_text("FEATURE_DISABLED")
    expect(alert).not_to_contain_text("not enabled for tenant '")  # the API's own words
    snap(page, shots, "26-tenant-switched-off")
    page.get_by_role("button", name=f"Enable the Event Manager for {code}").click()
    expect(page.locator("#events-table tbody tr")).to_have_count(5)
    tenants = system("{ tenants { code eventManagerEnabled } }").data["tenants"]
    assert {"code": code, "eventManagerEnabled": True} in tenants


def test_viewer_key_sees_the_pages_but_no_controls_that_change_them(
        page: Page, api_url: str, tenant: TenantHandle) -> None:
    attach(tenant, "https://crm.example.com/hook")
    viewer = tenant.key("VIEWER")
    sign_in(page, api_url, viewer.key or "")
    expect(page.locator("#events-table")).to_contain_text("hook ANSWERED_CALL")
    expect(page.get_by_role("button", name=re.compile("^Test "))).to_have_count(0)
    go(page, "Actions", "Actions")
    expect(page.locator("#actions-table tbody tr")).to_have_count(1)
    expect(page.get_by_role("link", name="Add Action")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^(Enable|Disable) "))).to_have_count(0)
    page.get_by_role("link", name="Edit hook ANSWERED_CALL").click()
    expect(page.get_by_label("Name", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Save")).to_be_disabled()
    go(page, "Parameters", "Parameters")
    expect(page.get_by_role("button", name="Add Parameter")).to_have_count(0)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)


def test_pbx_key_cannot_open_the_console(page: Page, api_url: str, tenant: TenantHandle) -> None:
    page.goto(f"{api_url}/")
    page.get_by_label("API key").fill(tenant.key("PBX").key or "")
    page.get_by_label("API key").press("Enter")
    expect(page.locator(".field-error")).to_contain_text("PBX key can only report events")
    expect(page.get_by_role("navigation", name="Sections")).to_be_hidden()


# --- what a person reads: errors, notes, descriptions, long lists, what was sent ----------

def test_parameter_dialog_drops_the_tag_error_once_the_tag_changes(
        page: Page, api_url: str, tenant: TenantHandle) -> None:
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Parameters", "Parameters")
    page.get_by_role("button", name="Add Parameter").click()
    dialog = page.get_by_role("dialog", name="Add parameter")
    tag = dialog.get_by_label("Tag")
    tag.fill("caller_id")
    dialog.get_by_label("Data").fill("x")
    dialog.get_by_role("button", name="Add parameter").click()
    expect(dialog.locator(".field-error")).to_contain_text("system parameter")
    tag.fill("crm_team")  # the refusal was about caller_id: it goes with it
    expect(dialog.locator(".field-error")).to_have_count(0)
    expect(tag).not_to_have_attribute("aria-invalid", "true")
    dialog.get_by_role("button", name="Add parameter").click()
    expect(dialog).to_have_count(0)
    assert {"tag": "crm_team", "value": "x"} in tenant.admin(
        "{ parameters { tag value } }").data["parameters"]


def test_empty_new_action_marks_every_missing_field_at_once(
        page: Page, api_url: str, tenant: TenantHandle, shots: Path) -> None:
    sign_in(page, api_url, tenant.admin.key or "")
    page.goto(f"{api_url}/#/actions/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("Add Action")
    page.get_by_role("button", name="Create action").click()
    name, url = page.get_by_label("Name", exact=True), page.get_by_label("URL", exact=True)
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_have_text(
        [re.compile("Name must not be empty"), re.compile("URL must not be empty")])
    expect(name).to_be_focused()
    snap(page, shots, "27-action-missing-fields")
    name.fill("CRM")  # each note goes with its own field's change
    expect(name).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_have_text([re.compile("URL must not be empty")])
    url.fill("https://crm.example.com/calls")
    url.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit action: CRM")


def test_tenant_admin_of_a_switched_off_tenant_reads_a_sentence_not_a_code(
        page: Page, api_url: str, system: Any, mongo: Any, settings: Any) -> None:
    off = make_tenant(system, mongo, settings, enabled=False)
    sign_in_anywhere(page, api_url, off.admin.key or "")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(f"The Event Manager is switched off for tenant {off.code}")
    expect(alert).to_contain_text("Ask a system admin")
    expect(alert).not_to_contain_text("FEATURE_DISABLED")


def test_master_tenant_is_not_offered_to_import_from_itself(
        page: Page, api_url: str, master: TenantHandle, tenant: TenantHandle) -> None:
    sign_in(page, api_url, master.admin.key or "")
    go(page, "Actions", "Actions")
    expect(page.get_by_role("button", name="Import Postman Collection")).to_be_visible()
    expect(page.get_by_role("button", name="Import Actions")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, api_url, tenant.admin.key or "")  # any other tenant is
    go(page, "Actions", "Actions")
    expect(page.get_by_role("button", name="Import Actions")).to_be_visible()


def test_postman_description_shows_as_text_with_safe_markdown_and_its_origin_in_words(
        page: Page, api_url: str, tenant: TenantHandle, shots: Path, tmp_path: Path) -> None:
    file = tmp_path / "crm.postman_collection.json"
    file.write_text(json.dumps({
        "info": {"name": "CRM hooks", "schema": SCHEMA_V21},
        "item": [{"name": "Log call", "request": {
            "method": "POST", "url": "https://crm.example.com/calls",
            "description": "**Logs** the call, see [the docs](https://docs.example.com/calls)."
                           "\n<script>window.injected = 1</script> "
                           "[not a link](javascript:window.injected=2)"}}],
    }))
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Actions", "Actions")
    page.get_by_role("button", name="Import Postman Collection").click()
    dialog = page.get_by_role("dialog", name="Import Postman Collection")
    dialog.get_by_label("Collection file").set_input_files(file)
    expect(dialog.locator(".collection-name")).to_contain_text("1 request, 1 can be imported")
    dialog.get_by_label("Select all Actions").check()
    dialog.get_by_role("button", name="Import", exact=True).click()
    expect(dialog.get_by_role("status")).to_contain_text("1 imported")
    dialog.get_by_role("button", name="Done").click()
    row = page.locator("#actions-table tbody tr")
    expect(row).to_have_count(1)
    description = row.locator(".description")
    expect(description.locator("strong")).to_have_text("Logs")
    expect(description.get_by_role("link", name="the docs")).to_have_attribute(
        "href", "https://docs.example.com/calls")
    expect(description).to_contain_text("<script>window.injected = 1</script>")
    expect(description).not_to_contain_text("**")
    expect(description.get_by_role("link")).to_have_count(1)  # javascript: stays text
    assert description.locator("script").count() == 0
    assert page.evaluate("window.injected") is None
    notes = cells(page, "#actions-table", row, "Notes")[0]
    expect(notes).to_have_text("Imported from Postman collection CRM hooks")
    snap(page, shots, "28-actions-postman-description")


def test_event_editor_searches_200_actions_and_keeps_the_chosen_ones(
        page: Page, api_url: str, tenant: TenantHandle, shots: Path) -> None:
    for number in range(1, 201):
        tenant.admin("mutation($i: ActionInput!) { createAction(input: $i) { id } }",
                     i={"name": f"Action {number:03}",
                        "url": "https://crm.example.com/hook"}).data
    sign_in(page, api_url, tenant.admin.key or "")
    page.goto(f"{api_url}/#/events/ANSWERED_CALL")
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit event: Answered Call")
    boxes = page.locator(".check-list li:not([hidden])")
    expect(boxes).to_have_count(200)
    search = page.get_by_role("searchbox", name="Search actions")
    search.fill("action 137")
    expect(boxes).to_have_count(1)
    box_137 = page.get_by_role("checkbox", name=re.compile("^Action 137"))
    box_137.check()
    search.fill("action 05")
    expect(boxes).to_have_count(10)
    box_055 = page.get_by_role("checkbox", name=re.compile("^Action 055"))
    box_055.check()
    # Action 137 is filtered out of the list, and still shown as chosen.
    chosen = page.locator(".check-chosen li")
    expect(chosen).to_have_text(["Action 137", "Action 055"])
    expect(page.locator(".check-count")).to_have_text("2 selected")
    search.fill("no such action")
    expect(boxes).to_have_count(0)
    expect(page.get_by_text("Nothing matches the search.")).to_be_visible()
    snap(page, shots, "29-event-editor-search")
    search.fill("")
    expect(boxes).to_have_count(200)
    expect(box_137).to_be_checked()
    expect(box_055).to_be_checked()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Event List")
    event = tenant.admin("{ event(type: ANSWERED_CALL) { actions { name } } }").data["event"]
    assert sorted(a["name"] for a in event["actions"]) == ["Action 055", "Action 137"]


def test_activity_details_show_the_body_sent_with_secrets_masked(
        page: Page, api_url: str, tenant: TenantHandle, worker: Path, receiver: Receiver,
        shots: Path) -> None:
    path = f"/console/{tenant.code}/body"
    action = attach(tenant, f"{receiver.url}{path}")
    tenant.admin('mutation { createParameter(input: {tag: "crm_token", value: "tok-s3cret", '
                 'secret: true}) { tag } }').data
    tenant.admin("""mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i)
        { id } }""", id=action, i={
        "name": "hook ANSWERED_CALL", "url": f"{receiver.url}{path}", "bodyType": "RAW",
        "rawContentType": "application/json",
        "rawBody": '{"caller": "{{caller_id}}", "token": "{{crm_token}}"}'}).data
    tenant.admin("mutation { testEvent(event: ANSWERED_CALL) { triggerId } }").data
    sent = receiver.wait_for(path)[0]
    assert json.loads(sent.body)["token"] == "tok-s3cret"
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Activity Monitor", "Activity Monitor")
    row = page.locator(ROWS).first
    expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=30_000)
    row.get_by_role("button", name=re.compile("^Details")).click()
    detail = page.get_by_role("dialog", name="Delivery")
    body = detail.locator("pre.request-body")
    expect(body).to_have_text(sent.body.decode().replace("tok-s3cret", "********"))
    expect(detail).not_to_contain_text("tok-s3cret")
    snap(page, shots, "30-activity-request-body")


# --- widths: phone, tablet, desktop -----------------------------------------------------

WIDTHS = (360, 768, 1280)
"""A small phone, a tablet held upright, a laptop."""


@contextmanager
def whole_page_in_window(page: Page) -> Iterator[None]:
    """The window as tall as the page, so that "in the window" means "not cut off at the
    sides" (by the page's edge or by a container that scrolls) wherever it is on the page."""
    size = page.viewport_size or {"width": 1360, "height": 900}
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    try:
        yield
    finally:
        page.set_viewport_size(size)


def no_sideways_scroll(page: Page, where: str) -> None:
    width, window = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
    assert width <= window, f"{where}: the page is {width} px wide in a {window} px window"


def shown_whole(controls: Locator, where: str, inside: Locator | None = None) -> None:
    """Each of ``controls`` visible and wholly in the window; with ``inside``, also within
    that element's box (the top bar's links on the top bar's dark background)."""
    assert controls.count(), f"{where}: nothing matches {controls}"
    outer = inside.bounding_box() if inside is not None else None
    for control in controls.all():
        expect(control).to_be_visible()
        expect(control, f"{where}: {control} is cut off").to_be_in_viewport(ratio=1)
        if outer is not None:
            box = control.bounding_box()
            assert box is not None
            right, bottom = box["x"] + box["width"], box["y"] + box["height"]
            assert (outer["x"] <= box["x"] and right <= outer["x"] + outer["width"]
                    and outer["y"] <= box["y"] and bottom <= outer["y"] + outer["height"]), \
                f"{where}: {control} at {box} is outside {inside} at {outer}"


def cells(page: Page, table: str, row: Locator, *columns: str) -> list[Locator]:
    """The cells of ``row`` under the columns headed ``columns``."""
    headings = [t.strip() for t in page.locator(f"{table} thead th").all_text_contents()]
    return [row.locator("td").nth(headings.index(column)) for column in columns]


def test_every_page_fits_a_phone_a_tablet_and_a_desktop(
        page: Page, api_url: str, system: Any, tenant: TenantHandle, worker: Path,
        receiver: Receiver, shots: Path) -> None:
    """At 360, 768 and 1280 px each page has no sideways scroll; the top bar keeps its
    links, the role and Sign out on it; Activity shows each row's Action, Status and
    Message, Actions each row's buttons, the Audit log its filters and a row's buttons, in
    the window. Screenshots: ``w360-…``."""
    url = f"{receiver.url}/console/{tenant.code}/widths"
    action = attach(tenant, url)
    tenant.admin("""mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i)
        { id } }""", id=action, i={  # rows of keys and values in the editor, a form body
        "name": "hook ANSWERED_CALL", "url": url, "bodyType": "FORM_DATA",
        "query": [{"key": "caller", "value": "{{caller_id}}"}],
        "headers": [{"key": "X-Correlation-Identifier", "value": "{{call_id}}-{{tenant}}"}],
        "bodyFields": [{"key": "duration", "value": "{{duration}}"}]}).data
    tenant.admin('mutation { createParameter(input: {tag: "team", value: "support"}) '
                 '{ tag } }').data
    tenant.admin("mutation { testEvent(event: ANSWERED_CALL) { triggerId } }").data
    wait_until(lambda: tenant.collection("activity").find_one({"status": "SUCCEEDED"}), 30,
               "the test delivery")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(f"{api_url}/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        with whole_page_in_window(page):
            no_sideways_scroll(page, f"sign-in at {width} px")
            shown_whole(page.get_by_role("button", name="Sign in"), f"sign-in at {width} px")
        snap(page, shots, f"w{width}-01-sign-in")
    sign_in(page, api_url, system.key)
    page.get_by_label("Tenant").select_option(tenant.code)
    expect(page.locator('#events-table tr[data-event="ANSWERED_CALL"]')).to_contain_text(
        "hook ANSWERED_CALL")

    pages = [("events", "Event List", "events"),
             ("events/ANSWERED_CALL", "Edit event: Answered Call", "event-editor"),
             ("settings", "Settings", "settings"),
             ("activity", "Activity Monitor", "activity"),
             ("dashboard", "Dashboard", "dashboard"),
             ("actions", "Actions", "actions"),
             ("actions/new", "Add Action", "action-new"),
             (f"actions/{action}", "Edit action: hook ANSWERED_CALL", "action-editor"),
             ("parameters", "Parameters", "parameters"),
             ("audit", "Audit log", "audit")]
    bar = page.locator("#topbar")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        for number, (path, heading, name) in enumerate(pages, start=2):
            where = f"#/{path} at {width} px"
            page.goto(f"{api_url}/#/{path}")
            expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            if path == "activity":
                row = page.locator(ROWS).first
                expect(row).to_have_attribute("data-status", "SUCCEEDED")
            if path == "dashboard":
                expect(page.locator("#dashboard-actions tbody tr").first).to_contain_text(
                    "hook ANSWERED_CALL")
            if path == "audit":
                row = page.locator("#audit-table tbody tr").first
                expect(row).to_contain_text("parameter team")
            with whole_page_in_window(page):
                no_sideways_scroll(page, where)
                shown_whole(page.get_by_role("navigation", name="Sections").get_by_role("link"),
                            where, inside=bar)
                shown_whole(bar.locator(".badge.role"), where, inside=bar)
                shown_whole(bar.get_by_role("button", name="Sign out"), where, inside=bar)
                shown_whole(page.get_by_label("Tenant"), where, inside=bar)
                if path == "activity":
                    for cell in cells(page, "#activity-table", row, "Action", "Status",
                                      "Message"):
                        shown_whole(cell, where)
                    shown_whole(row.get_by_role("button", name=re.compile("^Details")), where)
                if path == "actions":
                    row = page.locator("#actions-table tbody tr").first
                    shown_whole(row.get_by_role("link", name="Edit hook ANSWERED_CALL"), where)
                    shown_whole(row.get_by_role("button", name="Disable hook ANSWERED_CALL"),
                                where)
                    shown_whole(row.get_by_role("button", name="Delete hook ANSWERED_CALL"),
                                where)
                if path == "parameters":
                    shown_whole(page.get_by_role("button", name="Edit team"), where)
                    shown_whole(page.get_by_role("button", name="Delete team"), where)
                if path == "audit":
                    shown_whole(page.get_by_role("search", name="Filter the audit log")
                                .locator("select, input, button"), where)
                    shown_whole(row.get_by_role("button"), where)
            snap(page, shots, f"w{width}-{number:02}-{name}")
            if path == "activity":  # the on-call admin's next tap: the delivery's details
                row.get_by_role("button", name=re.compile("^Details")).click()
                detail = page.get_by_role("dialog", name="Delivery")
                expect(detail).to_contain_text("SUCCEEDED")
                with whole_page_in_window(page):
                    no_sideways_scroll(page, f"details at {width} px")
                    shown_whole(detail, f"details at {width} px")
                    shown_whole(detail.get_by_role("button", name="Close"),
                                f"details at {width} px")
                snap(page, shots, f"w{width}-{number:02}-activity-details")
                page.keyboard.press("Escape")
                expect(detail).to_have_count(0)


def test_audit_log_lists_who_changed_what_newest_first_and_pages(
        page: Page, api_url: str, tenant: TenantHandle, shots: Path) -> None:
    for i in range(52):  # with the tenant's own three entries: two pages of 50
        tenant.admin('mutation($v: String!) { createParameter(input: {tag: $v, value: "x"}) '
                     "{ tag } }", v=f"p{i:02}").data
    tenant.admin("""mutation { createAction(input: {name: "crm", url: "https://crm.test",
        authorization: {type: BEARER_TOKEN, token: "tok-hidden"}}) { id } }""").data
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Audit log", "Audit log")
    rows = page.locator("#audit-table tbody tr")
    expect(rows).to_have_count(50)
    first = rows.first
    expect(first).to_contain_text("createAction")
    expect(first).to_contain_text("action crm")
    expect(first).to_contain_text("admin (TENANT_ADMIN)")
    expect(first).to_contain_text("auth.token: — → ********")
    expect(page.locator("#audit-table")).not_to_contain_text("tok-hidden")
    snap(page, shots, "audit-log")
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(56)
    expect(rows.last).to_contain_text("createTenant")
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    page.get_by_label("Operation").select_option("createParameter")  # Load more keeps it
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(52)
    expect(page.locator('#audit-table tbody tr:not([data-operation="createParameter"])')
           ).to_have_count(0)


def test_audit_log_filters_by_operation_target_actor_and_time_in_the_tenants_zone(
        page: Page, api_url: str, tenant: TenantHandle, shots: Path) -> None:
    """Operation, a row's target and actor, and From/To in the tenant's zone (Tokyo, nine
    hours from the browser's UTC) narrow the list; a reversed window is refused by the
    API, shown as a toast, and the rows stay."""
    start = datetime.now(UTC)
    create = ('mutation($n: String!) { createAction(input: {name: $n, url: "https://x.test"}) '
              "{ id } }")
    crm = tenant.admin(create, n="crm").data["createAction"]["id"]
    tenant.admin(create, n="erp").data
    tenant.admin("""mutation($id: ID!) { updateAction(id: $id, input: {name: "crm",
        url: "https://crm.test/v2"}) { id } }""", id=crm).data
    tenant.admin('mutation { createParameter(input: {tag: "team", value: "support"}) '
                 '{ tag } }').data
    tenant.admin('mutation { updateSettings(input: {timezone: "Asia/Tokyo"}) '
                 '{ timezone } }').data
    sign_in(page, api_url, tenant.admin.key or "")
    go(page, "Audit log", "Audit log")
    rows = page.locator("#audit-table tbody tr")
    expect(rows).to_have_count(8)  # with the tenant's createTenant, enabling and admin key
    expect(page.locator("#audit-table thead")).to_contain_text("When (Asia/Tokyo)")

    page.get_by_label("Operation").select_option("updateAction")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-operation", "updateAction")
    expect(rows.first).to_contain_text("url: https://x.test → https://crm.test/v2")
    page.get_by_role("button", name="Clear filters").click()
    expect(rows).to_have_count(8)
    expect(page.get_by_label("Operation")).to_have_value("")

    rows.filter(has_text="createAction").get_by_role("button", name="action crm").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-operation", "updateAction")
    expect(rows.nth(1)).to_have_attribute("data-operation", "createAction")
    expect(page.get_by_label("What")).to_have_value("action")
    snap(page, shots, "audit-log-target")
    page.get_by_role("button", name="Remove filter action crm").click()
    expect(rows).to_have_count(3)  # What stays "action": both actions' entries
    page.get_by_role("button", name="Clear filters").click()
    expect(rows).to_have_count(8)

    rows.first.get_by_role("button", name="admin (TENANT_ADMIN)").click()
    expect(rows).to_have_count(5)  # not the SYSTEM_ADMIN key's three
    expect(page.locator("#audit-table")).not_to_contain_text("SYSTEM_ADMIN")
    page.get_by_role("button", name="Clear filters").click()
    expect(rows).to_have_count(8)

    tokyo = ZoneInfo("Asia/Tokyo")
    hour_before = (start - timedelta(hours=1)).astimezone(tokyo).strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("From (Asia/Tokyo)").fill(hour_before)  # UTC would be 8 hours ahead
    expect(rows).to_have_count(8)
    page.get_by_label("To (Asia/Tokyo)").fill(
        (start - timedelta(hours=2)).astimezone(tokyo).strftime("%Y-%m-%dT%H:%M"))
    expect(page.get_by_role("alert").filter(has_text="since must be before until")).to_be_visible()
    expect(rows).to_have_count(8)
    snap(page, shots, "audit-log-reversed-window")
    page.get_by_label("To (Asia/Tokyo)").fill("")
    later = (datetime.now(UTC) + timedelta(minutes=2)).astimezone(tokyo)
    page.get_by_label("From (Asia/Tokyo)").fill(later.strftime("%Y-%m-%dT%H:%M"))
    expect(page.get_by_text("No changes match these filters.")).to_be_visible()
    expect(page.locator("#audit-table")).to_be_hidden()
