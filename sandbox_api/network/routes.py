"""HTTP adapter of the network service: /network/process/{pid}/ports, monitors, tunnel."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..errors import Invalid
from ..http.responses import field, head_ok, json_response, read_json_object
from . import ports
from .monitors import Monitors
from .tunnel import Tunnel, parse_config

MONITORS = web.AppKey("monitors", Monitors)
TUNNEL = web.AppKey("tunnel", Tunnel)


def _pid(request: web.Request) -> int:
    try:
        pid = int(request.match_info["pid"])
    except ValueError:
        raise Invalid("invalid PID") from None
    if pid <= 0:
        raise Invalid("invalid PID")
    return pid


async def process_ports(request: web.Request) -> web.Response:
    pid = _pid(request)
    tree = await asyncio.to_thread(ports.tree_pids, pid)
    found = await asyncio.to_thread(ports.ports_of, tree) if tree else []  # no such pid: none, as the original
    return json_response({"pid": pid, "ports": [p.to_dict() for p in found]})


async def start_monitor(request: web.Request) -> web.Response:
    pid = _pid(request)
    data = await read_json_object(request)
    await request.app[MONITORS].add(pid, field(data, "callback", str, ""))
    return json_response({"path": "", "message": "Port monitoring started"})


async def stop_monitor(request: web.Request) -> web.Response:
    pid = _pid(request)
    request.app[MONITORS].remove(pid)
    return json_response({"path": "", "message": "Port monitoring stopped"})


async def configure_tunnel(request: web.Request) -> web.Response:
    # The body holds keys: it is never logged, and no error message repeats it.
    data = await read_json_object(request)
    encoded = field(data, "config", str, "")
    if not encoded:
        raise Invalid("invalid request body: config is required")
    await request.app[TUNNEL].configure(parse_config(encoded))
    return json_response({"path": "", "message": "Tunnel configuration updated successfully"})


async def disconnect_tunnel(request: web.Request) -> web.Response:
    await request.app[TUNNEL].stop()
    return json_response({"path": "", "message": "Tunnel disconnected"})


async def _start_tunnel(app: web.Application) -> None:
    app[TUNNEL].start_from_environment()


async def _close_tunnel(app: web.Application) -> None:
    await app[TUNNEL].close()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/network/process/{pid}/ports", process_ports, allow_head=False)
    r.add_route("HEAD", "/network/process/{pid}/ports", head_ok)
    r.add_post("/network/process/{pid}/monitor", start_monitor)
    r.add_delete("/network/process/{pid}/monitor", stop_monitor)
    # No GET: the configuration holds the private key.
    r.add_put("/network/tunnel/config", configure_tunnel)
    r.add_delete("/network/tunnel", disconnect_tunnel)
    app.on_startup.append(_start_tunnel)
    app.on_shutdown.append(_close_tunnel)  # before the children are closed (a cleanup step)
