"""HTTP adapter of the system endpoints: welcome, health, upgrade, environment reload."""

from __future__ import annotations

import json

from aiohttp import web

from ..http.responses import head_ok, json_response
from . import docs
from .environment import EnvironmentReloader
from .health import Health
from .upgrade import DEFAULT_BASE_URL, Upgrader

HEALTH = web.AppKey("health", Health)
UPGRADER = web.AppKey("upgrader", Upgrader)
ENVIRONMENT = web.AppKey("environment", EnvironmentReloader)

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


async def upgrade(request: web.Request) -> web.Response:
    # A missing or invalid body means the defaults, as in the original.
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}

    def text(key: str, default: str) -> str:
        value = body.get(key)
        return value if isinstance(value, str) and value else default

    path = body.get("path") if isinstance(body.get("path"), str) else None
    # From a local file the version is that file, not "latest".
    version = text("version", path or "latest")
    reply = request.app[UPGRADER].start(version, text("baseUrl", DEFAULT_BASE_URL), path or None)
    if path:
        reply["path"] = path
    return json_response(reply)


async def reload_environment(request: web.Request) -> web.Response:
    return json_response(request.app[ENVIRONMENT].reload())


def add_routes(app: web.Application) -> None:
    r = app.router
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        r.add_route(method, "/", welcome)
    r.add_get("/health", health, allow_head=False)
    r.add_route("HEAD", "/health", head_ok)
    r.add_post("/upgrade", upgrade)
    r.add_post("/environment/reload", reload_environment)
    docs.add_routes(app)
