"""The installation at rest (scenario 10): CPU with no traffic at all.

Once the stack has settled (no request reached the receiver for ``SETTLE_SECONDS``: the
deliveries of earlier scenarios are over and the worker's consumer waits on its queue's
doorbell, ``dispatch/doorbell.py``), the CPU of every process of the installation
(API, worker, FerretDB, Redis, each with its children) is read over
``Sizes.idle_seconds``. FerretDB and Redis are shared with the machine's other users:
their share includes whatever those did meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.context import Bench
from bench.probes import INSTALLATION, CpuMeter

SETTLE_SECONDS = 5.0
SETTLE_TIMEOUT = 120.0


async def settle(bench: Bench) -> float:
    """Wait until nothing reached the receiver for ``SETTLE_SECONDS`` (at most
    ``SETTLE_TIMEOUT``); the seconds waited."""
    began = time.monotonic()
    last, quiet_since = -1, began
    while time.monotonic() - began < SETTLE_TIMEOUT:
        count = (await bench.receiver.stats())["count"]
        if count != last:
            last, quiet_since = count, time.monotonic()
        elif time.monotonic() - quiet_since >= SETTLE_SECONDS:
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - began


async def scenario_10(bench: Bench) -> dict[str, Any]:
    stack, seconds = bench.stack, bench.sizes.idle_seconds
    settled = await settle(bench)
    meter = CpuMeter(stack.pids()).start()
    await asyncio.sleep(seconds)
    cores = meter.stop()
    return {"seconds": seconds, "settle_seconds": SETTLE_SECONDS,
            "settled_after_s": round(settled, 1),
            "worker_processes": stack.worker_processes,
            "installation_cores": cores["installation"], "cpu_cores": cores,
            "cpu_s": {name: round(meter.seconds.get(name, 0.0), 3)
                      for name in ("installation", *INSTALLATION)}}
