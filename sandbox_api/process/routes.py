"""HTTP adapter of the process service: /process*."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from ..contract import Message, Success
from ..errors import Unprocessable
from ..http import operations, streams
from ..http.appkeys import SETTINGS
from ..http.idempotency import idempotent, note_process
from ..http.operations import Failure, Media, Operation, Param
from ..http.responses import json_bytes, json_response, start_stream
from ..linux.syscalls import release_free_memory
from . import execution
from .logreader import KEEPALIVE, follow
from .logstore import STDERR, STDOUT, TRUNCATION_MARKER, Chunk
from .managed import ManagedProcess, ProcessSpec
from .output import DEFAULT_WINDOW_BYTES, check_offsets, read_window
from .supervisor import Supervisor
from .views import logs_view, process_view, summary_view
from .wire import (
    ExecStreamQuery,
    LogRangeError,
    LogsQuery,
    LogStreamQuery,
    ProcessEvent,
    ProcessLogs,
    ProcessLogsPage,
    ProcessRequest,
    ProcessResponse,
    StdinResponse,
    WaitQuery,
)

audit = logging.getLogger("sandbox_api.audit")

SUPERVISOR = web.AppKey("supervisor", Supervisor)

STDIN_CHUNK = 64 * 1024
LIST_AT_ONCE = 16  # a longer process list is streamed
LIST_WRITE_BYTES = 64 * 1024


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


def _audit(request: web.Request, action: str, **extra: str) -> None:
    audit.info(
        "type=%s %s",
        action,
        " ".join(f"{k}={_quote(v)}" for k, v in sorted(extra.items())),
        extra={
            "source": "audit",
            "action": action,
            "sub-id": request.headers.get("X-Blaxel-Subject-Id") or request.headers.get("X-Subject-Id", ""),
            "sub-type": request.headers.get("X-Blaxel-Subject-Type") or request.headers.get("X-Subject-Type", ""),
            "auth-method": request.headers.get("X-Blaxel-Auth-Method", ""),
            "rid": request.headers.get("X-Request-Id", ""),
        },
    )


def _quote(value: str) -> str:
    value = value.replace("\r", "\\r").replace("\n", "\\n")
    if " " in value or '"' in value:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


async def start_process(request: web.Request) -> web.StreamResponse:
    supervisor = request.app[SUPERVISOR]
    settings = request.app[SETTINGS]
    body = await operations.body(request, ProcessRequest)
    spec, wait, ports = process_spec(body), bool(body.wait_for_completion), body.wait_for_ports or []
    streaming = "text/event-stream" in request.headers.get("Accept", "")
    _audit(
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


def _ndjson(event_type: str, data: str = "") -> bytes:
    event: dict[str, str] = {"type": event_type}
    if data:
        event["data"] = data
    return (json.dumps(event, ensure_ascii=False) + "\n").encode()


_TRUNCATED_LINE = TRUNCATION_MARKER.encode()


def ndjson_events(chunks: list[Chunk]) -> bytes:
    """Each chunk is one event: its lines joined by "\\n", without the last one."""
    out: list[bytes] = []
    for chunk in chunks:
        head = b'{"type":"' + chunk.stream_name.encode() + b'","data":"'
        if chunk.truncated:
            out += (head, streams.json_string(_TRUNCATED_LINE[:-1]), b'"}\n')
        if len(chunk.data) > 1:  # a lone empty line has no data: skip it, as the SDKs would
            out += (head, streams.json_string(chunk.data[:-1]), b'"}\n')
    return b"".join(out)


def prefixed_lines(chunks: list[Chunk]) -> bytes:
    """Each line as `stdout:<line>\\n` or `stderr:<line>\\n`."""
    out = []
    for chunk in chunks:
        prefix = chunk.stream_name.encode() + b":"
        if chunk.truncated:
            out.append(prefix + _TRUNCATED_LINE)
        out.append(streams.prefix_lines(chunk.data, prefix))
    return b"".join(out)


def ndjson_events_with_offsets(chunks: list[Chunk]) -> bytes:
    """As `ndjson_events`, each output event carrying `offset`: where its stream goes on."""
    out: list[bytes] = []
    for chunk in chunks:
        head = b'{"type":"' + chunk.stream_name.encode() + b'","data":"'
        if chunk.truncated:
            out += (head, streams.json_string(_TRUNCATED_LINE[:-1]), b'"}\n')
        if len(chunk.data) > 1:
            out += (head, streams.json_string(chunk.data[:-1]), b'","offset":%d}\n' % chunk.end)
    return b"".join(out)


async def _exec_stream(
    request: web.Request, started: execution.Execution, ports: list[int], with_offsets: bool = False
) -> web.StreamResponse:
    proc = started.proc
    settings = request.app[SETTINGS]
    response = await start_stream(request, "application/x-ndjson")
    events = ndjson_events_with_offsets if with_offsets else ndjson_events
    async with streams.serving(request) as gone:
        if with_offsets:  # what a client needs to resume this stream elsewhere
            await response.write(_ndjson("started", proc.record.pid))
        try:
            await execution.wait_ports(started, ports)
        except Unprocessable as e:
            await response.write(_ndjson("error", e.message))
            return response
        async for item in _output(request, proc, gone, settings.exec_stream_keepalive):
            await response.write(_ndjson("keepalive") if item is KEEPALIVE else events(item))
            del item
        if proc.final.is_set():
            result = json.dumps(summary_view(proc, settings), ensure_ascii=False)
            await response.write(_ndjson("result", result))
    return response


def _output(
    request: web.Request,
    proc: ManagedProcess,
    gone: asyncio.Future[None],
    keepalive: float,
    start: dict[int, int] | None = None,
) -> AsyncIterator[list[Chunk] | None]:
    """The process's output at the client's pace (`follow`), until it ends, the client
    leaves or the daemon stops: what every stream of it writes out."""
    stops = (request.app[SUPERVISOR].closing, gone)
    ready = request.writer.drain  # back-pressure: read on only once the client took its share
    congested = streams.congested(request)
    return follow(proc.log, keepalive, stops, streams.READ_STEP, ready, congested, streams.READ_STEP_MAX, start)


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


async def get_logs(request: web.Request) -> web.Response:
    identifier = request.match_info["identifier"]
    query = operations.query(request, LogsQuery)
    proc = request.app[SUPERVISOR].get(identifier, f"process with PID {identifier} not found")
    _audit(request, "process_logs_access", identifier=identifier)
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
    _audit(request, "process_logs_stream", identifier=identifier)
    resumed = query.stdout_offset is not None or query.stderr_offset is not None
    if resumed or query.format == "ndjson":
        return await _resumed_stream(request, proc, query)
    response = await start_stream(request, "text/plain; charset=utf-8")
    async with streams.serving(request) as gone:
        async for item in _output(request, proc, gone, settings.log_stream_keepalive):
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
        async for item in _output(request, proc, gone, keepalive, dict(position)):
            if item is KEEPALIVE:
                await response.write(_ndjson("keepalive") if ndjson else b"[keepalive]\n")
                continue
            if ndjson:
                await response.write(ndjson_events_with_offsets(item))
                continue
            for chunk in item:
                position[chunk.stream] = chunk.end
            await response.write(prefixed_lines(item) + offsets_line(position))
            del item
        if ndjson and proc.final.is_set():
            result = json.dumps(summary_view(proc, settings), ensure_ascii=False)
            await response.write(_ndjson("result", result))
    return response


async def wait_process(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR]
    timeout = operations.query(request, WaitQuery).timeout
    proc = supervisor.get(request.match_info["identifier"])
    await proc.wait_final(timeout)
    return json_response(summary_view(proc, request.app[SETTINGS]))


async def stop_process(request: web.Request) -> web.Response:
    identifier = request.match_info["identifier"]
    _audit(request, "process_stop", identifier=identifier)
    request.app[SUPERVISOR].stop(identifier)
    return json_response({"message": "Process stopped successfully"})


async def kill_process(request: web.Request) -> web.Response:
    identifier = request.match_info["identifier"]
    _audit(request, "process_kill", identifier=identifier)
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


PROCESS_ID = Param("identifier", "The process's name, or its pid (all digits: looked up by pid only).")
NOT_FOUND = {404: Failure("No such process.")}
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

OPERATIONS = idempotent(OPERATIONS, ("POST", "/process"))  # takes an Idempotency-Key


def add_routes(app: web.Application) -> None:
    operations.register(app, OPERATIONS)
