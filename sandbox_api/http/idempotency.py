"""HTTP adapter of retry-safe requests (`sandbox_api/idempotency/`).

`idempotent(table, routes...)` makes routes accept an `Idempotency-Key` header: the handler is
wrapped, the header documented, the 409 and 422 it may add described. Without the header
nothing changes (one dict lookup). With it:

- a key never seen (or expired) is claimed, the handler runs while the request body is
  hashed as the handler reads it (no copy is kept), and its answer is kept: a 2xx, or a
  4xx other than 400/408/413/429 (the request was understood and acted on). A 400 or 413
  (nothing was done), a 5xx or a failure (disk full, a crash) releases the key: a retry
  runs again -- unless a process was started: then any answer is kept, and a failure
  without one leaves the key refusing retries (409 with the pid);
- a key already answered: the retry's body is read and hashed (and thrown away), and
  the same request is answered with the first answer plus `Idempotent-Replayed: true`;
  another request is a 422;
- a key whose first request is still in progress: 409 at once (with `Retry-After: 1`
  and, for POST /process, the `pid` already started).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web
from aiohttp.streams import AsyncStreamIterator, StreamReader

from ..errors import ApiError
from ..idempotency.journal import Entry
from ..idempotency.service import BodyDigest, Idempotency, Replay, check_key
from .operations import Failure, Operation, Param
from .prefix_routes import decoded_path
from .responses import error_body, json_bytes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

IDEMPOTENCY = web.AppKey("idempotency", Idempotency)
HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
_ENTRY = web.RequestKey("idempotency_entry", Entry)

CHUNK = 256 * 1024
# Statuses that mean the request was refused before it did anything: not kept.
_NOT_KEPT = frozenset({400, 408, 413, 429})

KEY_PARAM = Param(
    HEADER,
    "Makes a retry safe: a request sent again with the same key (and the same method, path, query and body) "
    "within `SANDBOX_IDEMPOTENCY_SECONDS` is answered with the first answer (header `Idempotent-Replayed: true`) "
    "instead of running again. 1 to 255 visible ASCII characters, e.g. a UUID.",
    location="header",
)
_IN_PROGRESS = (
    "With `Idempotency-Key`: the first request with this key is still in progress (`Retry-After: 1`; `pid` when it "
    "started a process), was answered with a stream, or was interrupted by a daemon restart after it started a "
    "process: it is not run again."
)
_MISMATCH = "With `Idempotency-Key`: the key was first used with another method, path, query or body."


def idempotent(table: tuple[Operation, ...], *routes: tuple[str, str]) -> tuple[Operation, ...]:
    """`table` where the operations `routes` (method, path) take an `Idempotency-Key` header."""
    wanted = set(routes)
    found = {(op.method, op.path) for op in table} & wanted
    if found != wanted:
        raise ValueError(f"no such operations: {sorted(wanted - found)}")
    return tuple(_keyed(op) if (op.method, op.path) in wanted else op for op in table)


def _keyed(operation: Operation) -> Operation:
    responses = dict(operation.responses)
    for status, text in ((409, _IN_PROGRESS), (422, _MISMATCH)):
        known = responses.get(status)
        responses[status] = Failure(f"{known.description} {text}" if isinstance(known, Failure) else text)
    if 400 in responses and isinstance(responses[400], Failure):
        responses[400] = Failure(f"{responses[400].description} An invalid `Idempotency-Key`.")
    return replace(
        operation,
        handler=_wrap(operation.handler),
        params=(*operation.params, KEY_PARAM),
        responses=responses,
    )


def note_process(request: web.Request, pid: str) -> None:
    """The keyed request started process `pid` (a restart before it answers must not let a
    retry start it again)."""
    entry = request.get(_ENTRY)
    if entry is not None:
        request.app[IDEMPOTENCY].note_process(entry, pid)


def _wrap(handler: Handler) -> Handler:
    async def keyed(request: web.Request) -> web.StreamResponse:
        raw = request.headers.get(HEADER)
        if raw is None:
            return await handler(request)
        service = request.app[IDEMPOTENCY]
        if not service.enabled:
            return await handler(request)
        key = check_key(raw.strip())
        scope = f"{request.method} {decoded_path(request)}"
        if request.query_string:
            scope += f"?{request.query_string}"
        entry = service.lookup(key, scope)
        digest = _digest(request, scope)
        if entry is not None:
            await _drain(request, digest)
            return await _replay(request, service.replay(entry, digest.hexdigest()))
        entry = service.claim(key, scope)
        request[_ENTRY] = entry
        if request.body_exists:
            _tap(request, _HashingReader(request.content, digest))
        try:
            response = await handler(request)
        except ApiError as e:
            if _kept(e.status) or entry.pid:  # once a process started, whatever came of it is the answer
                await _finish(request, digest, entry, e.status, _JSON, json_bytes(error_body(e.message, **e.extra)))
            else:
                service.release(entry)
            raise
        except BaseException:
            service.abandon(entry)
            raise
        if not _kept(response.status) and not entry.pid:
            service.release(entry)
        elif response.prepared or not isinstance(response, web.Response):
            await _finish(request, digest, entry, response.status, "", None)  # a stream: not replayable
        elif isinstance(response.body, (bytes, bytearray)):
            content_type = response.headers.get("Content-Type", "")
            await _finish(request, digest, entry, response.status, content_type, bytes(response.body))
        else:
            service.abandon(entry)  # a body that cannot be kept (none of the keyed routes answers so)
        return response

    keyed.__name__ = getattr(handler, "__name__", "keyed")
    keyed.__doc__ = handler.__doc__
    return keyed


_JSON = "application/json; charset=utf-8"


async def _finish(
    request: web.Request, digest: BodyDigest, entry: Entry, status: int, content_type: str, body: bytes | None
) -> None:
    """Keep the answer (`body` None: it was a stream), once the rest of the body is hashed."""
    service = request.app[IDEMPOTENCY]
    try:
        await _drain(request, digest)
    except BaseException:
        service.abandon(entry)  # the client left mid-body: the request was acted on, its fingerprint is lost
        raise
    if body is None:
        service.finish_stream(entry, digest.hexdigest())
    else:
        service.finish(entry, digest.hexdigest(), status, content_type, body)


def _kept(status: int) -> bool:
    return status < 500 and status not in _NOT_KEPT


def _digest(request: web.Request, scope: str) -> BodyDigest:
    content_type = request.headers.get("Content-Type", "")
    kind, _, params = content_type.partition(";")
    boundary = b""
    if kind.strip().lower().startswith("multipart/"):
        # The boundary is drawn anew for each attempt: hash the body and its type without it.
        value = ""
        rest = []
        for param in params.split(";"):
            name, _, v = param.strip().partition("=")
            if name.lower() == "boundary":
                value = v.strip().strip('"')
            elif param.strip():
                rest.append(param.strip())
        content_type = "; ".join([kind.strip(), *rest])
        if value:
            boundary = b"--" + value.encode("latin-1", "replace")
    return BodyDigest(scope, content_type, boundary)


def _tap(request: web.Request, reader: _HashingReader) -> None:
    """Every later read of the body, by the handler or aiohttp (`read`, `multipart`,
    `content`), goes through `reader`. aiohttp has no hook for it: its payload attribute
    and the cached `content` are replaced (the tests of this module fail if that stops
    working)."""
    request._payload = reader  # type: ignore[assignment]
    request._cache["content"] = reader


async def _drain(request: web.Request, digest: BodyDigest) -> None:
    """Read (and hash) what is left of the body, a chunk at a time."""
    if not request.body_exists:
        return
    content = request.content
    reader = content if isinstance(content, _HashingReader) else _HashingReader(content, digest)
    while await reader.read(CHUNK):
        pass


async def _replay(request: web.Request, replay: Replay) -> web.StreamResponse:
    headers = {REPLAYED: "true"}
    if replay.body is not None or replay.path is None:
        response = web.Response(status=replay.status, body=replay.body or b"", headers=headers)
        response.headers["Content-Type"] = replay.content_type or "application/octet-stream"
        return response
    stream = web.StreamResponse(status=replay.status, headers=headers)
    stream.headers["Content-Type"] = replay.content_type or "application/octet-stream"
    stream.content_length = replay.size
    try:
        f = await asyncio.to_thread(open, replay.path, "rb")
    except OSError as e:
        raise ApiError(f"the kept answer to this Idempotency-Key cannot be read: {e.strerror}") from None
    try:
        await stream.prepare(request)
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            await stream.write(chunk)
        await stream.write_eof()
    finally:
        f.close()
    return stream


class _HashingReader:
    """The request body as aiohttp's StreamReader gives it, each byte hashed the first
    time it is read (a multipart reader puts bytes back with `unread_data`: those are
    not hashed twice)."""

    def __init__(self, inner: StreamReader, digest: BodyDigest) -> None:
        self._inner = inner
        self._digest = digest
        self._reread = 0

    def _seen(self, data: bytes) -> bytes:
        if self._reread:
            skip = min(self._reread, len(data))
            self._reread -= skip
            if skip < len(data):
                self._digest.feed(data[skip:])
        elif data:
            self._digest.feed(data)
        return data

    async def read(self, n: int = -1) -> bytes:
        return self._seen(await self._inner.read(n))

    async def readany(self) -> bytes:
        return self._seen(await self._inner.readany())

    async def readline(self, *, max_line_length: int | None = None) -> bytes:
        return self._seen(await self._inner.readline(max_line_length=max_line_length))

    async def readuntil(self, separator: bytes = b"\n", *, max_size: int | None = None) -> bytes:
        return self._seen(await self._inner.readuntil(separator, max_size=max_size))

    async def readchunk(self) -> tuple[bytes, bool]:
        data, end = await self._inner.readchunk()
        return self._seen(data), end

    async def readexactly(self, n: int) -> bytes:
        return self._seen(await self._inner.readexactly(n))

    def read_nowait(self, n: int = -1) -> bytes:
        return self._seen(self._inner.read_nowait(n))

    def unread_data(self, data: bytes) -> None:
        self._reread += len(data)
        self._inner.unread_data(data)

    def iter_chunked(self, n: int) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(lambda: self.read(n))

    def iter_any(self) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(self.readany)

    def __aiter__(self) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(self.readline)

    def __getattr__(self, name: str) -> Any:  # at_eof, is_eof, exception, _waiter...
        return getattr(self._inner, name)
