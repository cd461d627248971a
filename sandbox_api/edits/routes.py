"""HTTP adapter of the exact edits: POST /edit/view, /edit/str-replace, /edit/create, /edit/insert.

Each takes a JSON body (`path` relative to the working directory, `~` and `//` as in every
body path) and answers the service's result as JSON; see edits/service.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .. import paths
from ..http import operations
from ..http.appkeys import SETTINGS
from ..http.operations import Failure, Media, Operation
from ..http.responses import json_response
from ..lazy import OnFirstUse
from .wire import (
    ConflictError,
    Created,
    CreateRequest,
    DirectoryView,
    Edited,
    EditError,
    FileView,
    InsertRequest,
    StrReplaceRequest,
    ViewRequest,
)

if TYPE_CHECKING:
    from .service import Edits

EDITS: web.AppKey[OnFirstUse[Edits]] = web.AppKey("edits")  # built on the first edit


def _path(request: web.Request, value: str) -> paths.ResolvedPath:
    return paths.from_body(value, request.app[SETTINGS].workdir)


async def view(request: web.Request) -> web.Response:
    body = await operations.body(request, ViewRequest)
    return json_response(await request.app[EDITS]().view(_path(request, body.path), body.view_range))


async def str_replace(request: web.Request) -> web.Response:
    body = await operations.body(request, StrReplaceRequest)
    result = await request.app[EDITS]().str_replace(
        _path(request, body.path), body.old_str, body.new_str or "", body.expected_sha256
    )
    return json_response(result)


async def create(request: web.Request) -> web.Response:
    body = await operations.body(request, CreateRequest)
    return json_response(
        await request.app[EDITS]().create(_path(request, body.path), body.file_text, body.expected_sha256)
    )


async def insert(request: web.Request) -> web.Response:
    body = await operations.body(request, InsertRequest)
    result = await request.app[EDITS]().insert(
        _path(request, body.path), body.insert_line, body.insert_text, body.expected_sha256
    )
    return json_response(result)


# The answers every edit shares.
_CONFLICT = Media(
    {"application/json": ConflictError},
    "`expectedSha256` names another version than the file's (or the file changed during the edit, or is gone): "
    "nothing was written; `currentSha256` is the file's hash now.",
)
_TOO_LARGE = Failure("The file, the edit's result or the text is over `SANDBOX_MAX_EDIT_BYTES` (default 10 MiB).")
_FAILURES = {
    403: Failure("Permission denied (or a read-only filesystem)."),
    404: Failure("No such file (or parent)."),
    413: _TOO_LARGE,
    507: Failure("The disk is full: nothing was written."),
}


def _answers(answers: dict[int, object]) -> dict[int, object]:
    return dict(sorted(answers.items()))  # by status, as the document lists them


_CHANGE = "Atomic (a temp file renamed over the target); the file keeps its mode, owner and line endings."

OPERATIONS = (
    Operation(
        "POST",
        "/edit/view",
        view,
        "edit",
        "View a file's numbered lines, or a directory two levels deep",
        {
            200: Media({"application/json": (FileView, DirectoryView)}, "A file's lines, or a directory's entries."),
            400: Failure("A malformed body, or a `viewRange` that is not one (or given for a directory)."),
            403: _FAILURES[403],
            404: _FAILURES[404],
            413: _TOO_LARGE,
            422: Failure("A binary file (a NUL byte) or one that is not UTF-8, with the offset."),
        },
        description="Every line asked for is answered: use `viewRange` on long files.",
        body=ViewRequest,
    ),
    Operation(
        "POST",
        "/edit/str-replace",
        str_replace,
        "edit",
        "Replace the one occurrence of a text",
        _answers(
            {
                200: Edited,
                400: Failure(
                    "A malformed body, an empty `oldStr`, `oldStr` equal to `newStr`, or a malformed `expectedSha256`."
                ),
                409: _CONFLICT,
                422: Media(
                    {"application/json": EditError},
                    "`oldStr` occurs zero or several times (`occurrences`, `lines`), or the path is a directory, a "
                    "binary file or not UTF-8: nothing changed.",
                ),
                **_FAILURES,
            }
        ),
        description=_CHANGE + " `oldStr` is matched with the file's CRLF read as LF.",
        body=StrReplaceRequest,
    ),
    Operation(
        "POST",
        "/edit/create",
        create,
        "edit",
        "Write a whole file (an existing one is replaced)",
        _answers(
            {
                200: Created,
                400: Failure("A malformed body, or a malformed `expectedSha256`."),
                409: _CONFLICT,
                422: Failure("The path is a directory or not a regular file."),
                **_FAILURES,
            }
        ),
        description=_CHANGE + " Missing parents are created; send `expectedSha256` to replace only the version "
        "you read.",
        body=CreateRequest,
    ),
    Operation(
        "POST",
        "/edit/insert",
        insert,
        "edit",
        "Insert lines after a line",
        _answers(
            {
                200: Edited,
                400: Failure(
                    "A malformed body, an empty `insertText`, an `insertLine` below 0 or past the end, or a malformed "
                    "`expectedSha256`."
                ),
                409: _CONFLICT,
                422: Failure("The path is a directory, a binary file or not UTF-8."),
                **_FAILURES,
            }
        ),
        description=_CHANGE,
        body=InsertRequest,
    ),
)


def add_routes(app: web.Application) -> None:
    operations.register(app, OPERATIONS)
