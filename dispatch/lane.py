"""The render lane: big renders run beside the worker's event loop, one at a time.

A delivery is rendered and signed on the worker's one event loop, which every tenant's
deliveries share. Most actions render in well under a millisecond, but a 256 KB raw
JSON body of ``{{big}}`` with a 300-character value renders to 10.8 MB in about 240 ms:
20 such deliveries of one tenant held the loop for seconds, and another tenant's
deliveries waited with it. An action whose output may exceed ``HEAVY_CHARS`` is
rendered (and its body signed) in the lane's one thread instead. The loop still runs
meanwhile: Python hands the interpreter to a waiting thread every 5 ms
(``sys.getswitchinterval``), so the loop gets its turns while a big render goes on, and
with one lane thread it competes with one render at most. Tenants take the lane in turn
(``FairGate``): one tenant's queue of big renders does not hold another's back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from dispatch.shares import FairGate

T = TypeVar("T")

HEAVY_CHARS = 64 * 1024
"""An action that may render to more characters than this is rendered in the lane."""


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)


def render_size_bound(action: Mapping[str, Any], values: Mapping[str, str]) -> int:
    """At most how many characters ``action`` renders to with ``values``: its texts, plus
    the longest value once per placeholder. A 36,000 × ``{{big}}`` body with a
    300-character value: 252,000 + 36,000 × 300 = 11,052,000."""
    longest = max((len(v) for v in values.values()), default=0)
    return sum(len(text) + text.count("{{") * longest for text in _texts(action))


class RenderLane:
    """One thread for big renders, made when first needed."""

    def __init__(self, heavy_chars: int = HEAVY_CHARS) -> None:
        self.heavy_chars = heavy_chars
        self.gate = FairGate(1)
        self._thread: ThreadPoolExecutor | None = None

    def is_heavy(self, action: Mapping[str, Any], values: Mapping[str, str]) -> bool:
        return render_size_bound(action, values) > self.heavy_chars

    async def run(self, tenant: str, heavy: bool, call: Callable[..., T], *args: Any,
                  **kwargs: Any) -> T:
        """``call(*args, **kwargs)``: here when light, in the lane's thread when heavy,
        ``tenant``'s turn come."""
        if not heavy:
            return call(*args, **kwargs)
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render-lane")
        async with self.gate.slot(tenant):
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, lambda: call(*args, **kwargs))

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False, cancel_futures=True)
            self._thread = None
