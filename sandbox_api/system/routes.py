"""HTTP adapter of the system endpoints: welcome and health."""

from __future__ import annotations

from aiohttp import web

from ..http.responses import json_response
from .health import Health

HEALTH = web.AppKey("health", Health)

WELCOME = {
    "message": "Welcome to your Blaxel Sandbox",
    "documentation": "https://docs.blaxel.ai/Sandboxes/Overview",
    "description": (
        "This sandbox provides a full-featured environment for running code securely. "
        "Visit the documentation to learn how to manage processes, access the filesystem, and more."
    ),
}


async def welcome(request: web.Request) -> web.Response:
    return json_response(WELCOME)


async def health(request: web.Request) -> web.Response:
    return json_response(request.app[HEALTH].report())


async def head_ok(request: web.Request) -> web.Response:
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    r = app.router
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        r.add_route(method, "/", welcome)
    r.add_get("/health", health, allow_head=False)
    r.add_route("HEAD", "/health", head_ok)
