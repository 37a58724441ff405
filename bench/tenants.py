"""Thousands of tenants (scenario 13, issue 18): what an installation costs per tenant,
and whether a trigger is slower when its tenant is one of many.

1. ``alone``: one tenant (three actions, one of them on Hangup, and two parameters),
   timed at ``RATE`` triggers/s for ``Sizes.tenant_seconds``.
2. ``Sizes.tenants - 1`` more tenants, each made as an admin would (``createTenant``,
   three actions, two parameters, the event attached, a PBX key), timed: the
   ``createTenant`` call alone and the whole set-up; at each checkpoint the API's and the
   worker's RSS, FerretDB's RSS, and the size of the SQLite file of the tenants'
   database (its write-ahead log included).
3. ``spread_cold``: triggers at ``RATE``, each to the next tenant in turn, so that every
   tenant's first trigger since it was made comes in this window: each API and worker
   process loads each tenant's configuration once here. The processes' RSS is sampled
   throughout this pass and the next ones (``curve``, by triggers sent): it grows until
   ``EVENT_MANAGER_CACHED_TENANTS`` of them are held, then stays flat.
4. ``spread_warm``: the same again, every tenant now known (or, past the bound, read
   again: the least recently used were dropped); ``Sizes.tenant_passes`` - 2 more such
   passes (``spread_more``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench import load, probes
from bench.context import Bench
from bench.fairness import TRIGGER_EVENT
from bench.stack import Stack, Tenant

RATE = 50.0
"""Triggers per second in the timed windows."""
CHECKPOINTS = (1, 10, 100, 250, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000)
PARAMETERS = ("crm_team", "crm_region")


async def scenario_13(bench: Bench) -> dict[str, Any]:
    stack, sizes = bench.stack, bench.sizes
    total = max(2, sizes.tenants)
    tag = bench.code("s13")
    made: list[Tenant] = []
    first, _ = await make(bench, f"{tag}x0")
    made.append(first)
    alone = await spread(bench, [first], sizes.tenant_seconds, 0)
    checkpoints = [await checkpoint(stack, 1, [], [])]
    creates: list[float] = []
    setups: list[float] = []
    began = time.monotonic()
    for i in range(1, total):
        tenant, (create_s, setup_s) = await make(bench, f"{tag}x{i}")
        made.append(tenant)
        creates.append(create_s)
        setups.append(setup_s)
        if i + 1 in CHECKPOINTS or i + 1 == total:
            since = checkpoints[-1]["tenants"]
            checkpoints.append(await checkpoint(stack, i + 1, creates[since - 1:],
                                                setups[since - 1:]))
            point = checkpoints[-1]
            print(f"  {i + 1} tenants ({time.monotonic() - began:.0f} s): createTenant p50 "
                  f"{point['create_tenant_ms']['p50']} ms, set-up p50 "
                  f"{point['setup_ms']['p50']} ms; RSS MB API {point['api_rss_mb']}, worker "
                  f"{point['worker_rss_mb']}, FerretDB {point['ferretdb_rss_mb']}; SQLite "
                  f"{point['ferretdb_file_mb']} MB", flush=True)
    seconds = max(sizes.tenant_seconds, len(made) / RATE)
    curve: list[dict[str, Any]] = []
    cold = await spread(bench, made, seconds, 1_000_000, curve)
    warm = await spread(bench, made, seconds, 2_000_000, curve)
    more = [await spread(bench, made, seconds, (3 + n) * 1_000_000, curve)
            for n in range(sizes.tenant_passes - 2)]
    return {
        "tenants": len(made), "rate": RATE,
        "cached_tenants": stack.settings.cached_tenants,
        "alone": alone, "spread_cold": cold, "spread_warm": warm,
        "spread_more": [{"latency_ms": p["latency_ms"], "cpu_cores": p["cpu_cores"]}
                        for p in more],
        "ratio_p99_cold": ratio(cold, alone, "p99"), "ratio_p99_warm": ratio(warm, alone, "p99"),
        "ratio_p50_warm": ratio(warm, alone, "p50"),
        "create_tenant_ms": load.summary_ms(creates), "setup_ms": load.summary_ms(setups),
        "creation_seconds": round(time.monotonic() - began, 1),
        "checkpoints": checkpoints, "curve": curve,
        "cpu_cores": warm["cpu_cores"],
    }


async def make(bench: Bench, code: str) -> tuple[Tenant, tuple[float, float]]:
    """A tenant as an admin makes one: seconds ``createTenant`` took, and the whole."""
    stack = bench.stack
    began = time.monotonic()
    await stack.gql('mutation($c: String!) { createTenant(code: $c, name: $c) { code } '
                    'setEventManagerEnabled(code: $c, enabled: true) { code } }', c=code)
    created = time.monotonic()
    for tag in PARAMETERS:
        await stack.gql("mutation($i: ParameterInput!) { createParameter(input: $i) { tag } }",
                        tenant=code, i={"tag": tag, "value": f"{tag} of {code}"})
    ids = []
    for name, path in (("crm", "a0"), ("ticket", "t"), ("sms", "s")):
        made = await stack.gql(
            "mutation($i: ActionInput!) { createAction(input: $i) { id } }", tenant=code,
            i={"name": name, "url": bench.receiver.url(f"/{code}/{path}"), "bodyType": "RAW",
               "rawContentType": "application/json",
               "rawBody": '{"seq": "{{seq}}", "sent": "{{sent}}", "team": "{{crm_team}}"}'})
        ids.append(made["createAction"]["id"])
    await stack.gql("mutation($ids: [ID!]) { updateEvent(type: HANGUP, input: {active: true, "
                    "actionIds: $ids}) { type } updateSettings(input: {actionsEnabled: true}) "
                    "{ timezone } }", tenant=code, ids=ids[:1])
    keys = await stack.gql('mutation($t: String) { createApiKey(role: PBX, label: "bench", '
                           'tenant: $t) { key } }', t=code)
    done = time.monotonic()
    return (Tenant(code, keys["createApiKey"]["key"], "", ids),
            ((created - began) * 1000, (done - began) * 1000))


async def spread(bench: Bench, tenants: list[Tenant], seconds: float, first_seq: int,
                 curve: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Triggers at ``RATE`` for ``seconds``, trigger ``i`` to ``tenants[i % n]``:
    trigger → receipt latencies, and CPU. With ``curve``, the processes' RSS is sampled
    into it with how many tenants had been triggered (counted on from the curve's last
    sample: a second pass goes on from ``len(tenants)``)."""
    stack, receiver = bench.stack, bench.receiver
    await receiver.reset()
    sent = 0
    before = curve[-1]["triggered"] if curve else 0

    async def one(i: int) -> None:
        nonlocal sent
        sent = max(sent, i + 1)
        tenant = tenants[i % len(tenants)]
        await stack.gql(TRIGGER_EVENT, key=tenant.key, i={"event": "HANGUP", "params": {
            "seq": first_seq + i, "sent": str(time.monotonic_ns()),
            "caller_id": "+38761111222"}})

    async def sample() -> None:
        assert curve is not None
        while True:
            curve.append({"triggered": before + sent, **rss_mb(stack)})
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample()) if curve is not None else None
    meter = probes.CpuMeter(stack.pids()).start()
    try:
        paced = await load.open_loop(one, RATE, seconds, max_outstanding=round(RATE * 2))
        total = len(paced.latencies) + paced.errors
        await receiver.wait_for(total, timeout=60)
    finally:
        if sampler is not None:
            sampler.cancel()
    cpu = meter.stop()
    if curve is not None:
        curve.append({"triggered": before + sent, **rss_mb(stack)})
    stats = await receiver.stats(latencies=True)
    latencies = [us / 1000 for seq, us in stats["latencies_us"] if seq >= first_seq]
    return {"tenants": len(tenants), "triggers": total, "errors": paced.errors,
            "stopped_early": paced.aborted, "started_rate": round(paced.rate, 1),
            "received": len(latencies), "latency_ms": load.summary_ms(latencies),
            "trigger_event_ms": load.summary_ms(paced.latencies), "cpu_cores": cpu}


async def checkpoint(stack: Stack, count: int, creates: list[float],
                     setups: list[float]) -> dict[str, Any]:
    return {"tenants": count, "create_tenant_ms": load.summary_ms(creates),
            "setup_ms": load.summary_ms(setups), **rss_mb(stack),
            "ferretdb_file_mb": sqlite_mb(stack)}


def rss_mb(stack: Stack) -> dict[str, float | None]:
    """RSS in MB of the API, the worker's process that sends first attempts, the
    worker's main process, and FerretDB (shared: other databases' work included)."""
    pids = stack.pids()
    found = {"api_rss_mb": pids.get("api"), "worker_rss_mb": stack.worker_pid()
             if stack.worker is not None else None,
             "worker_main_rss_mb": pids.get("worker"), "ferretdb_rss_mb": pids.get("ferretdb")}
    return {name: round(probes.memory_kb(pid).get("VmRSS", 0) / 1024, 1)
            if pid is not None else None for name, pid in found.items()}


def sqlite_mb(stack: Stack) -> float | None:
    """The size of FerretDB's SQLite files of the tenants' databases, with their WAL and
    shared-memory files; None when FerretDB's folder is not this project's."""
    folder = Path(stack.settings.state_path) / "ferretdb" / "sqlite"
    files = [found for name in stack.settings.tenant_database_names
             for found in folder.glob(f"{name}.sqlite*")]
    if not files:
        return None
    return round(sum(f.stat().st_size for f in files) / 2**20, 1)


def ratio(loaded: dict[str, Any], alone: dict[str, Any], key: str) -> float | None:
    a, b = loaded["latency_ms"][key], alone["latency_ms"][key]
    return round(a / b, 2) if a is not None and b else None
