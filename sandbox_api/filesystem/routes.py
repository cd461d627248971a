"""HTTP adapter of the filesystem service: /filesystem*, /filesystem-multipart*, /filesystem-copy."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

from aiohttp import web
from aiohttp.multipart import BodyPartReader, MultipartReader

from .. import names
from ..errors import Invalid, PayloadTooLarge, RangeNotSatisfiable, from_os_error
from ..http import paths
from ..http.appkeys import SETTINGS
from ..http.prefix_routes import TAIL, PrefixRouter
from ..http.responses import JSON_TYPE, field, head_ok, json_bytes, json_response, read_json_object
from ..http.streams import json_string
from .atomic import AtomicFile
from .files import Download, Files, parse_permissions
from .pipeline import ThreadedWriter
from .tree import TreeOptions
from .uploads import Uploads

log = logging.getLogger("sandbox_api.filesystem")

FILES = web.AppKey("files", Files)
UPLOADS = web.AppKey("uploads", Uploads)

CHUNK = 1024 * 1024
# A JSON read of a file up to this size is one plain response; larger ones stream. Small,
# because escaping can make 6 bytes of a byte (a NUL is \u0000), and it all is in memory.
SMALL_READ = 256 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")

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
    if request.query.get("download") == "true":
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
    p = paths.from_request(request)
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
    p = paths.from_request(request)
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("multipart/form-data"):
        await _write_form(request, p)
        return _success(p.display, "Binary file uploaded successfully")
    if content_type.startswith("application/octet-stream"):
        mode = parse_permissions(request.query.get("permissions"), 0o644)
        async with _FileUpload(request, p.absolute, mode) as upload:
            await upload.feed(_chunks(request))
            await upload.commit()
        return _success(p.display, "Binary file uploaded successfully")
    data = await read_json_object(request)
    is_directory = field(data, "isDirectory", bool, False)
    permissions = field(data, "permissions", str)
    if is_directory:
        await files.make_directory(p, parse_permissions(permissions, 0o755))
        return _success(p.display, "Directory created successfully")
    mode = parse_permissions(permissions, 0o644)
    content = field(data, "content", str, "")
    await files.write_bytes(p, _utf8(content), mode)
    return _success(p.display, "File created/updated successfully")


def _utf8(text: str) -> bytes:
    """UTF-8 of JSON text; lone surrogates (`"\\ud800"`) become U+FFFD, as Go decodes them."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


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
    p = paths.from_request(request)
    kind = await request.app[FILES].delete(p, request.query.get("recursive") == "true")
    return _success(p.display, "Directory deleted successfully" if kind == "directory" else "File deleted successfully")


# --- /filesystem/tree ------------------------------------------------------------------


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"invalid {name}: {raw!r} is not an integer") from None
    if value < 0:
        raise Invalid(f"invalid {name}: must not be negative")
    return value or default


async def get_tree(request: web.Request) -> web.Response:
    files = request.app[FILES]
    root = paths.from_tree_tail(request[TAIL])
    if request.query.get("recursive") != "true":
        return json_response(await files.tree_listing(root))
    options = TreeOptions(
        content=request.query.get("content") == "true",
        patterns=_csv(request.query.get("patterns")),
        exclude_dirs=_csv(request.query.get("excludeDirs")),
        exclude_hidden=request.query.get("excludeHidden") == "true",
        max_files=_int_param(request, "maxFiles", TreeOptions.max_files),
        max_bytes=_int_param(request, "maxBytes", TreeOptions.max_bytes),
    )
    return json_response(await files.read_tree(root, options))


async def put_tree(request: web.Request) -> web.Response:
    root = paths.from_tree_tail(request[TAIL])
    data = await read_json_object(request)
    entries = field(data, "files", dict, {})
    for key, value in entries.items():
        if not isinstance(value, str):
            raise Invalid(f"invalid request body: files.{key} must be a string")
        paths.checked(key)
    encoded = {key: _utf8(value) for key, value in entries.items()}
    return json_response(await request.app[FILES].write_tree(root, encoded))


async def delete_tree(request: web.Request) -> web.Response:
    root = paths.from_tree_tail(request[TAIL])
    await request.app[FILES].delete_tree(root, request.query.get("recursive") == "true")
    return _success(root.display, "Directory deleted successfully")


# --- /filesystem-copy ------------------------------------------------------------------


async def copy(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    source = field(data, "source", str, "")
    destination = field(data, "destination", str, "")
    if not source or not destination:
        raise Invalid("invalid request body: source and destination are required")
    workdir = request.app[SETTINGS].workdir
    target = await request.app[FILES].copy(
        paths.from_body(source, workdir), paths.from_body(destination, workdir), field(data, "noOverwrite", bool, False)
    )
    return json_response({"message": "Files copied", "source": source, "destination": target})


# --- /filesystem-multipart -------------------------------------------------------------


async def initiate_upload(request: web.Request) -> web.Response:
    p = paths.from_request(request)
    try:
        data = await read_json_object(request, required=False)
    except Invalid:
        data = {}  # the original ignores a missing or broken body
    permissions = data.get("permissions") if isinstance(data.get("permissions"), str) else None
    mode = parse_permissions(permissions, 0o644, quoted=False)
    return json_response(await request.app[UPLOADS].initiate(p.absolute, mode))


async def upload_part(request: web.Request) -> web.Response:
    uploads = request.app[UPLOADS]
    upload_id = request.match_info["upload_id"]
    raw = request.query.get("partNumber")
    if raw is None or raw == "":
        raise Invalid("partNumber is required")
    try:
        number = int(raw)
    except ValueError:
        raise Invalid(f'invalid partNumber: strconv.Atoi: parsing "{raw}": invalid syntax') from None
    uploads.check_part_number(number)
    _check_length(request)
    reader = await _open_multipart(request)
    while (part := await _next_part(reader)) is not None:
        if part.name == "file":
            staged = await uploads.part_writer(upload_id, number)
            writer = ThreadedWriter(staged, request.app[SETTINGS].max_upload_bytes)
            try:
                async for chunk in _part_chunks(part):
                    await writer.write(chunk)
                await writer.flush()
                result = await asyncio.to_thread(staged.finish)
            except BaseException as e:
                await writer.discard()
                await asyncio.to_thread(staged.abort)
                if isinstance(e, OSError):
                    raise from_os_error(e, "failed to upload part: ") from None
                raise
            return json_response({"partNumber": result.number, "etag": result.etag, "size": result.size})
        await part.release()
    raise Invalid("missing 'file' field in multipart form")


async def complete_upload(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    listed = []
    for item in field(data, "parts", list, []):
        if not isinstance(item, dict):
            raise Invalid("invalid request body: parts must hold objects")
        listed.append((field(item, "partNumber", int, 0), field(item, "etag", str, "")))
    path = await request.app[UPLOADS].complete(request.match_info["upload_id"], listed)
    return _success(path, "Multipart upload completed successfully")


async def abort_upload(request: web.Request) -> web.Response:
    await request.app[UPLOADS].abort(request.match_info["upload_id"])
    return _success("", "Multipart upload aborted successfully")


async def list_parts(request: web.Request) -> web.Response:
    return json_response(await request.app[UPLOADS].list_parts(request.match_info["upload_id"]))


async def list_uploads(request: web.Request) -> web.Response:
    return json_response(await request.app[UPLOADS].list_sessions())


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    for method, handler in (("GET", get_path), ("PUT", put_path), ("DELETE", delete_path)):
        prefixes.add(method, "/filesystem", handler)
    for method, handler in (("GET", get_tree), ("PUT", put_tree), ("DELETE", delete_tree)):
        prefixes.add(method, "/filesystem/tree", handler)
    prefixes.add("POST", "/filesystem-multipart/initiate", initiate_upload)
    r = app.router
    r.add_post("/filesystem-copy", copy)
    r.add_get("/filesystem-multipart", list_uploads, allow_head=False)
    r.add_route("HEAD", "/filesystem-multipart", head_ok)
    r.add_put("/filesystem-multipart/{upload_id}/part", upload_part)
    r.add_post("/filesystem-multipart/{upload_id}/complete", complete_upload)
    r.add_delete("/filesystem-multipart/{upload_id}/abort", abort_upload)
    r.add_get("/filesystem-multipart/{upload_id}/parts", list_parts, allow_head=False)
    r.add_route("HEAD", "/filesystem-multipart/{upload_id}/parts", head_ok)
