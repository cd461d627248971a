"""HTTP adapter of the process service: /process*."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from ..errors import Invalid, Unprocessable
from ..http import streams
from ..http.appkeys import SETTINGS
from ..http.responses import field, head_ok, json_bytes, json_response, read_json_object, start_stream
from ..linux.syscalls import release_free_memory
from .logstore import KEEPALIVE, TRUNCATION_MARKER, Chunk, follow
from .supervisor import ManagedProcess, ProcessSpec, Supervisor, wait_timeout_message
from .views import logs_view, process_view, summary_view

audit = logging.getLogger("sandbox_api.audit")

SUPERVISOR = web.AppKey("supervisor", Supervisor)

WAIT_DEFAULT_SECONDS = 60
WAIT_MAX_SECONDS = 3600
STDIN_CHUNK = 64 * 1024
LIST_AT_ONCE = 16  # a longer process list is streamed
LIST_WRITE_BYTES = 64 * 1024


def parse_process_request(data: dict[str, Any]) -> tuple[ProcessSpec, bool, list[int]]:
    """A ProcessRequest body -> (spec, waitForCompletion, waitForPorts)."""
    command = field(data, "command", str, "")
    if not command:
        raise Invalid("invalid request body: command is required")
    env = field(data, "env", dict, {})
    for key, value in env.items():
        if not isinstance(value, str):
            raise Invalid(f"invalid request body: env value of {key} must be a string")
    ports = field(data, "waitForPorts", list, [])
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise Invalid(f"invalid request body: waitForPorts holds an invalid port {port!r}")
    timeout = field(data, "timeout", int)
    if timeout is not None and timeout < 0:
        raise Invalid("invalid request body: timeout must be 0 (no limit) or a positive number of seconds")
    spec = ProcessSpec(
        command=command,
        name=field(data, "name", str, ""),
        working_dir=field(data, "workingDir", str, ""),
        env=env,
        restart_on_failure=field(data, "restartOnFailure", bool, False),
        max_restarts=field(data, "maxRestarts", int, 0),
        keep_alive=field(data, "keepAlive", bool, False),
        timeout=timeout,
        stdin=field(data, "stdin", bool, False),
    )
    return spec, field(data, "waitForCompletion", bool, False), ports


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
    spec, wait, ports = parse_process_request(await read_json_object(request))
    streaming = "text/event-stream" in request.headers.get("Accept", "")
    _audit(
        request,
        "process_exec_stream" if streaming else "process_exec",
        command=spec.command,
        **{"working-dir": spec.working_dir},
    )
    proc = await supervisor.start(spec)
    timeout = proc.record.timeout if spec.timeout is None else spec.timeout
    deadline_timeout = float(timeout) if timeout and timeout > 0 else None
    if streaming:
        return await _exec_stream(request, proc, ports, deadline_timeout)
    loop = asyncio.get_running_loop()
    deadline = None if deadline_timeout is None else loop.time() + deadline_timeout
    if ports:
        await supervisor.wait_ports(proc, ports, deadline_timeout)
    if wait:
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        if not await proc.wait_final(remaining):
            raise Unprocessable(wait_timeout_message(proc, timeout))
        return json_response(process_view(proc, settings.max_logs_response_bytes))
    return json_response(summary_view(proc, settings, logs_null_when_empty=True))


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


async def _exec_stream(
    request: web.Request, proc: ManagedProcess, ports: list[int], timeout: float | None
) -> web.StreamResponse:
    supervisor = request.app[SUPERVISOR]
    settings = request.app[SETTINGS]
    response = await start_stream(request, "application/x-ndjson")
    gone = streams.disconnected(request)
    try:
        with streams.bounded(request):
            if ports:
                try:
                    await supervisor.wait_ports(proc, ports, timeout)
                except Unprocessable as e:
                    await response.write(_ndjson("error", e.message))
                    return response
            stops = (supervisor.closing, gone)
            ready = request.writer.drain  # back-pressure: read on only once the client took its share
            keepalive = settings.exec_stream_keepalive
            congested = streams.congested(request)
            async for item in follow(
                proc.log, keepalive, stops, streams.READ_STEP, ready, congested, streams.READ_STEP_MAX
            ):
                await response.write(_ndjson("keepalive") if item is KEEPALIVE else ndjson_events(item))
                del item
            if proc.final.is_set():
                result = json.dumps(summary_view(proc, settings), ensure_ascii=False)
                await response.write(_ndjson("result", result))
    except (ConnectionError, asyncio.CancelledError) as e:
        streams.forget(e)  # the client went away; the process keeps running
    finally:
        gone.cancel()
    return response


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
    proc = request.app[SUPERVISOR].get(identifier, f"process with PID {identifier} not found")
    _audit(request, "process_logs_access", identifier=identifier)
    return json_response(logs_view(proc, request.app[SETTINGS]))


async def stream_logs(request: web.Request) -> web.StreamResponse:
    supervisor = request.app[SUPERVISOR]
    settings = request.app[SETTINGS]
    identifier = request.match_info["identifier"]
    proc = supervisor.get(identifier, f"process with Identifier {identifier} not found")
    _audit(request, "process_logs_stream", identifier=identifier)
    response = await start_stream(request, "text/plain; charset=utf-8")
    gone = streams.disconnected(request)
    try:
        with streams.bounded(request):
            stops = (supervisor.closing, gone)
            ready = request.writer.drain
            keepalive = settings.log_stream_keepalive
            congested = streams.congested(request)
            async for item in follow(
                proc.log, keepalive, stops, streams.READ_STEP, ready, congested, streams.READ_STEP_MAX
            ):
                await response.write(b"[keepalive]\n" if item is KEEPALIVE else prefixed_lines(item))
                del item
    except (ConnectionError, asyncio.CancelledError) as e:
        streams.forget(e)
    finally:
        gone.cancel()
    return response


async def wait_process(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR]
    raw = request.query.get("timeout", "")
    try:
        timeout = float(raw) if raw else WAIT_DEFAULT_SECONDS
    except ValueError:
        raise Invalid(f"invalid timeout {raw!r}: expected a number of seconds") from None
    if not 0 <= timeout <= WAIT_MAX_SECONDS:
        raise Invalid(f"invalid timeout {raw!r}: expected 0 to {WAIT_MAX_SECONDS} seconds")
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


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/process", start_process)
    r.add_get("/process", list_processes, allow_head=False)
    r.add_get("/process/{identifier}", get_process, allow_head=False)
    r.add_get("/process/{identifier}/logs", get_logs, allow_head=False)
    r.add_get("/process/{identifier}/logs/stream", stream_logs, allow_head=False)
    r.add_get("/process/{identifier}/wait", wait_process, allow_head=False)
    r.add_delete("/process/{identifier}", stop_process)
    r.add_delete("/process/{identifier}/kill", kill_process)
    r.add_post("/process/{identifier}/stdin", write_stdin)
    r.add_delete("/process/{identifier}/stdin", close_stdin)
    for path in (
        "/process",
        "/process/{identifier}",
        "/process/{identifier}/logs",
        "/process/{identifier}/logs/stream",
    ):
        r.add_route("HEAD", path, head_ok)
