"""HTTP adapter of a process's output: `GET /process/{identifier}/logs` (the last bytes, or
a page from byte offsets) and `/logs/stream` (replayed and followed, resumable)."""

from __future__ import annotations

import json

from aiohttp import web

from ..http import operations, streams
from ..http.appkeys import SETTINGS
from ..http.operations import Failure, Media, Operation
from ..http.responses import json_response, start_stream
from .logreader import KEEPALIVE
from .logstore import STDERR, STDOUT
from .managed import ManagedProcess
from .output import DEFAULT_WINDOW_BYTES, check_offsets, read_window
from .route_common import (
    NOT_FOUND,
    PROCESS_ID,
    SUPERVISOR,
    audit_request,
    ndjson_events,
    ndjson_line,
    output,
    prefixed_lines,
)
from .views import logs_view, summary_view
from .wire import LogRangeError, LogsQuery, LogStreamQuery, ProcessEvent, ProcessLogs, ProcessLogsPage


async def get_logs(request: web.Request) -> web.Response:
    identifier = request.match_info["identifier"]
    query = operations.query(request, LogsQuery)
    proc = request.app[SUPERVISOR].get(identifier, f"process with PID {identifier} not found")
    audit_request(request, "process_logs_access", identifier=identifier)
    if query.stdout_offset is None and query.stderr_offset is None and query.max_bytes is None and not query.encoding:
        return json_response(logs_view(proc, request.app[SETTINGS]))  # the original's answer
    return json_response(logs_page(proc, query))


def logs_page(proc: ManagedProcess, query: LogsQuery) -> dict[str, object]:
    offsets = {STDOUT: query.stdout_offset or 0, STDERR: query.stderr_offset or 0}
    return read_window(
        proc.log, proc.final.is_set(), offsets, query.max_bytes or DEFAULT_WINDOW_BYTES, query.encoding or "utf-8"
    )


def offsets_line(position: dict[int, int]) -> bytes:
    return b"[offsets] stdout=%d stderr=%d\n" % (position[STDOUT], position[STDERR])


async def stream_logs(request: web.Request) -> web.StreamResponse:
    supervisor = request.app[SUPERVISOR]
    settings = request.app[SETTINGS]
    identifier = request.match_info["identifier"]
    query = operations.query(request, LogStreamQuery)
    proc = supervisor.get(identifier, f"process with Identifier {identifier} not found")
    audit_request(request, "process_logs_stream", identifier=identifier)
    resumed = query.stdout_offset is not None or query.stderr_offset is not None
    if resumed or query.format == "ndjson":
        return await _resumed_stream(request, proc, query)
    response = await start_stream(request, "text/plain; charset=utf-8")
    async with streams.serving(request) as gone:
        async for item in output(request, proc, gone, settings.log_stream_keepalive):
            await response.write(b"[keepalive]\n" if item is KEEPALIVE else prefixed_lines(item))
            del item
    return response


async def _resumed_stream(request: web.Request, proc: ManagedProcess, query: LogStreamQuery) -> web.StreamResponse:
    """A stream from offsets (or as NDJSON): offsets the cap dropped are refused before it
    starts, and the client is told where each stream goes on, to resume again."""
    settings = request.app[SETTINGS]
    position = {STDOUT: query.stdout_offset or 0, STDERR: query.stderr_offset or 0}
    check_offsets(proc.log, position)
    ndjson = query.format == "ndjson"
    keepalive = settings.exec_stream_keepalive if ndjson else settings.log_stream_keepalive
    response = await start_stream(request, "application/x-ndjson" if ndjson else "text/plain; charset=utf-8")
    async with streams.serving(request) as gone:
        fast_step = streams.READ_STEP_FAST if ndjson else streams.READ_STEP_MAX
        async for item in output(request, proc, gone, keepalive, dict(position), fast_step):
            if item is KEEPALIVE:
                await response.write(ndjson_line("keepalive") if ndjson else b"[keepalive]\n")
                continue
            if ndjson:
                await response.write(ndjson_events(item, offsets=True))
                continue
            for chunk in item:
                position[chunk.stream] = chunk.end
            await response.write(prefixed_lines(item) + offsets_line(position))
            del item
        if ndjson and proc.final.is_set():
            result = json.dumps(summary_view(proc, settings), ensure_ascii=False)
            await response.write(ndjson_line("result", result))
    return response


RANGE_DROPPED = {
    416: Media(
        {"application/json": LogRangeError},
        "An offset below the oldest byte kept: the log's size cap dropped its head. Read from the oldest offset.",
    )
}
STREAM_NOTE = (
    "Every line from the first, then live lines, as `stdout:<line>` / `stderr:<line>`; `[keepalive]` "
    "every 30 s; the response ends when the process ends."
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/process/{identifier}/logs",
        get_logs,
        "process",
        "Get a process's output",
        {
            200: Media(
                {"application/json": (ProcessLogs, ProcessLogsPage)},
                "Without query parameters, ProcessLogs (the last bytes of each stream); with any of them, a "
                "ProcessLogsPage: the bytes from the offsets, the next offsets, and whether each stream ended.",
            ),
            400: Failure("An offset that is negative, not a whole number or past the end; a bad maxBytes or encoding."),
            **NOT_FOUND,
            **RANGE_DROPPED,
        },
        description="Read the output incrementally: start at offset 0 and go on from each next offset until "
        "`stdoutEnded` and `stderrEnded`. Offsets are byte offsets in each stream, stable for the process's life.",
        params=(PROCESS_ID,),
        query=LogsQuery,
        head="ok",
    ),
    Operation(
        "GET",
        "/process/{identifier}/logs/stream",
        stream_logs,
        "process",
        "Stream a process's output",
        {
            200: Media(
                {"text/plain": {"type": "string"}, "application/x-ndjson": ProcessEvent},
                "A stream of lines (`format=ndjson`: of NDJSON events).",
            ),
            400: Failure("An offset that is negative, not a whole number or past the end; a bad format."),
            **NOT_FOUND,
            **RANGE_DROPPED,
        },
        description=STREAM_NOTE
        + " With `stdoutOffset`/`stderrOffset`, it resumes there instead of replaying everything, and tells where "
        "to resume next (`[offsets] stdout=N stderr=M` lines, or each NDJSON event's `offset`).",
        params=(PROCESS_ID,),
        query=LogStreamQuery,
        head="ok",
    ),
)
