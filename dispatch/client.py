"""Sending one rendered request: no redirects, a total timeout, the first bytes of the
answer kept for the Activity Monitor."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict

from dispatch.render import RenderedRequest

SNIPPET_BYTES = 1024


@dataclass(frozen=True)
class Response:
    status: int
    snippet: str
    elapsed_ms: float
    retry_after: str | None


async def send(session: aiohttp.ClientSession, request: RenderedRequest,
               timeout: float) -> Response:
    started = time.perf_counter()
    headers = CIMultiDict(request.headers)
    # aiohttp would add "Content-Type: application/octet-stream" to a body-less POST.
    skip = () if "Content-Type" in headers else ("Content-Type",)
    async with session.request(
        request.method, request.url, headers=headers, data=request.body, skip_auto_headers=skip,
        allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout),
    ) as response:
        body = await response.content.read(SNIPPET_BYTES)
        return Response(
            status=response.status,
            snippet=body.decode("utf-8", errors="replace"),
            elapsed_ms=(time.perf_counter() - started) * 1000,
            retry_after=response.headers.get("Retry-After"),
        )
