"""HTTP adapter of writing a path (`PUT /filesystem/{path}`): a file from JSON, raw bytes or
a multipart form (streamed to disk, atomic: readers see the old file or the new one), or a
directory. The streamed-upload parts are shared with upload_routes.py."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.multipart import BodyPartReader, MultipartReader

from .. import paths
from ..contract import Success
from ..errors import Invalid, PayloadTooLarge, from_os_error
from ..http import operations
from ..http.appkeys import SETTINGS
from ..http.idempotency import idempotent
from ..http.operations import Failure, Media, Operation
from ..http.paths import FILE_PATH, from_request
from ..http.prefix_routes import PrefixRouter
from .atomic import AtomicFile
from .files import parse_permissions
from .pipeline import ThreadedWriter
from .routes import BAD_BODY, BINARY, FILES, _success
from .wire import FileRequest, FileUpload, WriteQuery

CHUNK = 1024 * 1024


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


OPERATIONS: tuple[Operation, ...] = (
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
)
OPERATIONS = idempotent(OPERATIONS, ("PUT", "/filesystem/{path}"))  # a retry with the key writes once


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    operations.register(app, OPERATIONS, prefixes)
