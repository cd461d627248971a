"""HTTP adapter of the filesystem service: what its route modules share, and deleting a path
(`DELETE /filesystem/{path}`) and copying (`/filesystem-copy`). Reading a path is
read_routes.py, writing one write_routes.py; trees, tree_routes.py; multipart uploads,
upload_routes.py."""

from __future__ import annotations

from aiohttp import web

from .. import paths
from ..contract import Success
from ..http import operations
from ..http.appkeys import SETTINGS
from ..http.idempotency import idempotent
from ..http.operations import Failure, Operation
from ..http.paths import FILE_PATH, from_request
from ..http.prefix_routes import PrefixRouter
from ..http.responses import json_response
from .files import Files
from .uploads import Uploads
from .wire import CopyRequest, CopyResponse, DeleteQuery

FILES = web.AppKey("files", Files)
UPLOADS = web.AppKey("uploads", Uploads)

BINARY = {"type": "string", "format": "binary"}
BAD_BODY = "Invalid JSON body or field (`invalid request body: ...`)."
BAD_PATH = "Invalid path (a NUL byte, `~` without a home directory...)."


def _success(path: str, message: str) -> web.Response:
    return json_response({"path": path, "message": message})


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


OPERATIONS: tuple[Operation, ...] = (
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
OPERATIONS = idempotent(OPERATIONS, ("POST", "/filesystem-copy"))  # a retry with the key copies once


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    operations.register(app, OPERATIONS, prefixes)
