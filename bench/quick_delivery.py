"""A quick hand-run measure of deliveries per second for one worker process: scenario 1
of the bench (``python -m bench``) with sizes of your choosing.

    .venv/bin/python bench/quick_delivery.py [--triggers 2000] [--fanout 1] [--delay 0]

Starts its own API and worker (database prefix ``bench_<random>``) against the local
services and a receiver process, feeds triggers through ``triggerEvents`` in batches,
and times first trigger → last request received; then a bare aiohttp client sends the
same requests to the same receiver at the worker's concurrency: the raw ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.context import Sizes  # noqa: E402
from bench.delivery import throughput  # noqa: E402
from bench.run import system  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--triggers", type=int, default=2000)
    parser.add_argument("--fanout", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0, help="receiver delay, seconds")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    async with system(Sizes(), profile=False, worker_threads=args.threads) as bench:
        result = await throughput(bench, name="quick", deliveries=args.triggers * args.fanout,
                                  fanout=args.fanout, delay_ms=round(args.delay * 1000))
    feed = result["feed"]
    print(f"triggers={feed['triggers']} fanout={args.fanout} receiver_delay={args.delay}s "
          f"threads={args.threads}")
    print(f"  intake: {feed['triggers_per_s']:,.0f} triggers/s through triggerEvents")
    print(f"  delivered {result['unique']} of {result['expected']} in {result['seconds']:.2f} s: "
          f"{result['deliveries_per_s']:,.0f} deliveries/s")
    ceiling = result["raw_ceiling"]
    print(f"  raw aiohttp ceiling (concurrency {ceiling['concurrency']}): "
          f"{ceiling['requests_per_s']:,.0f} requests/s")


if __name__ == "__main__":
    asyncio.run(main())
