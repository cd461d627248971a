"""HTTP adapter of the S3-style multipart uploads (`/filesystem-multipart*`): start an
upload, send its parts in any order and in parallel, complete, abort, list."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..contract import Success
from ..errors import Invalid, from_os_error
from ..http import operations
from ..http.appkeys import SETTINGS
from ..http.idempotency import idempotent
from ..http.operations import Failure, Media, Operation, Param
from ..http.paths import FILE_PATH, from_request
from ..http.prefix_routes import PrefixRouter
from ..http.responses import json_response
from .files import parse_permissions
from .pipeline import ThreadedWriter
from .routes import BAD_BODY, UPLOADS, _success
from .wire import (
    MultipartCompleteRequest,
    MultipartInitiateRequest,
    MultipartInitiateResponse,
    MultipartListPartsResponse,
    MultipartListUploadsResponse,
    MultipartPartResponse,
    PartQuery,
    PartUpload,
)
from .write_routes import _check_length, _next_part, _open_multipart, _part_chunks

UPLOAD_ID = Param("uploadId", "The id `initiate` returned.")
NO_UPLOAD = {404: Failure("No such upload.")}


async def initiate_upload(request: web.Request) -> web.Response:
    p = from_request(request)
    try:
        body = await operations.body(request, MultipartInitiateRequest)
    except Invalid:
        body = MultipartInitiateRequest()  # the original ignores a missing or broken body
    mode = parse_permissions(body.permissions, 0o644, quoted=False)
    return json_response(await request.app[UPLOADS].initiate(p.absolute, mode))


async def upload_part(request: web.Request) -> web.Response:
    uploads = request.app[UPLOADS]
    upload_id = request.match_info["uploadId"]
    number = operations.query(request, PartQuery).part_number
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
    body = await operations.body(request, MultipartCompleteRequest)
    listed = [(part.part_number, part.etag) for part in body.parts or ()]
    path = await request.app[UPLOADS].complete(request.match_info["uploadId"], listed)
    return _success(path, "Multipart upload completed successfully")


async def abort_upload(request: web.Request) -> web.Response:
    await request.app[UPLOADS].abort(request.match_info["uploadId"])
    return _success("", "Multipart upload aborted successfully")


async def list_parts(request: web.Request) -> web.Response:
    return json_response(await request.app[UPLOADS].list_parts(request.match_info["uploadId"]))


async def list_uploads(request: web.Request) -> web.Response:
    return json_response(await request.app[UPLOADS].list_sessions())


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/filesystem-multipart",
        list_uploads,
        "multipart",
        "List upload sessions",
        {200: MultipartListUploadsResponse},
        head="ok",
    ),
    Operation(
        "POST",
        "/filesystem-multipart/initiate/{path}",
        initiate_upload,
        "multipart",
        "Start an upload to a path",
        {
            200: MultipartInitiateResponse,
            400: Failure("Invalid path or permissions."),
            500: Failure("The session cannot be created (`failed to initiate upload: ...`)."),
        },
        description="A missing or broken body means the default mode (0644).",
        params=(FILE_PATH,),
        body=MultipartInitiateRequest,
        body_required=False,
        prefix=True,
    ),
    Operation(
        "PUT",
        "/filesystem-multipart/{uploadId}/part",
        upload_part,
        "multipart",
        "Upload a part",
        {
            200: MultipartPartResponse,
            400: Failure("Missing or invalid partNumber (1..10000), or no `file` field."),
            **NO_UPLOAD,
            413: Failure("The part is over `SANDBOX_MAX_UPLOAD_BYTES`."),
            500: Failure("The part cannot be stored (`failed to upload part: ...`)."),
        },
        description="Parts may come in any order and in parallel; sending a number again replaces it.",
        params=(UPLOAD_ID,),
        query=PartQuery,
        body=Media({"multipart/form-data": PartUpload}),
    ),
    Operation(
        "POST",
        "/filesystem-multipart/{uploadId}/complete",
        complete_upload,
        "multipart",
        "Assemble the parts into the file",
        {
            200: Success,
            400: Failure(f"{BAD_BODY} Also: no parts, a part listed twice, a part missing, an etag mismatch."),
            **NO_UPLOAD,
            422: Failure("The destination is a directory, device, FIFO or socket (left as it is)."),
            500: Failure("The final file cannot be created (`failed to complete upload: ...`)."),
        },
        params=(UPLOAD_ID,),
        body=MultipartCompleteRequest,
    ),
    Operation(
        "DELETE",
        "/filesystem-multipart/{uploadId}/abort",
        abort_upload,
        "multipart",
        "Abort an upload",
        {200: Success, **NO_UPLOAD},
        params=(UPLOAD_ID,),
    ),
    Operation(
        "GET",
        "/filesystem-multipart/{uploadId}/parts",
        list_parts,
        "multipart",
        "List an upload's parts",
        {200: MultipartListPartsResponse, **NO_UPLOAD},
        params=(UPLOAD_ID,),
        head="ok",
    ),
)

# Completing twice would be a 404 (the upload is gone): a retry with the key gets the first answer.
# A part sent again already replaces itself.
OPERATIONS = idempotent(OPERATIONS, ("POST", "/filesystem-multipart/{uploadId}/complete"))


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    operations.register(app, OPERATIONS, prefixes)
