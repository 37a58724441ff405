"""Sending one rendered request: no redirects, a total timeout, the first bytes of the
answer kept for the Activity Monitor.

More is read than a snippet shows (16 KiB, against 1,024 characters shown), so that a
secret the receiver echoes is masked whole before the snippet is cut: a cut through a
4,096-character token, even percent-encoded, still lies inside what was read."""

from __future__ import annotations

import ssl as tls
import time
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from dispatch.render import RenderedRequest

SNIPPET_CHARS = 1024
READ_BYTES = 16 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    text: str
    """The start of the body (``READ_BYTES`` at most), to be masked and then cut."""
    more: bool
    """Whether the body went on beyond ``text``."""
    size: int | None
    """The whole body's size when it went on and said it (Content-Length), else None."""
    elapsed_ms: float
    retry_after: str | None


def wire_url(request: RenderedRequest) -> URL:
    """As rendered: the URL is in its wire form already, which the row shows."""
    return URL(request.url, encoded=True)


async def send(session: aiohttp.ClientSession, request: RenderedRequest, timeout: float,
               proxy: URL | None = None, ssl: tls.SSLContext | bool = True) -> Response:
    """``proxy``: the HTTP proxy it goes through; ``ssl``: the TLS context of an https
    receiver (``dispatch.egress``)."""
    started = time.perf_counter()
    headers = CIMultiDict(request.headers)
    # aiohttp would add "Content-Type: application/octet-stream" to a body-less POST.
    skip = () if "Content-Type" in headers else ("Content-Type",)
    async with session.request(
        request.method, wire_url(request), headers=headers, data=request.body,
        skip_auto_headers=skip, allow_redirects=False, proxy=proxy, ssl=ssl,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as response:
        body = await _read(response.content, READ_BYTES + 1)
        more = len(body) > READ_BYTES
        return Response(
            status=response.status,
            text=body[:READ_BYTES].decode("utf-8", errors="replace"),
            more=more,
            size=response.content_length if more else None,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            retry_after=response.headers.get("Retry-After"),
        )


async def _read(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body (one ``read`` may return less than there is)."""
    chunks, size = [], 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
