"""GraphiQL at ``GET /graphql``, served from the package: no file comes from a CDN.

Strawberry's own page loads React, GraphiQL and its explorer plugin from unpkg.com, and
on a network without internet it stays on "Loading…". ``graphiql/index.html`` loads the
same files, pinned and vendored in ``graphiql/assets/`` (versions, sources and licences in
``graphiql/NOTICE.md``), from ``/graphql/assets/...``. A vendored file carries its version
in its name (``graphiql-3.8.3.min.js``), so browsers may keep it for a year; the page and
its own small files (``start.js``, ``page.css``) are asked for again each time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

FILES = Path(__file__).resolve().parent / "graphiql"
VERSIONED = re.compile(r"-\d+\.\d+\.\d+\.")
"""A vendored file's name: ``react-dom-18.2.0.production.min.js``."""
KEPT_A_YEAR = "public, max-age=31536000, immutable"
# Everything the page loads is its own; it connects only to /graphql (HTTP and WebSocket).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class Assets(StaticFiles):
    """The page's files, each with the cache lifetime its name allows."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = VERSIONED.search(Path(full_path).name) is not None
        response.headers["Cache-Control"] = KEPT_A_YEAR if versioned else "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def page() -> HTMLResponse:
    """The GraphiQL page (``graphiql/index.html``)."""
    return HTMLResponse((FILES / "index.html").read_text(), headers=SECURITY_HEADERS)


def routes() -> list[BaseRoute]:
    """``/graphql/assets/...``: the files the page loads."""
    return [Mount("/graphql/assets", Assets(directory=FILES / "assets"), name="graphiql")]
