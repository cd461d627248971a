"""What the process routes share: the supervisor's app key, the audit log, the process
identifier parameter, and the output streams' parts (following the output at the client's
pace; NDJSON events and prefixed lines)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from ..http import streams
from ..http.operations import Failure, Param
from .logreader import follow
from .logstore import STREAM_NAMES, TRUNCATION_MARKER, Chunk
from .managed import ManagedProcess
from .supervisor import Supervisor

audit = logging.getLogger("sandbox_api.audit")

SUPERVISOR = web.AppKey("supervisor", Supervisor)

PROCESS_ID = Param("identifier", "The process's name, or its pid (all digits: looked up by pid only).")
NOT_FOUND = {404: Failure("No such process.")}


def audit_request(request: web.Request, action: str, **extra: str) -> None:
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


def ndjson_line(event_type: str, data: str = "") -> bytes:
    event: dict[str, str] = {"type": event_type}
    if data:
        event["data"] = data
    return (json.dumps(event, ensure_ascii=False) + "\n").encode()


_TRUNCATED_LINE = TRUNCATION_MARKER.encode()
_HEADS = {stream: b'{"type":"%s","data":"' % name.encode() for stream, name in STREAM_NAMES.items()}
_TRUNCATED_EVENTS = {
    stream: streams.json_framed(head, _TRUNCATED_LINE[:-1], b'"}\n') for stream, head in _HEADS.items()
}


def ndjson_events(chunks: list[Chunk], offsets: bool = False) -> bytes:
    """Each chunk is one event: its lines joined by "\\n", without the last one; with
    `offsets`, each output event carries `offset`: where its stream goes on."""
    out: list[bytes] = []
    for chunk in chunks:
        if chunk.truncated:
            out.append(_TRUNCATED_EVENTS[chunk.stream])
        size = len(chunk.data)
        if size > 1:  # a lone empty line has no data: skip it, as the SDKs would
            tail = b'","offset":%d}\n' % chunk.end if offsets else b'"}\n'
            out.append(streams.json_framed(_HEADS[chunk.stream], chunk.data, tail, size - 1))
    return out[0] if len(out) == 1 else b"".join(out)


def prefixed_lines(chunks: list[Chunk]) -> bytes:
    """Each line as `stdout:<line>\\n` or `stderr:<line>\\n`."""
    out = []
    for chunk in chunks:
        prefix = chunk.stream_name.encode() + b":"
        if chunk.truncated:
            out.append(prefix + _TRUNCATED_LINE)
        out.append(streams.prefix_lines(chunk.data, prefix))
    return b"".join(out)


def output(
    request: web.Request,
    proc: ManagedProcess,
    gone: asyncio.Future[None],
    keepalive: float,
    start: dict[int, int] | None = None,
    fast_step: int = streams.READ_STEP_MAX,
) -> AsyncIterator[list[Chunk] | None]:
    """The process's output at the client's pace (`follow`), until it ends, the client
    leaves or the daemon stops: what every stream of it writes out. `fast_step`: the
    largest read for a client that keeps up (streams.READ_STEP_FAST pays for JSON events)."""
    stops = (request.app[SUPERVISOR].closing, gone)
    ready = request.writer.drain  # back-pressure: read on only once the client took its share
    pace = streams.pace(request, fast_step)
    return follow(proc.log, keepalive, stops, streams.READ_STEP, ready, pace, start)
