"""Optional bearer-token authentication (off unless a token is configured).

Blaxel's gateway authenticates in front of the daemon; a self-hosted daemon can ask
for a token itself. The SDK sends `X-Blaxel-Authorization: Bearer <key>`; plain
`Authorization` works too. `/health` and the OPTIONS answered by the CORS middleware
stay open; an OPTIONS forwarded by the port proxy needs the token like any proxied request.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from ..errors import Unauthorized

OPEN_PATHS = frozenset({"/health"})


def make_auth_middleware(token: str):
    expected = token.encode()

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
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
