"""What every scenario is handed: the system under test, the receiver, the sizes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from bench.receiver import Receiver
from bench.stack import Stack


@dataclass(frozen=True)
class Sizes:
    """How much each scenario does. ``quick()`` is a smoke run of a few seconds each."""

    deliveries: int = 5_000
    """Scenarios 1 and 2 (and 3, at most 5,000): deliveries per run."""
    window: int = 2_000
    """Deliveries triggered but not yet received at most, while triggers are fed."""
    intake_requests: int = 3_000
    intake_events: int = 20_000
    latency_seconds: float = 30.0
    latency_rate: float = 200.0
    warm_up_events: int = 500
    """Scenarios 5 and 9: triggers sent at the rate before each measured window."""
    sweep_rates: tuple[float, ...] = (50.0, 200.0, 500.0, 1000.0)
    sweep_seconds: float = 20.0
    """Scenario 9: seconds measured per rate, after the warm-up."""
    worker_processes: tuple[int, ...] = (1, 2)
    """Scenarios 1 and 9: the worker's ``--processes``, measured in turn."""
    idle_seconds: float = 30.0
    """Scenario 10: seconds with no traffic."""
    rows: int = 100_000
    dashboard_rows: int = 1_000_000
    """Scenario 11: ended rows over 24 hours."""
    failing: int = 2_000
    """Scenario 12: deliveries of the hanging action, whose retries come due together."""
    first_seconds: float = 20.0
    """Scenario 12: seconds the healthy action is measured, alone and while they are due."""
    tenants: int = 1_000
    """Scenario 13: tenants made, each with three actions and two parameters."""
    tenant_seconds: float = 20.0
    """Scenario 13: seconds of one tenant's triggers timed alone (and at least as long
    when spread over all tenants: one trigger each)."""
    tenant_passes: int = 2
    """Scenario 13: passes over all tenants after they are made (the first loads each
    tenant's configuration; the others find it cached, or read it again past the bound)."""
    memory_deliveries: int = 20_000
    ceiling_requests: int = 5_000
    trigger_samples: int = 40

    @classmethod
    def quick(cls) -> Sizes:
        return cls(deliveries=300, window=1_000, intake_requests=200, intake_events=1_000,
                   latency_seconds=4.0, warm_up_events=20, sweep_rates=(20.0, 50.0),
                   sweep_seconds=2.0, idle_seconds=2.0, rows=3_000, dashboard_rows=5_000,
                   memory_deliveries=1_000, ceiling_requests=1_000, trigger_samples=8,
                   failing=100, first_seconds=3.0, tenants=20, tenant_seconds=2.0)


def in_flight_limit() -> int:
    """How many deliveries one worker process may have in flight (the setting
    ``worker_in_flight``): the concurrency the raw ceiling is measured at."""
    from event_manager.config import Settings

    default = Settings.model_fields["worker_in_flight"].default
    return default if isinstance(default, int) else 1000


@dataclass
class Bench:
    stack: Stack
    receiver: Receiver
    sizes: Sizes
    results: Path
    """Where profiles (and by default the result file) are written."""
    profile: bool = False
    concurrency: int = field(default_factory=in_flight_limit)
    _numbers: itertools.count = field(default_factory=itertools.count)

    def code(self, what: str) -> str:
        """A fresh tenant code for a scenario, ``s1-3`` for example."""
        return f"{what}-{next(self._numbers)}"
