"""HTTP adapter of the system endpoints: welcome, health, upgrade, environment reload."""

from __future__ import annotations

import json

from aiohttp import web

from ..http import operations
from ..http.operations import Failure, Media, Operation
from ..http.responses import json_response
from . import docs
from .environment import EnvironmentReloader
from .health import Health
from .upgrade import DEFAULT_BASE_URL, Upgrader
from .wire import EnvironmentReloadResponse, HealthResponse, UpgradeRequest, UpgradeResponse, Welcome

HEALTH = web.AppKey("health", Health)
UPGRADER = web.AppKey("upgrader", Upgrader)
ENVIRONMENT = web.AppKey("environment", EnvironmentReloader)
_WELCOME_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")

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


OPERATIONS = (
    # Any of these methods answers the welcome, as the original.
    *(Operation(m, "/", welcome, "system", "Welcome message", {200: Welcome}) for m in _WELCOME_METHODS),
    Operation("GET", "/health", health, "system", "Health and version", {200: HealthResponse}, head="ok", public=True),
    Operation(
        "POST",
        "/upgrade",
        upgrade,
        "system",
        "Upgrade the daemon in place",
        {
            200: Media({"application/json": UpgradeResponse}, "Started; `/health`'s `lastUpgrade` tells how it ends."),
            409: Failure(
                "An upgrade is already running, or this install cannot upgrade in place (not the binary, or "
                "SANDBOX_DEV_MODE)."
            ),
        },
        description="Downloads (or copies `path`), validates and re-execs the static binary; managed processes "
        "keep running. A missing or invalid body means the defaults.",
        body=UpgradeRequest,
        body_required=False,
    ),
    Operation(
        "POST",
        "/environment/reload",
        reload_environment,
        "system",
        "Apply the metadata document's environment",
        {
            200: EnvironmentReloadResponse,
            404: Failure("No metadata document (`BL_METADATA_PATH`)."),
            500: Failure("The metadata document is unreadable or not `{generation, environment}`."),
        },
        description="For processes started afterwards.",
    ),
)


def add_routes(app: web.Application) -> None:
    operations.register(app, OPERATIONS)
    docs.add_routes(app)
