"""HTTP adapter of the network service: /network/process/{pid}/ports, monitors, tunnel."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from .. import config
from ..contract import Success
from ..errors import Invalid
from ..http import operations
from ..http.operations import Failure, Operation, Param
from ..http.responses import json_response
from ..lazy import OnFirstUse
from . import ports
from .wire import ENVIRONMENT_VARIABLE, PortMonitorRequest, PortsResponse, TunnelConfigRequest

if TYPE_CHECKING:
    from .monitors import Monitors
    from .tunnel import Tunnel

# Built on their first call: most sandboxes never monitor a port nor bring a tunnel up.
MONITORS: web.AppKey[OnFirstUse[Monitors]] = web.AppKey("monitors")
TUNNEL: web.AppKey[OnFirstUse[Tunnel]] = web.AppKey("tunnel")


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
    body = await operations.body(request, PortMonitorRequest)
    await request.app[MONITORS]().add(pid, body.callback or "")
    return json_response({"path": "", "message": "Port monitoring started"})


async def stop_monitor(request: web.Request) -> web.Response:
    pid = _pid(request)
    request.app[MONITORS]().remove(pid)
    return json_response({"path": "", "message": "Port monitoring stopped"})


async def configure_tunnel(request: web.Request) -> web.Response:
    # The body holds keys: it is never logged, and no error message repeats it.
    body = await operations.body(request, TunnelConfigRequest)
    if not body.config:  # null or "": the original's words, not the shape's
        raise Invalid("invalid request body: config is required")
    tunnel = request.app[TUNNEL]()
    from .tunnel_config import parse_config  # loaded by the TUNNEL factory already

    await tunnel.configure(parse_config(body.config))
    return json_response({"path": "", "message": "Tunnel configuration updated successfully"})


async def disconnect_tunnel(request: web.Request) -> web.Response:
    await request.app[TUNNEL]().stop()
    return json_response({"path": "", "message": "Tunnel disconnected"})


async def _start_tunnel(app: web.Application) -> None:
    if config.get_variable(ENVIRONMENT_VARIABLE):  # without it, the tunnel's modules wait for a call
        app[TUNNEL]().start_from_environment()


async def _close_tunnel(app: web.Application) -> None:
    tunnel = app[TUNNEL].built
    if tunnel is not None:
        await tunnel.close()


PID = Param("pid", "An OS process id (its whole tree is looked at).", {"type": "integer", "minimum": 1})
BAD_PID = Failure("Invalid pid.")
TOOLS_MISSING = Failure("The `wg`/`ip` programs are not installed.")

OPERATIONS = (
    Operation(
        "GET",
        "/network/process/{pid}/ports",
        process_ports,
        "network",
        "Sockets of a process tree",
        {200: PortsResponse, 400: BAD_PID},
        description="A pid that does not exist has no ports (200 with `[]`), as the original.",
        params=(PID,),
        head="ok",
    ),
    Operation(
        "POST",
        "/network/process/{pid}/monitor",
        start_monitor,
        "network",
        "Call back on new ports of a process tree",
        {
            200: Success,
            400: Failure("Invalid pid, body (`invalid request body: ...`) or callback URL."),
            404: Failure("No such process."),
        },
        description="Watches the tree until the process exits.",
        params=(PID,),
        body=PortMonitorRequest,
    ),
    Operation(
        "DELETE",
        "/network/process/{pid}/monitor",
        stop_monitor,
        "network",
        "Stop the port callbacks of a process",
        {200: Success, 400: BAD_PID},
        params=(PID,),
    ),
    Operation(
        "PUT",
        "/network/tunnel/config",
        configure_tunnel,
        "network",
        "Bring up the WireGuard tunnel",
        {
            200: Success,
            400: Failure("An invalid body (`invalid request body: ...`); `config` is required."),
            422: Failure("Invalid configuration (`invalid tunnel config: ...`)."),
            500: Failure("A step failed (`failed to apply tunnel config: ...`)."),
            501: TOOLS_MISSING,
        },
        description="Replaces the running tunnel, if any. The configuration holds keys: there is no GET.",
        body=TunnelConfigRequest,
    ),
    Operation(
        "DELETE",
        "/network/tunnel",
        disconnect_tunnel,
        "network",
        "Take the WireGuard tunnel down",
        {
            200: Success,
            400: Failure("No WireGuard client is running."),
            500: Failure("Teardown failed."),
            501: TOOLS_MISSING,
        },
    ),
)


def add_routes(app: web.Application) -> None:
    operations.register(app, OPERATIONS)
    app.on_startup.append(_start_tunnel)
    app.on_shutdown.append(_close_tunnel)  # before the children are closed (a cleanup step)
