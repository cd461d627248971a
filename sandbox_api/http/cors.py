"""CORS: a preflighted request from any origin may call the API (what a page may send
without a preflight is limited in origins.py); OPTIONS on any path is answered 204 at
once, except on routes that take every method (the port proxy), which handle it themselves."""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization",
}


@web.middleware
async def options_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS" and not is_relay_route(request):
        return web.Response(status=204)
    return await handler(request)


def is_relay_route(request: web.Request) -> bool:
    """Whether the request is for a route that takes every method: the port proxy's."""
    # A preflight to /port/{n}/... is addressed to the app behind the proxy: it owns its
    # CORS policy (and may serve OPTIONS itself), so answering for it would misstate it.
    info = request.match_info
    return info.http_exception is None and info.route.method == hdrs.METH_ANY


def add_cors_headers(response: web.StreamResponse) -> None:
    for name, value in CORS_HEADERS.items():
        response.headers[name] = value
