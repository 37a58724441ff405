"""Soak under faults, run by hand: many triggers over many tenants while workers are
killed, Redis and FerretDB restarted and receivers misbehave; then the reconciliation of
``tests/test_faults.py`` over everything the API accepted.

    .venv/bin/python bench/soak.py [--triggers 10000] [--tenants 20] [--seed 1]

Starts its own FerretDB and Redis (free ports, a temporary folder), one API process, two
worker processes and a receiver on 127.0.0.1; stops them at the end. Prints the fault
timeline, then a summary: accepted, refused, delivered, failed by reason, duplicates,
lost. Exits 1 when an accepted delivery is lost or unfinished, or a duplicate has no
worker kill to explain it.
"""

from __future__ import annotations

import argparse
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pymongo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster import Cluster  # noqa: E402
from tests.fault_receiver import FaultReceiver  # noqa: E402
from tests.reconcile import WORKER_KILLED, Fault, Sent, reconcile, settle  # noqa: E402

RECEIVERS = [("ok", 5.0)] * 10 + [("slow", 5.0)] * 3 + [
    ("flaky", 5.0), ("limited", 5.0), ("reset", 5.0), ("down", 5.0), ("gone", 5.0),
    ("hang", 1.0)]
"""Each action's receiver, drawn at random: mostly good, some slow, some bad."""
FAULTS = (WORKER_KILLED, "redis restarted", "mongodb restarted")


class Soak:
    def __init__(self, args: argparse.Namespace, cluster: Cluster,
                 receiver: FaultReceiver) -> None:
        self.args, self.cluster, self.receiver = args, cluster, receiver
        self.random = random.Random(args.seed)
        self.paths: dict[str, dict[str, str]] = {}
        self.sent: list[Sent] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.sending = threading.Event()
        self.taken = 0
        """Triggers handed to senders so far."""
        self.sending_since = time.monotonic()

    def say(self, line: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {line}", flush=True)

    def setup(self) -> None:
        for n in range(self.args.tenants):
            code = f"soak{n:02d}"
            actions = [self.random.choice(RECEIVERS) for _ in range(self.args.actions)]
            self.paths[code] = self.cluster.make_tenant(code, actions, self.receiver.url)
        modes = sorted(p.split("/")[1] for paths in self.paths.values() for p in paths.values())
        self.say(f"{len(self.paths)} tenants, actions by receiver: "
                 + ", ".join(f"{m} {modes.count(m)}" for m in dict.fromkeys(modes)))

    def send(self, seed: int) -> None:
        """One sender thread: batches to random tenants until the total is reached."""
        pick = random.Random(seed)
        with httpx.Client() as http:
            while True:
                with self.lock:
                    size = min(self.args.triggers - self.taken, self.args.batch)
                    self.taken += max(0, size)
                if size <= 0:
                    return
                self.pace()
                tenant = pick.choice(list(self.paths))
                calls = [secrets.token_hex(8) for _ in range(size)]
                try:
                    sent = self.cluster.trigger(tenant, calls, timeout=60, http=http)
                except httpx.HTTPError as exc:  # no answer: maybe accepted, maybe not
                    sent = [Sent(tenant, c, accepted=False,
                                 refusal=f"no answer ({type(exc).__name__})") for c in calls]
                with self.lock:
                    self.sent += sent

    def pace(self) -> None:
        """Keep to ``--rate`` triggers a second, so that faults fall among the triggers."""
        with self.lock:
            due = self.sending_since + self.taken / self.args.rate
        time.sleep(max(0.0, due - time.monotonic()))

    def inject(self) -> None:
        """A fault every ``--fault-every`` seconds (± half), each kind in turn."""
        kinds: list[str] = []
        while self.sending.is_set():
            time.sleep(self.args.fault_every * self.random.uniform(0.5, 1.5))
            if not self.sending.is_set():
                return
            if not kinds:
                kinds = list(self.args.faults)
            kind = kinds.pop(self.random.randrange(len(kinds)))
            self.faults.append(Fault(kind, time.monotonic()))
            with self.lock:
                so_far = len(self.sent)
            self.say(f"{kind} (after {so_far} triggers, {self.receiver.in_flight()} requests "
                     "in flight)")
            try:
                self.fault(kind)
            except Exception as exc:  # keep sending; the summary shows what happened
                self.say(f"injecting {kind} failed: {exc}")
            self.faults[-1].end()

    def fault(self, kind: str) -> None:
        if kind == WORKER_KILLED:
            self.cluster.kill_worker(self.random.choice(self.cluster.workers))
            self.cluster.start_worker()
        elif kind == "redis restarted":
            self.cluster.stop_redis()
            time.sleep(self.random.uniform(0.5, 3))
            self.cluster.start_redis()
        else:
            self.cluster.stop_mongodb()
            time.sleep(self.random.uniform(0.5, 3))
            self.cluster.start_mongodb()

    def run(self) -> bool:
        self.setup()
        self.say(f"sending {self.args.triggers} triggers in batches of {self.args.batch} "
                 f"from {self.args.senders} threads")
        self.sending.set()
        self.sending_since = time.monotonic()
        chaos = threading.Thread(target=self.inject, name="faults")
        chaos.start()
        senders = [threading.Thread(target=self.send, args=(self.args.seed * 100 + i,))
                   for i in range(self.args.senders)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        self.sending.clear()
        sent_in = time.monotonic() - self.sending_since
        self.say(f"all triggers sent ({len(self.sent) / sent_in:.0f}/s); waiting for the "
                 "deliveries to settle")
        chaos.join()

        client: pymongo.MongoClient = pymongo.MongoClient(self.cluster.settings.mongodb_url)
        db = client[self.cluster.settings.tenant_database]
        try:
            report = settle(lambda: reconcile(db, self.sent, self.paths,
                                              self.receiver.snapshot(), self.faults),
                            self.args.settle, interval=5)
            time.sleep(self.cluster.settings.recovery_seconds * 3)  # a late second send?
            report = reconcile(db, self.sent, self.paths, self.receiver.snapshot(),
                               self.faults)
        finally:
            client.close()
        self.say("settled" if report.settled else "NOT settled")
        kinds = ", ".join(f"{sum(f.kind == k for f in self.faults)} {k}" for k in FAULTS)
        print(f"\nfaults injected:   {kinds}")
        print(report.summary())
        problems = report.problems(duplicates_allowed=True)
        print("lost = 0:          " + ("yes" if not report.lost and report.settled else "NO"))
        for problem in problems:
            print(f"PROBLEM: {problem}")
        return not problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--actions", type=int, default=2, help="actions per tenant")
    parser.add_argument("--batch", type=int, default=20, help="triggers per triggerEvents")
    parser.add_argument("--rate", type=float, default=50.0, help="triggers a second at most")
    parser.add_argument("--senders", type=int, default=3, help="sending threads")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--fault-every", type=float, default=15.0, help="seconds")
    parser.add_argument("--faults", type=lambda text: [f.strip() for f in text.split(",")],
                        default=list(FAULTS), help=f"which, comma-separated: {', '.join(FAULTS)}")
    parser.add_argument("--recovery-seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=900.0,
                        help="seconds to wait for deliveries after the last trigger")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if unknown := set(args.faults) - set(FAULTS):
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")

    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    cluster = Cluster(folder, recovery_seconds=args.recovery_seconds)
    receiver = FaultReceiver(slow_seconds=1.0, hang_seconds=5.0).start()
    soak = Soak(args, cluster, receiver)
    try:
        cluster.start_services()
        cluster.start_api()
        for _ in range(args.workers):
            cluster.start_worker()
        soak.say(f"up: API {cluster.api_url}, {args.workers} workers, retry schedule "
                 f"{cluster.settings.retry_schedule}, recovery {args.recovery_seconds:g} s, "
                 f"logs in {folder / 'logs'}")
        ok = soak.run()
    finally:
        cluster.stop()
        receiver.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    soak.say(f"done in {time.monotonic() - soak.started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
