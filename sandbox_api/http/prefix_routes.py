"""Routes addressed by a path *prefix* followed by a file path (`/filesystem/...`).

aiohttp matches routes on the still-encoded path, so `/filesystem%2Ftmp/x` (what the
original's clients send) would never match `/filesystem/{tail}`. These routes are
therefore matched here, on the decoded path, before aiohttp's router has its say.
The handler finds the decoded rest of the path in `request[TAIL]`.

A file name is bytes, and a URL addresses any byte by percent-encoding it (RFC 3986):
`%FF` is the byte 0xFF, as in the Go original. aiohttp leaves a sequence that is not
UTF-8 encoded (and `%25FF` decodes to the same `%FF`), so such a path is decoded here
from the raw bytes, the way os.fsdecode holds them (a lone surrogate per invalid byte).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from aiohttp import web

from .responses import head_ok

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TAIL = web.RequestKey("prefix_tail", str)


@dataclass(frozen=True)
class PrefixRoute:
    method: str
    prefix: str  # matched when the decoded path equals it or continues with "/"
    handler: Handler


class PrefixRouter:
    def __init__(self) -> None:
        self._routes: list[PrefixRoute] = []
        # By the first segment of their prefix: most requests (/process...) then look at none.
        self._by_segment: dict[str, list[PrefixRoute]] = {}

    def add(self, method: str, prefix: str, handler: Handler) -> None:
        self._routes.append(PrefixRoute(method, prefix, handler))
        # Longest prefix first: /filesystem/tree before /filesystem.
        self._routes.sort(key=lambda r: len(r.prefix), reverse=True)
        self._by_segment = {}
        for route in self._routes:
            self._by_segment.setdefault(_first_segment(route.prefix), []).append(route)

    def routes(self) -> tuple[PrefixRoute, ...]:
        """Every registered route, longest prefix first (for the OpenAPI route check)."""
        return tuple(self._routes)

    def match(self, method: str, path: str) -> tuple[Handler, str] | None:
        prefix_known = False
        for route in self._by_segment.get(_first_segment(path), ()):
            if path == route.prefix or path.startswith(route.prefix + "/"):
                if route.method == method:
                    return route.handler, path[len(route.prefix) :]
                prefix_known = True
        if prefix_known and method == "HEAD":
            return head_ok, ""
        return None

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def prefix_route_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            found = self.match(request.method, decoded_path(request))
            if found is None:
                return await handler(request)
            route_handler, tail = found
            request[TAIL] = tail
            return await route_handler(request)

        return prefix_route_middleware


def _first_segment(path: str) -> str:
    return path[1:].split("/", 1)[0]


def decoded_path(request: web.Request) -> str:
    """The URL path decoded byte for byte: `%FF` is the byte 0xFF of a file name."""
    path = request.path
    if "%" not in path:
        return path  # aiohttp decoded every escape: the bytes were UTF-8
    return os.fsdecode(unquote_to_bytes(request.rel_url.raw_path))


PREFIX_ROUTER = web.AppKey("prefix_router", PrefixRouter)
