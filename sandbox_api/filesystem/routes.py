"""HTTP adapter of the filesystem service: /filesystem*, /filesystem-multipart*, /filesystem-copy."""

from __future__ import annotations

import asyncio
import logging
import os
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

from aiohttp import web
from aiohttp.multipart import BodyPartReader, MultipartReader

from .. import names, paths
from ..contract import Success
from ..errors import Invalid, PayloadTooLarge, RangeNotSatisfiable, from_os_error
from ..http import operations
from ..http.appkeys import SETTINGS
from ..http.idempotency import idempotent
from ..http.operations import Empty, Failure, Media, Operation, Param
from ..http.paths import FILE_PATH, from_request
from ..http.prefix_routes import PrefixRouter
from ..http.responses import JSON_TYPE, json_bytes, json_response
from ..http.streams import json_string
from .atomic import AtomicFile
from .files import Download, Files, parse_permissions
from .pipeline import ThreadedWriter
from .uploads import Uploads
from .wire import (
    CopyRequest,
    CopyResponse,
    DeleteQuery,
    Directory,
    FileRequest,
    FileUpload,
    FileWithContent,
    ReadQuery,
    WriteQuery,
)

log = logging.getLogger("sandbox_api.filesystem")

FILES = web.AppKey("files", Files)
UPLOADS = web.AppKey("uploads", Uploads)

CHUNK = 1024 * 1024
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


def _success(path: str, message: str) -> web.Response:
    return json_response({"path": path, "message": message})


def wants_download(request: web.Request) -> bool:
    if operations.query(request, ReadQuery).download:
        return True
    accept = request.headers.get("Accept", "")
    if not accept:
        return False
    if "application/octet-stream" in accept:
        return True
    return not any(kind in accept for kind in ("application/json", "*/*"))


# --- GET /filesystem/{path} ------------------------------------------------------------


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


# --- PUT /filesystem/{path} ------------------------------------------------------------


async def put_path(request: web.Request) -> web.Response:
    files = request.app[FILES]
    p = from_request(request)
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("multipart/form-data"):
        await _write_form(request, p)
        return _success(p.display, "Binary file uploaded successfully")
    if content_type.startswith("application/octet-stream"):
        mode = parse_permissions(operations.query(request, WriteQuery).permissions, 0o644)
        async with _FileUpload(request, p.absolute, mode) as upload:
            await upload.feed(_chunks(request))
            await upload.commit()
        return _success(p.display, "Binary file uploaded successfully")
    body = await operations.body(request, FileRequest)
    if body.is_directory:
        await files.make_directory(p, parse_permissions(body.permissions, 0o755))
        return _success(p.display, "Directory created successfully")
    mode = parse_permissions(body.permissions, 0o644)
    # (decode_body makes an escaped lone surrogate U+FFFD, as Go: the text encodes)
    await files.write_bytes(p, (body.content or "").encode("utf-8"), mode)
    return _success(p.display, "File created/updated successfully")


def _check_length(request: web.Request) -> None:
    limit = request.app[SETTINGS].max_upload_bytes
    if limit and request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body too large: the limit is {limit} bytes")


async def _chunks(request: web.Request):
    async for chunk in request.content.iter_chunked(CHUNK):
        yield chunk


async def _part_chunks(part: BodyPartReader):
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


class _FileUpload:
    """A streamed upload into `target`: nothing is visible until `commit`, and nothing
    is left behind by `abort` (client gone, body too large, disk full...)."""

    def __init__(self, request: web.Request, target: str, mode: int) -> None:
        _check_length(request)
        self.file = AtomicFile(target, mode)
        self.files = request.app[FILES]
        self.writer = ThreadedWriter(self.file, request.app[SETTINGS].max_upload_bytes)

    async def __aenter__(self) -> _FileUpload:
        try:
            await self.files.run(self.file.open)  # created as the workload user
        except OSError as e:
            raise from_os_error(e, "error writing file: ", op="open") from None
        return self

    async def feed(self, chunks: Any) -> None:
        async for chunk in chunks:
            await self.writer.write(chunk)
        await self.writer.flush()

    async def commit(self, mode: int | None = None) -> None:
        if mode is not None:
            self.file.mode = mode
        await self.files.run(self.file.commit)

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if self.file.fd >= 0 or kind is not None:
            await self.writer.discard()
            await self.files.run(self.file.abort)
        if isinstance(error, OSError) and not isinstance(error, ConnectionError):
            raise from_os_error(error, "error writing binary file: ") from None


async def _open_multipart(request: web.Request) -> MultipartReader:
    try:
        return await request.multipart()
    except (ValueError, AssertionError) as e:
        raise Invalid(f"error reading multipart data: {e}") from None


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    """The next body part (nested multiparts are skipped); a malformed one is 400."""
    while True:
        try:
            part = await reader.next()
        except ValueError as e:
            raise Invalid(f"error reading multipart part: {e}") from None
        if part is None or isinstance(part, BodyPartReader):
            return part


async def _write_form(request: web.Request, p: paths.ResolvedPath) -> None:
    """multipart/form-data: the first `file` part with a filename is the content;
    `permissions` is honoured before or after it (both SDKs' orders)."""
    reader = await _open_multipart(request)
    mode: int | None = None
    async with _FileUpload(request, p.absolute, 0o644) as upload:
        written = False
        while (part := await _next_part(reader)) is not None:
            if part.name == "permissions" and not part.filename:
                try:
                    value = (await part.text()).strip()
                except (ValueError, LookupError, RuntimeError) as e:  # undecodable, unknown charset or encoding
                    raise Invalid(f"error reading multipart part: {e}") from None
                if value:
                    mode = parse_permissions(value, 0o644)
            elif part.name == "file" and part.filename and not written:
                await upload.feed(_part_chunks(part))
                written = True
            else:
                await part.release()
        if not written:
            raise Invalid("missing 'file' field in multipart form")
        await upload.commit(mode)


# --- DELETE /filesystem/{path} -----------------------------------------------------------


async def delete_path(request: web.Request) -> web.Response:
    p = from_request(request)
    kind = await request.app[FILES].delete(p, operations.query(request, DeleteQuery).recursive)
    return _success(p.display, "Directory deleted successfully" if kind == "directory" else "File deleted successfully")


# --- /filesystem-copy ------------------------------------------------------------------


async def copy(request: web.Request) -> web.Response:
    body = await operations.body(request, CopyRequest)
    workdir = request.app[SETTINGS].workdir
    source, destination = paths.from_body(body.source, workdir), paths.from_body(body.destination, workdir)
    target = await request.app[FILES].copy(source, destination, bool(body.no_overwrite))
    return json_response({"message": "Files copied", "source": body.source, "destination": target})


# --- /filesystem-multipart -------------------------------------------------------------


UPLOAD_ID = Param("uploadId", "The id `initiate` returned.")
BINARY = {"type": "string", "format": "binary"}
BAD_BODY = "Invalid JSON body or field (`invalid request body: ...`)."
BAD_PATH = "Invalid path (a NUL byte, `~` without a home directory...)."
NO_UPLOAD = {404: Failure("No such upload.")}
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
    Operation(
        "PUT",
        "/filesystem/{path}",
        put_path,
        "filesystem",
        "Write a file or make a directory",
        {
            200: Success,
            400: Failure(f"{BAD_BODY} Also: invalid permissions, a multipart form without `file`."),
            413: Failure("The body is over `SANDBOX_MAX_UPLOAD_BYTES`."),
            422: Failure(
                "The file cannot be written (a directory is in the way, permission denied, the path is a device, FIFO "
                "or socket, which is never replaced...)."
            ),
            507: Failure("The disk is full; the old file is left as it was."),
        },
        description="Atomic: readers see the old file or the new one. JSON (`content`, or `isDirectory`), a multipart "
        "form (`file`, `permissions`) or raw bytes (`?permissions=`).",
        params=(FILE_PATH,),
        query=WriteQuery,
        body=Media(
            {"application/json": FileRequest, "multipart/form-data": FileUpload, "application/octet-stream": BINARY}
        ),
        prefix=True,
    ),
    Operation(
        "DELETE",
        "/filesystem/{path}",
        delete_path,
        "filesystem",
        "Delete a file or directory",
        {
            200: Success,
            400: Failure(BAD_PATH),
            404: Failure("No such file or directory."),
            422: Failure("The directory is not empty (without `recursive`), or permission denied."),
        },
        params=(FILE_PATH,),
        query=DeleteQuery,
        prefix=True,
    ),
    Operation(
        "POST",
        "/filesystem-copy",
        copy,
        "filesystem",
        "Copy a file or directory",
        {
            200: CopyResponse,
            400: Failure(f"{BAD_BODY} Also: a copy onto or into itself."),
            404: Failure("No such source."),
            409: Failure("The target exists and `noOverwrite` is set (`code: FILE_ALREADY_EXISTS`)."),
            422: Failure("The copy failed; the source is a device, FIFO or socket; the target is one."),
            507: Failure("The disk is full."),
        },
        description="`cp -r` semantics; paths are relative to WORKDIR unless absolute.",
        body=CopyRequest,
    ),
)

# The writes that take an Idempotency-Key (a part upload is already safe to send again).
OPERATIONS = idempotent(
    OPERATIONS,
    ("PUT", "/filesystem/{path}"),
    ("POST", "/filesystem-copy"),
)


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    operations.register(app, OPERATIONS, prefixes)
