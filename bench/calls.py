"""Per-call order soak, run by hand (issue 16): simulated calls (Ringing, Answered,
Hangup, each with the call's ``call_id``) through two worker processes to a receiver that
answers 503 at random (20 %) and delays at random, while worker processes are killed.

    .venv/bin/python bench/calls.py [--calls 10000] [--workers 2] [--kill-every 20]

Starts its own FerretDB and Redis (free ports, a temporary folder), one API process, the
worker processes and the receiver on 127.0.0.1; stops them at the end. One tenant, two
actions attached to the three events: one PER_CALL, one ANY. Prints, per action, the
calls whose arrivals at the receiver went back to an earlier event, and the deliveries
lost. Exits 1 when a PER_CALL call is out of order, a delivery is lost or unfinished, or
the ANY action shows no reordering (the check could not have failed).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pymongo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.call_order import CallReceiver, Calls, make_tenant, report  # noqa: E402
from tests.cluster import Cluster  # noqa: E402
from tests.reconcile import settle  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--senders", type=int, default=4, help="sending threads")
    parser.add_argument("--open-calls", type=int, default=10,
                        help="calls in progress per sending thread")
    parser.add_argument("--fail", type=float, default=0.2, help="share of 503 answers")
    parser.add_argument("--max-delay", type=float, default=0.2,
                        help="the receiver's longest random delay, in seconds")
    parser.add_argument("--kill-every", type=float, default=20.0,
                        help="seconds between worker kills (± half); 0: none")
    parser.add_argument("--settle", type=float, default=900.0,
                        help="seconds the deliveries may take to end after the last call")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="em-calls-"))
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {line}", flush=True)

    cluster = Cluster(root, retry_schedule="1,2,4,8", recovery_seconds=10.0)
    receiver = CallReceiver(args.fail, args.max_delay, args.seed).start()
    pick = random.Random(args.seed)
    kills = 0
    try:
        cluster.start_services()
        cluster.start_api()
        for _ in range(args.workers):
            cluster.start_worker()
        actions = make_tenant(cluster, "calls", receiver.url)
        calls = Calls(cluster, "calls", args.calls, threads=args.senders,
                      open_calls=args.open_calls)
        say(f"sending {args.calls} calls (3 events each) from {args.senders} threads; "
            f"{args.workers} workers; 503 {args.fail:.0%}; delays up to {args.max_delay} s")

        def kill_workers() -> None:
            nonlocal kills
            while args.kill_every > 0 and calls.sending():
                time.sleep(args.kill_every * pick.uniform(0.5, 1.5))
                if not calls.sending():
                    return
                cluster.kill_worker(pick.choice(cluster.workers))
                cluster.start_worker()
                kills += 1
                say(f"worker killed and replaced ({len(calls.accepted)} calls begun, "
                    f"{len(receiver.snapshot())} requests received)")

        calls.run(while_sending=kill_workers)
        sent_in = time.monotonic() - started
        say(f"all calls sent; {kills} workers killed; waiting for the deliveries to end")
        client: pymongo.MongoClient = pymongo.MongoClient(cluster.settings.mongodb_url)
        try:
            db = client[cluster.settings.tenant_database]
            found = settle(lambda: report(db, "calls", actions, calls, receiver.snapshot()),
                           args.settle, interval=5)
            time.sleep(cluster.settings.recovery_seconds * 2)  # a late second send?
            found = report(db, "calls", actions, calls, receiver.snapshot())
        finally:
            client.close()
    finally:
        cluster.stop()
        receiver.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(found.summary())
    print(f"workers killed:    {kills}")
    problems = []
    if not found.settled:
        problems.append("not every delivery ended")
    if found.lost:
        problems.append(f"{len(found.lost)} deliveries lost")
    if found.out_of_order["PER_CALL"]:
        problems.append(f"{found.out_of_order['PER_CALL']} PER_CALL calls out of order")
    if not found.out_of_order["ANY"]:
        problems.append("the ANY action kept every call in order: the check proves nothing")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"calls-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({
        "options": vars(args), "calls": found.calls, "deliveries": found.deliveries,
        "statuses": dict(found.statuses), "out_of_order": found.out_of_order,
        "repeats": found.repeats, "lost": len(found.lost), "workers_killed": kills,
        "sending_seconds": round(sent_in, 1), "problems": problems}, indent=2) + "\n")
    print(f"result: {out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
