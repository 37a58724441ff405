"""Dashboards (``activityStats``): counters kept as rows end match the rows themselves,
per bucket and per action. Real API, worker and receiver."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tenants.stats import folded_id, hour_id, latency_bin, percentile
from tests.conftest import TenantHandle, run_cli, wait_until
from tests.receiver import Receiver, Reply
from tests.test_delivery import attach, enable, make_action

pytestmark = pytest.mark.usefixtures("worker")

FINAL = ("SUCCEEDED", "FAILED", "SKIPPED", "EXPIRED")
STATS = """query($s: DateTime!, $u: DateTime, $m: Int) {
    activityStats(since: $s, until: $u, bucketMinutes: $m) { since until
        buckets { start succeeded failed skipped expired retried p50Ms p95Ms }
        actions { actionId actionName succeeded failed expired p95Ms lastStatus lastAt } } }"""
ALL_ROWS = """query($after: String) { activity(first: 200, after: $after) {
    items { id actionId actionName status attempts createdAt updatedAt } nextCursor } }"""


def stats(tenant: TenantHandle, since: datetime, until: datetime | None = None,
          minutes: int = 5) -> dict[str, Any]:
    return tenant.admin(STATS, s=since.isoformat(), u=until and until.isoformat(),
                        m=minutes).data["activityStats"]


def all_rows(tenant: TenantHandle) -> list[dict[str, Any]]:
    found, after = [], None
    while True:
        page = tenant.admin(ALL_ROWS, after=after).data["activity"]
        found += page["items"]
        after = page["nextCursor"]
        if after is None:
            return found


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def latency(row: dict[str, Any]) -> int:
    return (when(row["updatedAt"]) - when(row["createdAt"])) // timedelta(milliseconds=1)


def expected(rows: list[dict[str, Any]], since: datetime, minutes: int) -> dict[str, Any]:
    """What activityStats must say, counted from the rows: buckets by the time each row
    ended (its updatedAt), and actions."""
    buckets: dict[int, dict[str, Any]] = {}
    actions: dict[str, dict[str, Any]] = {}
    for row in rows:
        index = int((when(row["updatedAt"]) - since) / timedelta(minutes=minutes))
        bucket = buckets.setdefault(index, {"counts": Counter(), "bins": Counter()})
        bucket["counts"][row["status"]] += 1
        bucket["counts"]["retried"] += max(0, row["attempts"] - 1)
        if row["status"] in ("SUCCEEDED", "FAILED"):
            bucket["bins"][latency_bin(latency(row))] += 1
        if row["actionId"]:
            action = actions.setdefault(row["actionId"], {"counts": Counter(), "bins": Counter(),
                                                          "last": row})
            action["counts"][row["status"]] += 1
            if row["status"] in ("SUCCEEDED", "FAILED"):
                action["bins"][latency_bin(latency(row))] += 1
            if when(row["updatedAt"]) > when(action["last"]["updatedAt"]):
                action["last"] = row
    return {"buckets": buckets, "actions": actions}


def mismatches(answer: dict[str, Any], rows: list[dict[str, Any]], minutes: int) -> list[str]:
    """Where ``answer`` differs from what the rows say (empty when it matches)."""
    since = when(answer["since"])
    want = expected(rows, since, minutes)
    found = []
    for index, bucket in enumerate(answer["buckets"]):
        counts = want["buckets"].get(index, {"counts": Counter(), "bins": Counter()})
        got = (bucket["succeeded"], bucket["failed"], bucket["skipped"], bucket["expired"],
               bucket["retried"], bucket["p50Ms"], bucket["p95Ms"])
        c = counts["counts"]
        wanted = (c["SUCCEEDED"], c["FAILED"], c["SKIPPED"], c["EXPIRED"], c["retried"],
                  percentile(counts["bins"], 0.5), percentile(counts["bins"], 0.95))
        if got != wanted:
            found.append(f"bucket {bucket['start']}: {got} != {wanted}")
    by_id = {a["actionId"]: a for a in answer["actions"]}
    if set(by_id) != set(want["actions"]):
        found.append(f"actions {sorted(by_id)} != {sorted(want['actions'])}")
    for action_id, action in want["actions"].items():
        if action_id not in by_id:
            continue
        got = by_id[action_id]
        c = action["counts"]
        got_ = (got["succeeded"], got["failed"], got["expired"], got["p95Ms"],
                got["lastStatus"], got["lastAt"] and when(got["lastAt"]))
        wanted = (c["SUCCEEDED"], c["FAILED"], c["EXPIRED"], percentile(action["bins"], 0.95),
                  action["last"]["status"], when(action["last"]["updatedAt"]))
        if got_ != wanted:
            found.append(f"action {action_id}: {got_} != {wanted}")
    return found


def agreed(tenant: TenantHandle, since: datetime, rows: list[dict[str, Any]],
           minutes: int = 5) -> dict[str, Any]:
    """activityStats once it says what the rows say (the counts are written within a
    second of the rows' ends)."""
    last: list[list[str]] = []

    def check() -> dict[str, Any] | None:
        answer = stats(tenant, since, minutes=minutes)
        last[:] = [mismatches(answer, rows, minutes)]
        return answer if not last[0] else None

    try:
        return wait_until(check, 30, "counters equal to the rows")
    except AssertionError:
        assert last[0] == []
        raise


def settle(tenant: TenantHandle, count: int) -> list[dict[str, Any]]:
    return wait_until(lambda: len(found := all_rows(tenant)) == count and all(
        r["status"] in FINAL for r in found) and found, 60, f"{count} final rows")


def trigger(tenant: TenantHandle, event: str, occurred: datetime | None = None) -> None:
    tenant.admin("""mutation($i: TriggerInput!) { triggerEvent(input: $i) { triggerId } }""",
                 i={"event": event, "params": {"call_id": "c1"},
                    **({"occurredAt": occurred.isoformat()} if occurred else {})}).data


def deliveries(tenant: TenantHandle, receiver: Receiver) -> dict[str, str]:
    """Actions whose deliveries succeed, succeed after a retry, fail after retries, expire,
    and are skipped (disabled), each twice; and a trigger of an inactive event (SKIPPED,
    no action). Eleven rows in all; the action ids by name."""
    url = f"{receiver.url}/{tenant.code}"
    receiver.script(f"/{tenant.code}/flaky", Reply(503))
    receiver.script(f"/{tenant.code}/down", *[Reply(503)] * 6)
    ids = {name: make_action(tenant, name=name, url=f"{url}/{name}", **fields)
           for name, fields in (("ok", {}), ("flaky", {}), ("down", {}),
                                ("late", {"policy": {"expireAfterSeconds": 60}}),
                                ("off", {}))}
    attach(tenant, "HANGUP", *ids.values())
    enable(tenant)
    tenant.admin("mutation($id: ID!) { setActionEnabled(id: $id, enabled: false) { id } }",
                 id=ids["off"]).data
    trigger(tenant, "HANGUP", datetime.now(UTC) - timedelta(minutes=10))  # "late" expires
    trigger(tenant, "HANGUP")
    trigger(tenant, "RINGING")  # not active: one SKIPPED row
    return ids


def test_activity_stats_match_the_rows_per_bucket_and_per_action(
        tenant: TenantHandle, receiver: Receiver) -> None:
    since = datetime.now(UTC) - timedelta(hours=1)
    ids = deliveries(tenant, receiver)
    rows = settle(tenant, 11)
    statuses = Counter((r["actionName"], r["status"]) for r in rows)
    assert statuses == Counter({("ok", "SUCCEEDED"): 2, ("flaky", "SUCCEEDED"): 2,
                                ("down", "FAILED"): 2,
                                ("late", "EXPIRED"): 1, ("late", "SUCCEEDED"): 1,
                                ("off", "SKIPPED"): 2, (None, "SKIPPED"): 1})
    answer = agreed(tenant, since, rows)
    totals = Counter()
    for bucket in answer["buckets"]:
        totals.update({k: bucket[k] for k in ("succeeded", "failed", "skipped", "expired",
                                             "retried")})
    assert totals == {"succeeded": 5, "failed": 2, "skipped": 3, "expired": 1,
                      "retried": sum(r["attempts"] - 1 for r in rows if r["attempts"] > 1)}
    assert totals["retried"] == 5  # flaky's second attempt, down's two and two
    assert answer["actions"][0]["actionId"] == ids["down"]  # worst first: most failed
    assert mismatches(stats(tenant, since, minutes=60), rows, 60) == []


def test_buckets_are_aligned_to_bucket_minutes_and_cover_the_window(
        tenant: TenantHandle) -> None:
    since = datetime(2026, 3, 1, 10, 7, 30, tzinfo=UTC)
    answer = stats(tenant, since, datetime(2026, 3, 1, 12, 1, tzinfo=UTC), minutes=15)
    assert (answer["since"], answer["until"]) == ("2026-03-01T10:00:00+00:00",
                                                  "2026-03-01T12:15:00+00:00")
    starts = [b["start"] for b in answer["buckets"]]
    assert starts[:2] == ["2026-03-01T10:00:00+00:00", "2026-03-01T10:15:00+00:00"]
    assert len(starts) == 9 and starts[-1] == "2026-03-01T12:00:00+00:00"
    assert all(b["succeeded"] == 0 and b["p50Ms"] is None for b in answer["buckets"])
    assert answer["actions"] == []


def test_a_failed_delivery_sent_again_counts_once_as_it_ends_now(
        tenant: TenantHandle, receiver: Receiver) -> None:
    receiver.script(f"/{tenant.code}/down", *[Reply(503)] * 3)
    action = make_action(tenant, name="down", url=f"{receiver.url}/{tenant.code}/down")
    attach(tenant, "HANGUP", action)
    enable(tenant)
    since = datetime.now(UTC) - timedelta(minutes=30)
    trigger(tenant, "HANGUP")
    [row] = settle(tenant, 1)
    assert row["status"] == "FAILED"
    agreed(tenant, since, [row])
    tenant.admin("mutation($id: ID!) { retryActivity(id: $id) { status } }", id=row["id"]).data
    [row] = wait_until(lambda: (found := all_rows(tenant)) and found[0]["status"] == "SUCCEEDED"
                       and found, 30, "sent again")
    answer = agreed(tenant, since, [row])  # the success counted, the failure taken back
    assert sum(b["failed"] for b in answer["buckets"]) == 0
    assert sum(b["retried"] for b in answer["buckets"]) == row["attempts"] - 1 == 3


def test_a_deleted_action_keeps_its_id_and_is_named_deleted(
        tenant: TenantHandle, receiver: Receiver) -> None:
    action = make_action(tenant, name="gone", url=f"{receiver.url}/{tenant.code}/gone")
    attach(tenant, "HANGUP", action)
    enable(tenant)
    since = datetime.now(UTC) - timedelta(minutes=30)
    trigger(tenant, "HANGUP")
    settle(tenant, 1)
    wait_until(lambda: stats(tenant, since)["actions"], 30, "the action counted")
    tenant.admin("mutation($id: ID!) { deleteAction(id: $id) }", id=action).data
    [found] = stats(tenant, since)["actions"]
    assert (found["actionId"], found["actionName"], found["succeeded"]) == (
        action, "(deleted)", 1)


def test_recount_stats_rebuilds_the_counters_from_the_rows(
        tenant: TenantHandle, receiver: Receiver, env: dict[str, str]) -> None:
    since = datetime.now(UTC) - timedelta(hours=1)
    deliveries(tenant, receiver)
    rows = settle(tenant, 11)
    agreed(tenant, since, rows)
    tenant.collection("stats").delete_many({})
    assert sum(b["succeeded"] for b in stats(tenant, since)["buckets"]) == 0
    result = run_cli(env, "recount-stats", "--tenant", tenant.code)
    assert f"{tenant.code}: 11 rows counted in " in result.stdout
    assert mismatches(stats(tenant, since), rows, 5) == []
    assert mismatches(stats(tenant, since, minutes=60), rows, 60) == []


@pytest.mark.parametrize(("arguments", "field", "says"), [
    ({"m": 7}, "bucketMinutes", "multiple of 5 that divides a day"),
    ({"m": 0}, "bucketMinutes", "multiple of 5"),
    ({"m": 2880}, "bucketMinutes", "multiple of 5"),
    ({"u": "2026-03-01T00:00:00Z"}, "until", "until must be after since"),
    ({"u": "2026-04-02T00:00:01Z"}, "until", "at most 31 days"),
    ({"u": "2026-03-10T00:00:00Z", "m": 5}, "bucketMinutes", "at most 2000 buckets"),
])
def test_out_of_bounds_arguments_are_refused_naming_the_field(
        tenant: TenantHandle, arguments: dict[str, Any], field: str, says: str) -> None:
    reply = tenant.admin(STATS, **{"s": "2026-03-01T00:00:00Z", "u": "2026-03-01T06:00:00Z",
                                   "m": 5, **arguments})
    assert (reply.code, reply.field) == ("BAD_USER_INPUT", field)
    assert says in reply.error["message"]


def test_an_hour_that_is_over_is_folded_into_one_document_and_counts_the_same(
        tenant: TenantHandle) -> None:
    """Three writers' documents of an hour three hours ago (as three processes write
    them) are read, then folded into the hour's one document: the same answer before
    and after, and the writers' documents are gone."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    for n in range(3):
        tenant.collection("stats").insert_one({
            "_id": hour_id(hour, os.urandom(8)), "n": n + 1,
            "t": {"1": {"s": 2, "r": 1, "h": {"30": 2}}, "11": {"f": 1, "h": {"40": 1}}},
            "a": {"a" * 24: {"s": 2, "f": 1, "r": 1, "h": {"30": 2, "40": 1}, "l": 8 * 1000 + 1}},
            "p": {"1": {"a" * 24: {"s": 2, "r": 1, "h": {"30": 2}, "l": 8 * 1000 + 1}},
                  "11": {"a" * 24: {"f": 1, "h": {"40": 1}, "l": 8 * 999 + 2}}}})
    since = hour - timedelta(minutes=30)
    before = stats(tenant, since, hour + timedelta(hours=2))
    assert [d["_id"] for d in tenant.collection("stats").find({})] == [folded_id(hour)]
    after = stats(tenant, since, hour + timedelta(hours=2))
    assert before == after
    buckets = {b["start"]: b for b in after["buckets"] if b["succeeded"] or b["failed"]}
    assert {start: (b["succeeded"], b["failed"], b["retried"]) for start, b in
            buckets.items()} == {(hour + timedelta(minutes=5)).isoformat(): (6, 0, 3),
                                 (hour + timedelta(minutes=55)).isoformat(): (0, 3, 0)}
    [action] = after["actions"]
    assert (action["succeeded"], action["failed"], action["lastStatus"]) == (6, 3, "SUCCEEDED")
    edge = stats(tenant, hour + timedelta(minutes=30), hour + timedelta(hours=2))
    assert [(a["succeeded"], a["failed"]) for a in edge["actions"]] == [(0, 3)]


def test_a_folded_hour_folded_again_is_read_anew(tenant: TenantHandle) -> None:
    """A folded hour's sections are kept unpacked per version (``folded_sections``): a
    writer's document that comes after the fold is counted, folded in (a new ``gen``),
    and the next read counts it from the new version, not from the one kept."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)

    def write(successes: int) -> None:
        tenant.collection("stats").insert_one({
            "_id": hour_id(hour, os.urandom(8)), "n": 1,
            "t": {"2": {"s": successes, "h": {"30": successes}}},
            "a": {"b" * 24: {"s": successes, "h": {"30": successes}, "l": 8 * 1000 + 1}},
            "p": {"2": {"b" * 24: {"s": successes, "h": {"30": successes},
                               "l": 8 * 1000 + 1}}}})

    def succeeded() -> int:
        found = stats(tenant, hour - timedelta(hours=1), hour + timedelta(hours=2))
        return sum(b["succeeded"] for b in found["buckets"])

    write(4)
    assert succeeded() == 4  # read, then folded (gen 1)
    assert succeeded() == 4  # from the folded document
    write(3)
    assert succeeded() == 7  # the folded one and the new writer's; folded again (gen 2)
    [doc] = tenant.collection("stats").find({})
    assert (doc["_id"], doc["gen"]) == (folded_id(hour), 2)
    assert succeeded() == 7
    # Counted again from nothing (as recount-stats writes hours anew, from gen 1).
    tenant.collection("stats").delete_many({})
    write(2)
    assert succeeded() == 2
    [doc] = tenant.collection("stats").find({})
    assert doc["gen"] == 1
    assert succeeded() == 2
