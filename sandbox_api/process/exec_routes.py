"""HTTP adapter of starting a process: `POST /process`, answered when started, once over
(`waitForCompletion`), or as an NDJSON stream of its output."""

from __future__ import annotations

import functools
import json

from aiohttp import web

from ..errors import Unprocessable
from ..http import operations, streams
from ..http.appkeys import SETTINGS
from ..http.idempotency import idempotent, note_process
from ..http.operations import Failure, Media, Operation
from ..http.responses import json_response, start_stream
from . import execution
from .logreader import KEEPALIVE
from .managed import ProcessSpec
from .route_common import SUPERVISOR, audit_request, ndjson_events, ndjson_line, output
from .views import process_view, summary_view
from .wire import ExecStreamQuery, ProcessEvent, ProcessRequest, ProcessResponse


def process_spec(request: ProcessRequest) -> ProcessSpec:
    return ProcessSpec(
        command=request.command,
        name=request.name or "",
        working_dir=request.working_dir or "",
        env=request.env or {},
        restart_on_failure=bool(request.restart_on_failure),
        max_restarts=request.max_restarts or 0,
        keep_alive=bool(request.keep_alive),
        timeout=request.timeout,
        stdin=bool(request.stdin),
    )


async def start_process(request: web.Request) -> web.StreamResponse:
    supervisor = request.app[SUPERVISOR]
    settings = request.app[SETTINGS]
    body = await operations.body(request, ProcessRequest)
    spec, wait, ports = process_spec(body), bool(body.wait_for_completion), body.wait_for_ports or []
    streaming = "text/event-stream" in request.headers.get("Accept", "")
    audit_request(
        request,
        "process_exec_stream" if streaming else "process_exec",
        command=spec.command,
        **{"working-dir": spec.working_dir},
    )
    with_offsets = streaming and bool(operations.query(request, ExecStreamQuery).offsets)  # checked before it starts
    started = await execution.launch(supervisor, spec)
    note_process(request, started.proc.record.pid)  # with an Idempotency-Key: never started twice
    if streaming:
        return await _exec_stream(request, started, ports, with_offsets)
    await execution.wait_ports(started, ports)
    if wait:
        await execution.wait_end(started)
        return json_response(process_view(started.proc, settings.max_logs_response_bytes))
    return json_response(summary_view(started.proc, settings, logs_null_when_empty=True))


async def _exec_stream(
    request: web.Request, started: execution.Execution, ports: list[int], with_offsets: bool = False
) -> web.StreamResponse:
    proc = started.proc
    settings = request.app[SETTINGS]
    response = await start_stream(request, "application/x-ndjson")
    events = functools.partial(ndjson_events, offsets=with_offsets)
    async with streams.serving(request) as gone:
        if with_offsets:  # what a client needs to resume this stream elsewhere
            await response.write(ndjson_line("started", proc.record.pid))
        try:
            await execution.wait_ports(started, ports)
        except Unprocessable as e:
            await response.write(ndjson_line("error", e.message))
            return response
        async for item in output(request, proc, gone, settings.exec_stream_keepalive, fast_step=streams.READ_STEP_FAST):
            await response.write(ndjson_line("keepalive") if item is KEEPALIVE else events(item))
            del item
        if proc.final.is_set():
            result = json.dumps(summary_view(proc, settings), ensure_ascii=False)
            await response.write(ndjson_line("result", result))
    return response


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/process",
        start_process,
        "process",
        "Start a process",
        {
            200: Media(
                {"application/json": ProcessResponse, "application/x-ndjson": ProcessEvent},
                "The process (once over with `waitForCompletion`). With `Accept: text/event-stream`, an NDJSON "
                "stream of `stdout`/`stderr`/`keepalive` events ending with a `result` (or `error`).",
            ),
            400: Failure(
                "An invalid body (`invalid request body: ...`), a running process has this name, keepAlive is "
                "disabled, an invalid environment variable name, a NUL byte in the command or working directory."
            ),
            422: Failure(
                "The command could not start (working directory missing...), or `timeout` ran out (the process "
                "keeps running)."
            ),
        },
        description="With `?offsets=true` and `Accept: text/event-stream`, the stream starts with a `started` "
        "event (the pid) and each output event carries its `offset`: resume it with "
        "`GET /process/{identifier}/logs/stream?format=ndjson&stdoutOffset=...&stderrOffset=...`.",
        query=ExecStreamQuery,
        body=ProcessRequest,
        head="ok",
    ),
)
OPERATIONS = idempotent(OPERATIONS, ("POST", "/process"))  # takes an Idempotency-Key
