"""HTTP adapter of reading a path (`GET /filesystem/{path}`): a directory listing, a file as
JSON (streamed past SMALL_READ), or its raw bytes (sendfile, a single range, If-Range,
If-Modified-Since)."""

from __future__ import annotations

import asyncio
import logging
import os
from email.utils import formatdate, parsedate_to_datetime

from aiohttp import web

from .. import names, paths
from ..errors import RangeNotSatisfiable, from_os_error
from ..http import operations
from ..http.operations import Empty, Failure, Media, Operation, Param
from ..http.paths import FILE_PATH, from_request
from ..http.prefix_routes import PrefixRouter
from ..http.responses import JSON_TYPE, json_bytes, json_response
from ..http.streams import json_string
from .files import Download, Files
from .routes import BAD_PATH, BINARY, FILES
from .wire import Directory, FileWithContent, ReadQuery

log = logging.getLogger("sandbox_api.filesystem")

# A JSON read of a file up to this size is one plain response; larger ones stream. Small,
# because escaping can make 6 bytes of a byte (a NUL is \u0000), and it all is in memory.
SMALL_READ = 256 * 1024

CONTENT_TYPES = {
    ".txt": "text/plain",
    ".log": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "application/javascript",
    ".json": "application/json",
    ".xml": "application/xml",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".tar": "application/x-tar",
    ".gz": "application/gzip",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}


def wants_download(request: web.Request) -> bool:
    if operations.query(request, ReadQuery).download:
        return True
    accept = request.headers.get("Accept", "")
    if not accept:
        return False
    if "application/octet-stream" in accept:
        return True
    return not any(kind in accept for kind in ("application/json", "*/*"))


async def get_path(request: web.Request) -> web.StreamResponse:
    files = request.app[FILES]
    p = from_request(request)
    if await files.is_directory(p):
        return json_response(await files.list_directory(p))
    if wants_download(request):
        return await _download(request, await files.open_download(p))
    return await _read_json(request, files, p)


async def _read_json(request: web.Request, files: Files, p: paths.ResolvedPath) -> web.StreamResponse:
    """The File with its content. A small file is one plain response; past SMALL_READ the
    JSON is streamed as the file is read, so memory stays a few chunks whatever its size,
    and the read stops when the client goes (the next write fails)."""
    entry, reader = await files.open_text(p)
    try:
        pieces: list[str] = []
        while reader.bytes_read <= SMALL_READ:
            try:
                piece = await reader.next()
            except OSError as e:
                raise from_os_error(e, "error reading file: ", op="read") from None
            if piece is None:
                entry["content"] = "".join(pieces)
                return json_response(entry)
            pieces.append(piece)
        response = web.StreamResponse(headers={"Content-Type": f"{JSON_TYPE}; charset=utf-8"})
        head = json_bytes({**entry, "content": ""})  # (a name that is not UTF-8 shows U+FFFD)
        try:
            await response.prepare(request)
            await response.write(head[:-2])  # up to the opening quote of the content
            for piece in pieces:
                await response.write(json_string(piece.encode()))
            del pieces
            while True:
                try:
                    piece = await reader.next()
                except OSError as e:
                    # The status is sent: all that is left is to cut the answer short.
                    log.warning("reading %s failed after %d bytes: %s", p.absolute, reader.bytes_read, e)
                    if request.transport is not None:
                        request.transport.close()
                    return response
                if piece is None:
                    break
                await response.write(json_string(piece.encode()))
            await response.write(b'"}')
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away: nothing more is read
        return response
    finally:
        reader.close()


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b` range as (offset, count); count -1 when unsatisfiable (a start
    past the end, a zero-length suffix, an empty file); None when unusable (serve it all)."""
    if not header.startswith("bytes=") or "," in header:
        return None
    start_text, _, end_text = header[6:].strip().partition("-")
    try:
        if start_text == "":
            if not end_text.isdigit():
                return None
            length = int(end_text)
            if length == 0 or size == 0:  # RFC 9110 14.1.1: a zero-length suffix overlaps nothing
                return 0, -1
            start = max(0, size - length)
            return start, size - start
        start = int(start_text)
        end = int(end_text) if end_text else size - 1
    except ValueError:
        return None
    if start >= size:
        return start, -1  # unsatisfiable
    if start > end:
        return None
    end = min(end, size - 1)
    return start, end - start + 1


def _if_range_holds(header: str | None, mtime: float) -> bool:
    """RFC 9110 13.1.5: a Range applies only when If-Range (if sent) matches exactly. We send
    no ETag, so an entity tag never matches; a date matches our Last-Modified second only;
    anything else is no match (send the whole file)."""
    if header is None:
        return True
    try:
        date = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return date.tzinfo is not None and date.timestamp() == int(mtime)


async def _download(request: web.Request, d: Download) -> web.StreamResponse:
    """Stream the file with sendfile: memory stays flat whatever its size."""
    try:
        headers = {
            "Content-Type": CONTENT_TYPES.get(os.path.splitext(d.name)[1], "application/octet-stream"),
            "Content-Disposition": f'attachment; filename="{names.display(d.name)}"',  # as shown elsewhere
            "Accept-Ranges": "bytes",
            "Last-Modified": formatdate(d.mtime, usegmt=True),
        }
        since = request.headers.get("If-Modified-Since")
        if since and "Range" not in request.headers:
            try:
                if int(d.mtime) <= parsedate_to_datetime(since).timestamp():
                    return web.Response(status=304, headers={k: v for k, v in headers.items() if k == "Last-Modified"})
            except (TypeError, ValueError):
                pass
        offset, count, status = 0, d.size, 200
        wanted = None
        if _if_range_holds(request.headers.get("If-Range"), d.mtime):
            wanted = _parse_range(request.headers.get("Range", ""), d.size)
        if wanted is not None:
            offset, count = wanted
            if count < 0:  # Go's text
                raise RangeNotSatisfiable(
                    "invalid range: failed to overlap", headers={"Content-Range": f"bytes */{d.size}"}
                )
            status = 206
            headers["Content-Range"] = f"bytes {offset}-{offset + count - 1}/{d.size}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = count
        await response.prepare(request)
        if count:
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("connection lost")
            with os.fdopen(os.dup(d.fd), "rb") as fobj:
                await asyncio.get_running_loop().sendfile(transport, fobj, offset, count)
        await response.write_eof()
        return response
    finally:
        os.close(d.fd)


RAW_ONLY = "Raw bytes only: "

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/filesystem/{path}",
        get_path,
        "filesystem",
        "Read a file or list a directory",
        {
            200: Media(
                {"application/json": (Directory, FileWithContent), "*/*": BINARY},
                "A directory listing, a file as JSON, or (with `Accept: application/octet-stream` or `download=true`) "
                "its raw bytes, with the type its extension gives (`.txt`: text/plain, otherwise "
                "application/octet-stream). A JSON read of a file over 256 KiB is streamed (chunked), so any size "
                "costs the server bounded memory.",
            ),
            206: Media({"*/*": BINARY}, "The requested range."),
            304: Empty("Not modified since `If-Modified-Since`."),
            400: Failure(f"{BAD_PATH[:-1]}, or a name too long."),
            404: Failure("No such file or directory."),
            416: Failure("The range starts past the end of the file, or is an empty suffix (`bytes=-0`)."),
            422: Failure(
                "The file cannot be read: permission denied, a symlink loop, or not a regular file (a device, FIFO or "
                "socket is not read as JSON content; its download is as before)."
            ),
            500: Failure(
                "stat failed for another reason than a missing file (not a directory, permission denied...): the "
                "original's status."
            ),
        },
        params=(
            FILE_PATH,
            Param("Range", RAW_ONLY + "one `bytes=a-b` range.", location="header"),
            Param(
                "If-Range",
                RAW_ONLY + "the Range applies only if this is the file's Last-Modified date; anything else (an ETag, "
                "garbage) gets the whole file.",
                location="header",
            ),
            Param("If-Modified-Since", RAW_ONLY + "304 when the file is not newer.", location="header"),
        ),
        query=ReadQuery,
        prefix=True,
    ),
)


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    operations.register(app, OPERATIONS, prefixes)
