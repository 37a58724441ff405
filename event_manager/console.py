"""The admin console: static pages at ``/`` that use only the public GraphQL API.

``/`` answers ``console/index.html``; ``/console/...`` serves the console's other files
(``app.js``, ``style.css``, the page modules). No build step: the browser loads the ES
modules as they are. The page keeps the API key in ``sessionStorage`` and talks to
``/graphql`` over HTTP and WebSocket like any other client.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

FILES = Path(__file__).resolve().parent / "console"
# The page holds an admin key: run only its own scripts, and nothing may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def index(request: Request) -> FileResponse:
    return FileResponse(FILES / "index.html", headers=SECURITY_HEADERS)


def routes() -> list[BaseRoute]:
    """``/`` (the console's page) and ``/console/...`` (its scripts and styles)."""
    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Mount("/console", StaticFiles(directory=FILES), name="console"),
    ]
