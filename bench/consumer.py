"""The broker alone (issue 15): a Dramatiq worker process with the service's broker
(``dispatch/broker.py``) and a no-op actor, fed messages at a steady rate on a Redis of
its own; the CPU of the worker and of Redis, and enqueue → actor latency.

``python -m bench.consumer --rate 200 --seconds 10``. First 5 s with no traffic (idle
CPU), then the rate. Messages are sent with the broker's own enqueue (which rings the
queue's doorbell); the actor notes ``time.time() - sent`` in a Redis list.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dramatiq
import redis

from bench.probes import cpu_seconds, listening_pid
from dispatch.broker import create_broker
from event_manager.config import Settings
from tests.support import redis_server

QUEUE = "bench-consumer"
WORKER = f"""
import sys, time, dramatiq, redis
from dispatch.broker import create_broker
from event_manager.config import Settings
broker = create_broker(Settings(broker_url=sys.argv[1]))
noted = redis.Redis.from_url(sys.argv[1])
@dramatiq.actor(broker=broker, queue_name={QUEUE!r}, actor_name="noop")
def noop(sent):
    noted.rpush("latency", time.time() - sent)
worker = dramatiq.Worker(broker, worker_threads=4)
worker.start()
print("ready", flush=True)
sys.stdin.read()
worker.stop()
"""


def measure(url: str, worker: int, rate: float, seconds: float) -> str:
    broker = create_broker(Settings(broker_url=url))
    broker.declare_queue(QUEUE)
    client = redis.Redis.from_url(url)
    server = listening_pid(int(url.rsplit(":", 1)[1].split("/")[0]))
    client.delete("latency")
    worker_before, redis_before = cpu_seconds(worker), cpu_seconds(server) if server else 0.0
    started, sent = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        if rate:
            broker.enqueue(dramatiq.Message(queue_name=QUEUE, actor_name="noop",
                                            args=(time.time(),), kwargs={}, options={}))
            sent += 1
            time.sleep(max(0.0, started + sent / rate - time.monotonic()))
        else:
            time.sleep(0.1)
    time.sleep(0.5)
    wall = time.monotonic() - started
    latencies = sorted(float(x) * 1000 for x in client.lrange("latency", 0, -1))
    worker_cores = ((cpu_seconds(worker) or 0.0) - (worker_before or 0.0)) / wall
    redis_cores = ((cpu_seconds(server) or 0.0) - (redis_before or 0.0)) / wall if server else 0
    line = f"rate {rate:g}/s: worker {worker_cores:.3f} cores, Redis {redis_cores:.3f} cores"
    if latencies:
        line += (f", enqueue → actor p50 {statistics.median(latencies):.2f} ms, p95 "
                 f"{latencies[int(len(latencies) * 0.95)]:.2f} ms ({len(latencies)} messages)")
    client.close()
    broker.close()
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    with redis_server(Path(tempfile.mkdtemp(prefix="bench-consumer-"))) as url:
        worker = subprocess.Popen([sys.executable, "-c", WORKER, url], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
            time.sleep(2)
            print(measure(url, worker.pid, 0.0, 5.0), flush=True)
            print(measure(url, worker.pid, args.rate, args.seconds), flush=True)
        finally:
            assert worker.stdin is not None
            worker.stdin.close()
            worker.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
