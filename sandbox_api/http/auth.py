"""Optional bearer-token authentication (off unless a token is configured).

Blaxel's gateway authenticates in front of the daemon; a self-hosted daemon can ask
for a token itself. The SDK sends `X-Blaxel-Authorization: Bearer <key>`; plain
`Authorization` works too. `/health` and the OPTIONS answered by the CORS middleware
stay open; an OPTIONS forwarded by the port proxy needs the token like any proxied request.

The browser pages (`/terminal`, `/swagger`, `/openapi.json` and their assets) hold no
secret and are served to anyone, so that a browser can load them; what they do needs
the token: the swagger page sends the one typed into it as `Authorization`, and the
terminal page passes `?token=` on to its WebSocket, which is the one route that takes
the token from the query (a browser cannot set headers on a WebSocket; the access log
redacts it).
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from ..errors import Unauthorized

OPEN_PATHS = frozenset({"/health"})
PAGES = frozenset({"/terminal", "/swagger", "/swagger/index.html", "/openapi.json", "/swagger/doc.json"})
PAGE_ASSETS = "/terminal/static/"
QUERY_TOKEN_PATHS = frozenset({"/terminal/ws"})


def make_auth_middleware(token: str):
    expected = token.encode()

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS:
            return await handler(request)
        if request.method in ("GET", "HEAD") and (path in PAGES or path.startswith(PAGE_ASSETS)):
            return await handler(request)
        if path in QUERY_TOKEN_PATHS:
            presented = request.query.get("token", "").encode("utf-8", "surrogateescape")
            if presented and hmac.compare_digest(presented, expected):
                return await handler(request)
        for header in ("X-Blaxel-Authorization", "Authorization"):
            value = request.headers.get(header, "")
            scheme, _, credentials = value.partition(" ")
            # Header bytes that are not UTF-8 arrive as surrogate escapes: compared as the bytes sent.
            presented = credentials.strip().encode("utf-8", "surrogateescape")
            if scheme.lower() == "bearer" and hmac.compare_digest(presented, expected):
                return await handler(request)
        raise Unauthorized("missing or invalid bearer token")

    return auth_middleware
