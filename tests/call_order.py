"""Calls through an installation, checked for order: the soak of per-call order, shared by
``tests/test_call_order.py`` (small, in the suite) and ``bench/calls.py`` (10,000 calls,
by hand).

Each simulated call sends Ringing, Answered Call and Hangup, in that order, one after
the other's answer, with the call's ``call_id``. The tenant has two actions attached to
the three events, one ``PER_CALL`` and one ``ANY``; both GET a receiver that answers
503 at random (20 % by default) after a random delay. Worker processes are killed while
the calls run. Then, per call and action, the receiver's arrivals must be in the order
of the events (a repeat of the same event is at-least-once, not disorder), and every
accepted delivery must have ended, each SUCCEEDED one having arrived.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pymongo
from aiohttp import web

from tests.cluster import Cluster
from tests.fault_receiver import ThreadedReceiver

EVENTS = ("RINGING", "ANSWERED_CALL", "HANGUP")
ORDERS = ("PER_CALL", "ANY")
ENDED = ("SUCCEEDED", "FAILED", "EXPIRED")


@dataclass(frozen=True)
class Arrival:
    order: str
    """The action's policy order: which action it was sent to."""
    call: str
    step: int
    """0, 1, 2: the index of the event in ``EVENTS``."""
    status: int


class CallReceiver(ThreadedReceiver):
    """``/<order>?call=..&step=..`` answers 503 with probability ``fail`` (else 200)
    after a delay drawn up to ``max_delay`` seconds. Arrivals are kept in the order the
    requests came in."""

    name = "call-receiver"

    def __init__(self, fail: float = 0.2, max_delay: float = 0.1, seed: int = 1) -> None:
        super().__init__()
        self.fail, self.max_delay = fail, max_delay
        self.random = random.Random(seed)
        self.arrivals: list[Arrival] = []

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/{order}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        with self.lock:  # drawn and recorded in arrival order
            status = 503 if self.random.random() < self.fail else 200
            delay = self.random.uniform(0, self.max_delay)
            self.arrivals.append(Arrival(request.match_info["order"],
                                         request.query.get("call", ""),
                                         int(request.query.get("step", "-1")), status))
        await asyncio.sleep(delay)
        return web.Response(status=status, text="ok" if status == 200 else "try later")

    def snapshot(self) -> list[Arrival]:
        with self.lock:
            return list(self.arrivals)


def make_tenant(cluster: Cluster, code: str, receiver_url: str) -> dict[str, str]:
    """A tenant with one action per order, both attached to the three events; order →
    action id."""
    cluster.must("mutation($c: String!) { createTenant(code: $c, name: $c) { code } }", c=code)
    cluster.must("mutation($c: String!) { setEventManagerEnabled(code: $c, enabled: true) "
                 "{ code } }", c=code)
    actions = {}
    for order in ORDERS:
        made = cluster.must(
            "mutation($i: ActionInput!) { createAction(input: $i) { id } }", code,
            i={"name": f"calls {order}", "method": "GET", "timeoutSeconds": 5,
               "url": f"{receiver_url}/{order}?call={{{{call_id}}}}&step={{{{step}}}}",
               "policy": {"order": order}})
        actions[order] = made["createAction"]["id"]
    for event in EVENTS:
        cluster.must("mutation($t: EventType!, $ids: [ID!]) { updateEvent(type: $t, input: "
                     "{active: true, actionIds: $ids}) { type } }", code, t=event,
                     ids=list(actions.values()))
    cluster.must("mutation { updateSettings(input: {actionsEnabled: true}) "
                 "{ actionsEnabled } }", code)
    return actions


@dataclass
class Calls:
    """Simulated calls sent by ``threads`` threads: each thread keeps up to ``open_calls``
    calls in progress and sends, per request (``triggerEvents``), the next event of each,
    so a call's events are accepted in order, interleaved with other calls'."""

    cluster: Cluster
    tenant: str
    total: int
    threads: int = 2
    open_calls: int = 10
    accepted: dict[str, list[str]] = field(default_factory=dict)
    """call id → the trigger ids of its events, in order, as accepted."""
    refused: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    taken: int = 0

    def run(self, while_sending: Callable[[], None] = lambda: None) -> None:
        """Send every call; ``while_sending`` runs meanwhile (faults), on this thread."""
        senders = [threading.Thread(target=self._send, name=f"calls-{n}", daemon=True)
                   for n in range(self.threads)]
        for sender in senders:
            sender.start()
        while_sending()
        for sender in senders:
            sender.join()
        if self.errors:
            raise self.errors[0]

    def sending(self) -> bool:
        with self.lock:
            return self.taken < self.total or any(
                len(ids) < len(EVENTS) for ids in self.accepted.values())

    def _take(self) -> str | None:
        with self.lock:
            if self.taken >= self.total:
                return None
            self.taken += 1
            return secrets.token_hex(8)

    def _send(self) -> None:
        steps: dict[str, int] = {}
        with httpx.Client(timeout=120) as http:
            try:
                while True:
                    while len(steps) < self.open_calls and (call := self._take()) is not None:
                        steps[call] = 0
                    if not steps:
                        return
                    self._batch(http, steps)
            except BaseException as exc:  # the test fails on it
                self.errors.append(exc)

    def _batch(self, http: httpx.Client, steps: dict[str, int]) -> None:
        calls = list(steps)
        inputs = [{"event": EVENTS[steps[c]], "params": {"call_id": c, "step": str(steps[c])}}
                  for c in calls]
        body = self.cluster.gql("mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) "
                                "{ triggerId accepted reason } }", self.tenant, http=http,
                                timeout=120, i=inputs)
        if body.get("errors"):  # refused as a whole (a fault): the calls end there
            with self.lock:
                self.refused += calls
            for call in calls:
                del steps[call]
            return
        for call, result in zip(calls, body["data"]["triggerEvents"], strict=True):
            assert result["accepted"], result["reason"]
            with self.lock:
                self.accepted.setdefault(call, []).append(result["triggerId"])
            steps[call] += 1
            if steps[call] == len(EVENTS):
                del steps[call]


@dataclass
class OrderReport:
    calls: int
    deliveries: int
    """Accepted deliveries (rows) of both actions."""
    statuses: Counter[str]
    out_of_order: dict[str, int]
    """Order → the calls whose arrivals at the receiver went back to an earlier event."""
    lost: list[str]
    """Deliveries that ended SUCCEEDED without arriving, or never ended."""
    repeats: dict[str, int]
    """Order → deliveries that arrived 2xx more than once (at-least-once, after kills)."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """Order → a few calls out of order: the call id, then each arrival as step:status."""

    @property
    def settled(self) -> bool:
        return sum(self.statuses[s] for s in ENDED) == self.deliveries

    def summary(self) -> str:
        statuses = ", ".join(f"{s} {n}" for s, n in sorted(self.statuses.items()))
        return "\n".join([
            f"calls accepted:    {self.calls} ({self.deliveries} deliveries: {statuses})",
            *(f"out of order ({order}): {self.out_of_order[order]} calls; repeated "
              f"2xx: {self.repeats[order]}" for order in ORDERS),
            f"lost:              {len(self.lost)}" + (f" (e.g. {self.lost[:3]})"
                                                       if self.lost else ""),
            *(f"PER_CALL out of order, e.g. {e}" for e in self.examples.get("PER_CALL", [])),
        ])


def report(db: pymongo.database.Database, tenant: str, actions: dict[str, str],
           calls: Calls, arrivals: list[Arrival]) -> OrderReport:
    """Rows and arrivals of the calls whose three events were accepted."""
    whole = {c: ids for c, ids in calls.accepted.items() if len(ids) == len(EVENTS)}
    triggers = {t for ids in calls.accepted.values() for t in ids}
    order_of = {action_id: order for order, action_id in actions.items()}
    rows = list(db[f"t_{tenant}_activity"].find(
        {"trigger_id": {"$in": list(triggers)}},
        {"trigger_id": 1, "status": 1, "action_id": 1, "params.call_id": 1, "params.step": 1}))
    statuses = Counter(r["status"] for r in rows)
    arrived = Counter((a.order, a.call, a.step) for a in arrivals if a.status == 200)
    lost = [f"trigger {t}: no row" for t in sorted(triggers - {r["trigger_id"] for r in rows})]
    for row in rows:
        key = (order_of.get(str(row["action_id"]), "?"), row["params"]["call_id"],
               int(row["params"]["step"]))
        if row["status"] not in ENDED or (row["status"] == "SUCCEEDED" and not arrived[key]):
            lost.append(f"{row['_id']} {row['status']} {key}")
    out_of_order, examples = {}, {}
    for order in ORDERS:
        seen: dict[str, list[int]] = defaultdict(list)
        for a in arrivals:
            if a.order == order and a.call in whole:
                seen[a.call].append(a.step)
        disordered = [call for call, steps in seen.items()
                      if any(b < a for a, b in zip(steps, steps[1:], strict=False))]
        out_of_order[order] = len(disordered)
        examples[order] = [f"{call}: " + " ".join(f"{a.step}:{a.status}" for a in arrivals
                                                   if a.order == order and a.call == call)
                           for call in disordered[:5]]
    repeats = {order: sum(1 for (o, _, _), n in arrived.items() if o == order and n > 1)
               for order in ORDERS}
    return OrderReport(len(whole), len(rows), statuses, out_of_order, lost, repeats, examples)
