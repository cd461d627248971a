"""HTTP adapter of the network service: /network/process/{pid}/ports and monitors."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..errors import Invalid, NotFound
from ..http.responses import field, json_response, read_json_object
from . import ports
from .monitors import Monitors

MONITORS = web.AppKey("monitors", Monitors)


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
    if not tree:
        raise NotFound(f"process {pid} not found")
    found = await asyncio.to_thread(ports.ports_of, tree)
    return json_response({"pid": pid, "ports": [p.to_dict() for p in found]})


async def start_monitor(request: web.Request) -> web.Response:
    pid = _pid(request)
    data = await read_json_object(request)
    request.app[MONITORS].add(pid, field(data, "callback", str, ""))
    return json_response({"path": "", "message": "Port monitoring started"})


async def stop_monitor(request: web.Request) -> web.Response:
    pid = _pid(request)
    request.app[MONITORS].remove(pid)
    return json_response({"path": "", "message": "Port monitoring stopped"})


async def head_ok(request: web.Request) -> web.Response:
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/network/process/{pid}/ports", process_ports, allow_head=False)
    r.add_route("HEAD", "/network/process/{pid}/ports", head_ok)
    r.add_post("/network/process/{pid}/monitor", start_monitor)
    r.add_delete("/network/process/{pid}/monitor", stop_monitor)
