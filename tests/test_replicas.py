"""Replicas behave as one: two API processes and two worker commands, as on separate
hosts (each its own ``event-manager serve`` or ``event-manager worker``, sharing nothing
but the database, the broker and Redis), on a database prefix of their own.

- live activity watched on one API shows the rows of triggers sent to the other;
- a change made through one API governs the very next trigger that the other accepts,
  and the very next delivery of either worker (``dispatch.stamps``); a revocation and a
  tenant switched off too. The next trigger is sent as soon as the change is answered:
  no sleep, no second try;
- an idempotency key used on one API and then on the other sends once;
- a worker killed with deliveries in flight loses none (``dispatch.recovery``) while the
  other carries on.

Which worker sent a delivery is read from the deliveries each worker process says it
holds (``dispatch.recovery.Liveness``: every half second here), while the receiver holds
the request (``HOLD``).
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pytest
import redis
from bson import ObjectId

from dispatch.stamps import POLL_SECONDS
from event_manager.config import Settings
from tests.conftest import Client, Reply, TenantHandle, make_tenant, wait_until
from tests.installation import Installation, installation
from tests.receiver import Received, Receiver
from tests.receiver import Reply as Answer
from tests.support import api_process
from tests.test_delivery import attach, enable, make_action
from tests.test_subscription import next_row, subscription, until_live

HOLD = 1.5
"""Seconds the receiver holds a request whose sender is looked for: the liveness of the
worker process that sends it is published at least twice meanwhile."""
ROUNDS = 40
"""Triggers sent at most until each worker has been seen sending one of them: each goes
to whichever worker fetches it first."""
SIGNING_SECRET = "whsec_" + base64.b64encode(b"replicas-signing-secret!").decode()
"""Each request then carries ``webhook-id: msg_<activity id>``: which delivery it is."""
OCCURRED = "2024-03-10T20:00:00Z"
"""The triggers' moment: ``{{time}}`` is 20:00:00 in UTC, 05:00:00 in Asia/Tokyo."""
FINAL = ("SUCCEEDED", "FAILED", "SKIPPED", "EXPIRED")
TRIGGER = """mutation($e: EventType!, $p: JSON, $k: String, $at: DateTime) {
    triggerEvent(input: {event: $e, params: $p, idempotencyKey: $k, occurredAt: $at}) {
        triggerId accepted reason activities { id status message actionName } } }"""


@pytest.fixture(scope="module")
def replicas(settings: Settings, mongo: Any, redis_client: redis.Redis,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """Two API processes and two worker commands of one process each (no process of
    their own for retries: each takes both queues), deliveries stuck for 2 s recovered."""
    with installation(settings, mongo, redis_client, tmp_path_factory.mktemp("replicas"),
                      "replicas", apis=2, workers=2, retry_processes=0,
                      recovery_seconds=2) as place:
        yield place


@pytest.fixture
def tenant(replicas: Installation, mongo: Any) -> TenantHandle:
    """A fresh tenant of the replicas; its admin and system clients talk to API 1."""
    return make_tenant(replicas.system, mongo, replicas.settings)


def on_api(replicas: Installation, which: int, client: Client) -> Client:
    """``client``'s key (and X-Tenant) on API process ``which`` (0 or 1)."""
    return Client(replicas.urls[which], client.key, client.tenant)


def pbx_key(tenant: TenantHandle) -> tuple[Client, str]:
    """A new PBX key of the tenant, made through API 1: its client there, and its id."""
    made = tenant.admin('mutation($t: String) { createApiKey(role: PBX, label: "pbx", '
                        "tenant: $t) { key info { id } } }", t=tenant.code
                        ).data["createApiKey"]
    return Client(tenant.admin.url, made["key"]), made["info"]["id"]


def delivery_of(request: Received) -> str:
    """The activity id a request was sent for (its signature's ``webhook-id``)."""
    found = request.header("webhook-id")
    assert found is not None and found.startswith("msg_"), request.headers
    return found.removeprefix("msg_")


def query(request: Received) -> dict[str, str]:
    return dict(parse_qsl(request.query))


def queued(result: dict[str, Any]) -> list[str]:
    return [a["id"] for a in result["activities"] if a["status"] == "QUEUED"]


def unfinished(tenant: TenantHandle, ids: list[str]) -> int:
    return tenant.collection("activity").count_documents(
        {"_id": {"$in": [ObjectId(i) for i in ids]}, "status": {"$nin": list(FINAL)}})


def settled(tenant: TenantHandle, ids: list[str], timeout: float = 60.0) -> list[dict]:
    """The rows ``ids`` (status and attempts) once each has ended."""
    wait_until(lambda: unfinished(tenant, ids) == 0, timeout, f"{len(ids)} rows ended")
    return list(tenant.collection("activity").find(
        {"_id": {"$in": [ObjectId(i) for i in ids]}}, {"status": 1, "attempts": 1}))


def holders(replicas: Installation, client: redis.Redis) -> dict[str, int]:
    """Delivery id → the worker command whose process says it holds it now (its key
    ``<database>:holding:<host>-<pid>-<random>``)."""
    found = {}
    for key in client.scan_iter(f"{replicas.settings.database}:holding:*"):
        value = client.get(key)
        worker = replicas.worker_of(int(key.decode().rsplit("-", 2)[1]))
        if value and worker is not None:
            found.update(dict.fromkeys(json.loads(value), worker))
    return found


def sender(replicas: Installation, client: redis.Redis, tenant: TenantHandle,
           ids: list[str]) -> int | None:
    """The worker command seen holding one of the deliveries ``ids``; None when they all
    ended unseen."""
    def look() -> tuple[int | None] | None:
        held = holders(replicas, client)
        for delivery in ids:
            if delivery in held:
                return (held[delivery],)
        return (None,) if unfinished(tenant, ids) == 0 else None

    return wait_until(look, 60, f"a worker holding one of {ids}")[0]


@dataclass
class Crm:
    """A tenant whose HANGUP sends the action "crm" (a signed JSON POST to
    ``/<tenant>/crm?team={{crm_team}}&at={{time}}``, held ``HOLD`` s by the receiver),
    and its PBX, which triggers through API 2."""

    replicas: Installation
    tenant: TenantHandle
    receiver: Receiver
    redis: redis.Redis
    action: str
    pbx_id: str
    pbx: Client
    """The PBX key's client on API 2."""

    def path(self, name: str) -> str:
        return f"/{self.tenant.code}/{name}"

    def url(self, name: str) -> str:
        return f"{self.receiver.url}{self.path(name)}?team={{{{crm_team}}}}&at={{{{time}}}}"

    def hold(self, name: str) -> None:
        self.receiver.script(self.path(name), *[Answer(delay=HOLD)] * 200)

    def trigger(self) -> Reply:
        """A HANGUP through API 2."""
        return self.pbx(TRIGGER, e="HANGUP", at=OCCURRED)

    def through_both_workers(self, first: dict[str, Any] | None = None) -> list[str]:
        """Deliveries of HANGUPs sent through API 2 (``first``'s, sent already, then
        more) until each worker has been seen sending one; their ids, once all ended."""
        seen: set[int] = set()
        ids: list[str] = []
        for _ in range(ROUNDS):
            result, first = first or self.trigger().data["triggerEvent"], None
            made = queued(result)
            assert made, result
            ids += made
            worker = sender(self.replicas, self.redis, self.tenant, made)
            if worker is not None:
                seen.add(worker)
            if seen == {0, 1}:
                settled(self.tenant, ids)
                return ids
        raise AssertionError(f"{ROUNDS} deliveries, all sent by worker {seen}")

    def after(self, change: Callable[[], Any]) -> Reply:
        """``change()`` made through API 1, then, as soon as it is answered, a HANGUP
        through API 2: its reply (the time between the two answers is printed)."""
        change()
        answered = time.monotonic()
        reply = self.trigger()
        print(f"change answered on API 1 → next trigger answered on API 2 in "
              f"{(time.monotonic() - answered) * 1000:.0f} ms, first try")
        return reply

    def requests(self, ids: list[str]) -> list[Received]:
        """The requests that arrived for deliveries ``ids``."""
        wanted = set(ids)
        with self.receiver.lock:
            found = [r for r in self.receiver.requests if r.header("webhook-id")
                     and delivery_of(r) in wanted]
        return found


@pytest.fixture
def crm(replicas: Installation, tenant: TenantHandle, receiver: Receiver,
        redis_client: redis.Redis) -> Crm:
    """The tenant's "crm" action, attached to HANGUP, and custom parameter ``crm_team``
    = "one". Each test first warms the caches of API 2 and of both workers
    (``Crm.through_both_workers``), so that a cache kept past the change would show."""
    tenant.admin('mutation { createParameter(input: {tag: "crm_team", value: "one"}) '
                 "{ tag } }").data
    pbx, pbx_id = pbx_key(tenant)
    setup = Crm(replicas, tenant, receiver, redis_client, "", pbx_id,
                on_api(replicas, 1, pbx))
    setup.hold("crm")
    setup.action = make_action(tenant, **crm_action(setup, "crm", "one"))
    attach(tenant, "HANGUP", setup.action)
    enable(tenant)
    return setup


def crm_action(setup: Crm, path: str, body: str) -> dict[str, Any]:
    return {"name": "crm", "url": setup.url(path), "bodyType": "RAW",
            "rawBody": json.dumps({"v": body}), "rawContentType": "application/json",
            "signingSecret": SIGNING_SECRET}


def test_a_subscription_on_one_api_sees_every_update_of_rows_triggered_on_the_other(
        replicas: Installation, tenant: TenantHandle, receiver: Receiver) -> None:
    """Six HANGUPs sent to API 1, their deliveries sent by either worker: the `activity`
    subscription opened on API 2 gets every change of each row, in order:
    QUEUED → SENDING → SUCCEEDED; for the one the receiver first answers 503,
    QUEUED → SENDING → RETRYING → SENDING → SUCCEEDED."""
    path = f"/{tenant.code}/live"
    receiver.script(f"{path}/1", Answer(503))
    attach(tenant, "HANGUP", make_action(tenant, name="live",
                                         url=f"{receiver.url}{path}/{{{{seq}}}}"))
    enable(tenant)
    query = "subscription { activity { id triggerId status attempts } }"
    with subscription(replicas.urls[1], tenant.admin.key, query) as ws:
        until_live(ws, tenant)  # probes sent to API 1 arrive on API 2
        seq_of = {}
        for seq in range(6):
            result = tenant.admin(TRIGGER, e="HANGUP", p={"seq": seq}).data["triggerEvent"]
            seq_of[result["triggerId"]] = seq
        seen: dict[int, list[str]] = {}
        while sum(statuses[-1:] == ["SUCCEEDED"] for statuses in seen.values()) < 6:
            row = next_row(ws, timeout=30)
            if row["triggerId"] in seq_of:
                seen.setdefault(seq_of[row["triggerId"]], []).append(row["status"])
    plain = ["QUEUED", "SENDING", "SUCCEEDED"]
    assert seen == {0: plain, 1: ["QUEUED", "SENDING", "RETRYING", "SENDING", "SUCCEEDED"],
                    **{seq: plain for seq in range(2, 6)}}


# A change through API 1 governs the very next trigger through API 2 ---------------------


def test_an_action_edited_on_one_api_is_sent_by_the_next_trigger_on_the_other(
        crm: Crm) -> None:
    """The action's URL and body changed through API 1: the HANGUP sent to API 2 as
    soon as that is answered, and every one after it, whichever worker sends it, goes
    to the new URL with the new body."""
    crm.through_both_workers()
    crm.hold("moved")
    reply = crm.after(lambda: crm.tenant.admin(
        "mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i) { id } }",
        id=crm.action, i=crm_action(crm, "moved", "two")).data)
    ids = crm.through_both_workers(reply.data["triggerEvent"])
    sent = crm.requests(ids)
    assert {delivery_of(r) for r in sent} == set(ids)
    assert {(r.path, r.body) for r in sent} == {(crm.path("moved"), b'{"v": "two"}')}


def test_an_action_attached_on_one_api_is_planned_by_the_next_trigger_on_the_other(
        crm: Crm) -> None:
    """A second action attached to HANGUP through API 1: the next HANGUP on API 2 has
    a row for it, and it is sent."""
    extra = make_action(crm.tenant, name="extra", url=f"{crm.receiver.url}"
                        f"{crm.path('extra')}", signingSecret=SIGNING_SECRET)
    crm.through_both_workers()
    reply = crm.after(lambda: attach(crm.tenant, "HANGUP", crm.action, extra))
    result = reply.data["triggerEvent"]
    assert result["accepted"]
    assert sorted(a["actionName"] for a in result["activities"]) == ["crm", "extra"]
    settled(crm.tenant, queued(result))
    assert len(crm.receiver.received(crm.path("extra"))) == 1


def test_an_action_detached_on_one_api_is_left_out_by_the_next_trigger_on_the_other(
        crm: Crm) -> None:
    """Of two actions attached to HANGUP, one detached through API 1: the next HANGUP
    on API 2 has a row for the other only, and the detached one is not sent."""
    extra = make_action(crm.tenant, name="extra", url=f"{crm.receiver.url}"
                        f"{crm.path('extra')}", signingSecret=SIGNING_SECRET)
    attach(crm.tenant, "HANGUP", crm.action, extra)
    crm.through_both_workers()
    before = len(crm.receiver.received(crm.path("extra")))
    assert before >= 2
    reply = crm.after(lambda: attach(crm.tenant, "HANGUP", crm.action))
    result = reply.data["triggerEvent"]
    assert [a["actionName"] for a in result["activities"]] == ["crm"]
    settled(crm.tenant, queued(result))
    assert len(crm.receiver.received(crm.path("extra"))) == before


def test_an_event_made_inactive_on_one_api_skips_the_next_trigger_on_the_other(
        crm: Crm) -> None:
    """HANGUP made inactive through API 1: the next HANGUP on API 2 is one SKIPPED row
    saying why."""
    crm.through_both_workers()
    reply = crm.after(lambda: crm.tenant.admin(
        "mutation { updateEvent(type: HANGUP, input: {active: false}) { type } }").data)
    result = reply.data["triggerEvent"]
    assert (result["accepted"], result["reason"]) == (False, "the Hangup event is not active")
    assert [a["status"] for a in result["activities"]] == ["SKIPPED"]


def test_actions_disabled_on_one_api_skip_the_next_trigger_on_the_other(crm: Crm) -> None:
    """actionsEnabled turned off through API 1: the next HANGUP on API 2 is one SKIPPED
    row saying why, and nothing is sent."""
    crm.through_both_workers()
    before = len(crm.receiver.received(crm.path("crm")))
    reply = crm.after(lambda: crm.tenant.admin(
        "mutation { updateSettings(input: {actionsEnabled: false}) { actionsEnabled } }").data)
    result = reply.data["triggerEvent"]
    assert (result["accepted"], result["reason"]) == (
        False, "actions are disabled for all events in Settings")
    assert [a["status"] for a in result["activities"]] == ["SKIPPED"]
    assert len(crm.receiver.received(crm.path("crm"))) == before


def test_a_timezone_changed_on_one_api_renders_the_next_delivery_in_it(crm: Crm) -> None:
    """The tenant's timezone changed to Asia/Tokyo through API 1: {{time}} of the next
    HANGUP on API 2 (20:00 UTC), and of every one after it, whichever worker sends
    it, is 05:00:00."""
    ids = crm.through_both_workers()
    assert {query(r)["at"] for r in crm.requests(ids)} == {"20:00:00"}
    reply = crm.after(lambda: crm.tenant.admin(
        'mutation { updateSettings(input: {timezone: "Asia/Tokyo"}) { timezone } }').data)
    ids = crm.through_both_workers(reply.data["triggerEvent"])
    assert {query(r)["at"] for r in crm.requests(ids)} == {"05:00:00"}
    assert len(crm.requests(ids)) == len(ids)


def test_a_parameter_changed_on_one_api_is_rendered_by_the_next_delivery(crm: Crm) -> None:
    """The custom parameter crm_team changed from "one" to "two" through API 1: the next
    HANGUP on API 2, and every one after it, whichever worker sends it, carries
    team=two."""
    ids = crm.through_both_workers()
    assert {query(r)["team"] for r in crm.requests(ids)} == {"one"}
    reply = crm.after(lambda: crm.tenant.admin(
        'mutation { updateParameter(tag: "crm_team", input: {tag: "crm_team", '
        'value: "two"}) { tag } }').data)
    ids = crm.through_both_workers(reply.data["triggerEvent"])
    assert {query(r)["team"] for r in crm.requests(ids)} == {"two"}
    assert len(crm.requests(ids)) == len(ids)


def test_a_key_revoked_on_one_api_is_refused_at_once_by_the_other(crm: Crm) -> None:
    """The PBX key, accepted by API 2 a moment ago, revoked through API 1: its very next
    trigger on API 2 is refused."""
    crm.through_both_workers()
    reply = crm.after(lambda: crm.tenant.admin(
        "mutation($id: ID!) { revokeApiKey(id: $id) }", id=crm.pbx_id).data)
    assert reply.code == "UNAUTHENTICATED", reply.body


def test_a_tenant_switched_off_on_one_api_is_refused_at_once_by_the_other(crm: Crm) -> None:
    """setEventManagerEnabled(false) through API 1: the next HANGUP on API 2 is
    refused with FEATURE_DISABLED, and nothing is recorded."""
    crm.through_both_workers()
    rows = crm.tenant.collection("activity").count_documents({})
    reply = crm.after(lambda: crm.tenant.system(
        "mutation($c: String!) { setEventManagerEnabled(code: $c, enabled: false) "
        "{ code } }", c=crm.tenant.code).data)
    assert reply.code == "FEATURE_DISABLED", reply.body
    assert crm.tenant.collection("activity").count_documents({}) == rows


@dataclass
class Stampless:
    """An API process whose Redis user may not SET (``NOPERM``): Redis refuses its config
    stamps and answers all else, as for a Redis whose memory is full under
    ``noeviction``, or one process cut off from it."""

    url: str
    log: Path
    user: str


@pytest.fixture
def stampless(replicas: Installation, redis_client: redis.Redis,
              tmp_path: Path) -> Iterator[Stampless]:
    user = f"{replicas.settings.database}_stampless"
    redis_client.acl_setuser(user, enabled=True, passwords=["+stampless"], keys=["*"],
                             channels=["*"], commands=["+@all", "-set"])
    parts = urlsplit(replicas.settings.redis_url)
    url = urlunsplit(parts._replace(netloc=f"{user}:stampless@{parts.hostname}:{parts.port}"))
    env = {**replicas.env, "EVENT_MANAGER_REDIS_URL": url}
    try:
        with api_process(env, tmp_path / "api-stampless.log") as (api, _):
            yield Stampless(api, tmp_path / "api-stampless.log", user)
    finally:
        redis_client.acl_deluser(user)


def test_a_change_whose_stamp_redis_refuses_reaches_every_process_within_the_bound(
        crm: Crm, stampless: Stampless, mongo: Any, redis_client: redis.Redis) -> None:
    """The action edited through an API whose stamp Redis refuses: the change is marked
    in MongoDB before it is answered, and ``POLL_SECONDS`` later the next HANGUP on
    API 2, and every one after it, whichever worker sends it, goes to the new URL with
    the new body. Once Redis takes the stamp, the mark is gone."""
    crm.through_both_workers()
    crm.hold("moved")
    admin = Client(stampless.url, crm.tenant.admin.key, crm.tenant.admin.tenant)
    admin("mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i) { id } }",
          id=crm.action, i=crm_action(crm, "moved", "two")).data
    marks = mongo[crm.replicas.settings.system_database]["config_changes"]
    assert marks.find_one({"_id": crm.tenant.code}) is not None
    assert "could not stamp the change of tenant" in stampless.log.read_text()
    time.sleep(POLL_SECONDS)
    ids = crm.through_both_workers(crm.trigger().data["triggerEvent"])
    sent = crm.requests(ids)
    assert {delivery_of(r) for r in sent} == set(ids)
    assert {(r.path, r.body) for r in sent} == {(crm.path("moved"), b'{"v": "two"}')}
    redis_client.acl_setuser(stampless.user, commands=["+set"])
    wait_until(lambda: marks.find_one({"_id": crm.tenant.code}) is None, 10,
               "the mark removed once the stamp is written")
    assert "stamped the change of tenant" in stampless.log.read_text()


# ----------------------------------------------------------------------------------------


def test_an_idempotency_key_used_on_one_api_then_on_the_other_sends_once(
        replicas: Installation, tenant: TenantHandle, receiver: Receiver) -> None:
    """A PBX sends a HANGUP with a key to API 1, then the same to API 2: API 2 answers
    with the first trigger and its rows, saying they were sent earlier under this key.
    The same with a second key sent to both APIs at once: one of them records it, the
    other answers so. One row and one request per key."""
    path = f"/{tenant.code}/once"
    attach(tenant, "HANGUP", make_action(tenant, name="once", url=f"{receiver.url}{path}",
                                         signingSecret=SIGNING_SECRET))
    enable(tenant)
    pbx, _ = pbx_key(tenant)
    apis = [on_api(replicas, 0, pbx), on_api(replicas, 1, pbx)]

    def send(api: Client, key: str) -> dict[str, Any]:
        return api(TRIGGER, e="HANGUP", k=key).data["triggerEvent"]

    first, again = send(apis[0], "call-1-hangup"), send(apis[1], "call-1-hangup")
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(send, apis, ["call-2-hangup"] * 2))
    for replies in ([first, again], together):
        assert len({r["triggerId"] for r in replies}) == 1 and all(
            r["accepted"] for r in replies)
        assert len({tuple(a["id"] for a in r["activities"]) for r in replies}) == 1
        messages = sorted(r["activities"][0]["message"] for r in replies)
        assert messages[0] == "queued" and messages[1].startswith(
            "sent earlier under this idempotency key"), messages
    assert again["activities"][0]["message"] != "queued"  # API 2 said it was a repeat

    ids = [first["activities"][0]["id"], together[0]["activities"][0]["id"]]
    settled(tenant, ids)
    receiver.wait_for(path, 2)
    assert sorted(delivery_of(r) for r in receiver.received(path)) == sorted(ids)
    assert tenant.collection("activity").count_documents({"event": "HANGUP"}) == 2


def test_a_worker_killed_with_deliveries_in_flight_loses_none(
        replicas: Installation, tenant: TenantHandle, receiver: Receiver,
        redis_client: redis.Redis) -> None:
    """40 HANGUPs (to both APIs in turn) to a receiver that answers after 3 s; the
    worker holding the most of them is SIGKILLed with its process group. The other one
    goes on: it sends the 10 ANSWERED_CALLs triggered during the outage, and recovery
    (in it) queues the killed worker's deliveries again. Every delivery ends SUCCEEDED
    and arrives at least once; at-least-once allows a request that was under way at the
    kill to arrive twice, and only such (a row that counts the cut attempt: attempts 2).
    How many arrived twice is printed."""
    slow, fresh = f"/{tenant.code}/slow", f"/{tenant.code}/fresh"
    receiver.script(slow, *[Answer(delay=3.0)] * 200)
    attach(tenant, "HANGUP", make_action(tenant, name="slow", url=f"{receiver.url}{slow}",
                                         timeoutSeconds=5, signingSecret=SIGNING_SECRET))
    attach(tenant, "ANSWERED_CALL", make_action(
        tenant, name="fresh", url=f"{receiver.url}{fresh}", signingSecret=SIGNING_SECRET))
    enable(tenant)
    apis = [tenant.admin, on_api(replicas, 1, tenant.admin)]

    def send(event: str, count: int) -> list[str]:
        return [a["id"] for n in range(count) for a in apis[n % 2](
            TRIGGER, e=event).data["triggerEvent"]["activities"]]

    ids = send("HANGUP", 40)
    held = wait_until(lambda: len(found := {i: w for i, w in holders(
        replicas, redis_client).items() if i in ids}) >= 10 and found, 60,
        "10 deliveries in flight")
    victim, _ = Counter(held.values()).most_common(1)[0]
    in_flight = {i for i, w in held.items() if w == victim}
    replicas.kill_worker(victim)
    killed = time.monotonic()
    try:
        during = send("ANSWERED_CALL", 10)
        receiver.wait_for(fresh, 10, timeout=60)
        outage = time.monotonic() - killed
        assert {r["status"] for r in settled(tenant, during)} == {"SUCCEEDED"}
        rows = settled(tenant, ids, timeout=180)
    finally:
        replicas.start_worker(victim)
    assert len(rows) == 40 and {r["status"] for r in rows} == {"SUCCEEDED"}
    arrived = Counter(delivery_of(r) for r in receiver.received(slow))
    assert set(arrived) == set(ids)  # each at least once
    twice = {i for i, n in arrived.items() if n > 1}
    cut = {str(r["_id"]) for r in rows if r["attempts"] > 1}
    assert twice <= cut and max(arrived.values()) <= 2, (arrived, cut)
    print(f"worker {victim + 1} killed holding {len(in_flight)} of 40 deliveries; the other "
          f"sent the 10 triggered meanwhile within {outage:.1f} s; {len(cut)} attempts were "
          f"cut and sent again, {len(twice)} deliveries arrived twice")
