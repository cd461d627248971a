"""HTTP adapter of the process service: /process*. Starting a process is exec_routes.py,
its output log_routes.py; here the rest, and the whole table in the documented order."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..contract import Message, Success
from ..http import operations, streams
from ..http.appkeys import SETTINGS
from ..http.operations import Failure, Media, Operation
from ..http.responses import json_bytes, json_response
from ..linux.syscalls import release_free_memory
from . import exec_routes, log_routes
from .route_common import NOT_FOUND, PROCESS_ID, SUPERVISOR, audit_request
from .views import summary_view
from .wire import ProcessResponse, StdinResponse, WaitQuery

STDIN_CHUNK = 64 * 1024
LIST_AT_ONCE = 16  # a longer process list is streamed
LIST_WRITE_BYTES = 64 * 1024


async def list_processes(request: web.Request) -> web.StreamResponse:
    """The array is sent as it is made, a record at a time (each inlines up to 64 KiB per
    stream, so a long list is tens of MB): memory holds about one record, and other
    requests are served between records."""
    settings = request.app[SETTINGS]
    procs = request.app[SUPERVISOR].list()
    if len(procs) <= LIST_AT_ONCE:
        return json_response([summary_view(p, settings, completed_null=True) for p in procs])
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    response.charset = "utf-8"
    await response.prepare(request)
    pending: list[bytes] = [b"["]
    size = total = 0
    try:
        with streams.bounded(request):
            for i, proc in enumerate(procs):
                if i:
                    pending.append(b",")
                view = summary_view(proc, settings, completed_null=True)
                data = json_bytes(view)
                pending.append(data)
                size += len(data)
                if size >= LIST_WRITE_BYTES:
                    await response.write(b"".join(pending))
                    await request.writer.drain()
                    total += size
                    pending, size = [], 0
                await asyncio.sleep(0)  # one record at a time: the loop stays responsive
            pending.append(b"]")
            await response.write(b"".join(pending))
            await response.write_eof()
    except ConnectionError as e:
        streams.forget(e)  # the client left mid-list
    if total + size >= 1 << 20:
        release_free_memory()
    return response


async def get_process(request: web.Request) -> web.Response:
    proc = request.app[SUPERVISOR].get(request.match_info["identifier"])
    return json_response(summary_view(proc, request.app[SETTINGS]))


async def wait_process(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR]
    timeout = operations.query(request, WaitQuery).timeout
    proc = supervisor.get(request.match_info["identifier"])
    await proc.wait_final(timeout)
    return json_response(summary_view(proc, request.app[SETTINGS]))


async def stop_process(request: web.Request) -> web.Response:
    identifier = request.match_info["identifier"]
    audit_request(request, "process_stop", identifier=identifier)
    request.app[SUPERVISOR].stop(identifier)
    return json_response({"message": "Process stopped successfully"})


async def kill_process(request: web.Request) -> web.Response:
    identifier = request.match_info["identifier"]
    audit_request(request, "process_kill", identifier=identifier)
    await request.app[SUPERVISOR].kill(identifier)
    return json_response({"message": "Process killed successfully"})


async def write_stdin(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR]
    identifier = request.match_info["identifier"]
    supervisor.stdin_ready(identifier)
    written = 0
    async for data in request.content.iter_chunked(STDIN_CHUNK):
        written += await supervisor.write_stdin(identifier, data)
    return json_response({"path": "", "message": f"{written} bytes written to stdin", "bytes": written})


async def close_stdin(request: web.Request) -> web.Response:
    request.app[SUPERVISOR].close_stdin(request.match_info["identifier"])
    return json_response({"path": "", "message": "stdin closed"})


OPERATIONS: tuple[Operation, ...] = (
    *exec_routes.OPERATIONS,
    Operation("GET", "/process", list_processes, "process", "List processes", {200: list[ProcessResponse]}),
    Operation(
        "GET",
        "/process/{identifier}",
        get_process,
        "process",
        "Get a process",
        {200: ProcessResponse, **NOT_FOUND},
        params=(PROCESS_ID,),
        head="ok",
    ),
    Operation(
        "DELETE",
        "/process/{identifier}",
        stop_process,
        "process",
        "Stop a process",
        {200: Message, 404: Failure("No such process, or it is not running.")},
        description="SIGTERM to the whole tree, SIGKILL after the grace period.",
        params=(PROCESS_ID,),
    ),
    *log_routes.OPERATIONS,
    Operation(
        "GET",
        "/process/{identifier}/wait",
        wait_process,
        "process",
        "Wait for a process to end",
        {200: ProcessResponse, 400: Failure("Invalid timeout."), **NOT_FOUND},
        description="Answers with the process once it is over, or still running when the timeout ran out.",
        params=(PROCESS_ID,),
        query=WaitQuery,
    ),
    Operation(
        "DELETE",
        "/process/{identifier}/kill",
        kill_process,
        "process",
        "Kill a process",
        {200: Message, 404: Failure("No such process, or nothing left to kill.")},
        description="SIGKILL to the whole tree.",
        params=(PROCESS_ID,),
    ),
    Operation(
        "POST",
        "/process/{identifier}/stdin",
        write_stdin,
        "process",
        "Write to a process's stdin",
        {
            200: StdinResponse,
            **NOT_FOUND,
            409: Failure("The process was not started with `stdin: true`, is over, or its stdin is closed."),
        },
        description="The body is written as is (raw bytes, any length).",
        params=(PROCESS_ID,),
        body=Media({"application/octet-stream": {"type": "string", "format": "binary"}}),
    ),
    Operation(
        "DELETE",
        "/process/{identifier}/stdin",
        close_stdin,
        "process",
        "Close a process's stdin",
        {200: Success, **NOT_FOUND, 409: Failure("No stdin pipe.")},
        params=(PROCESS_ID,),
    ),
)


def add_routes(app: web.Application) -> None:
    operations.register(app, OPERATIONS)
