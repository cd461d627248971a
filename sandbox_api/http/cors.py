"""CORS: any origin may call the API; OPTIONS on any path is answered 204 at once."""

from __future__ import annotations

from aiohttp import web

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization",
}


@web.middleware
async def options_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(status=204)
    return await handler(request)


def add_cors_headers(response: web.StreamResponse) -> None:
    for name, value in CORS_HEADERS.items():
        response.headers[name] = value
