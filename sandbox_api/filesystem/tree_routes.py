"""HTTP adapter of trees (`/filesystem/tree/...`): a directory level or every level
(bounded), many files written at once, a directory deleted. The path after the prefix is
always absolute."""

from __future__ import annotations

from aiohttp import web

from .. import paths
from ..contract import Success
from ..http import operations
from ..http.idempotency import idempotent
from ..http.operations import Failure, Media, Operation
from ..http.paths import FILE_PATH
from ..http.prefix_routes import TAIL, PrefixRouter
from ..http.responses import json_response
from .routes import BAD_BODY, FILES, _success
from .tree import TreeOptions
from .wire import DeleteQuery, Directory, DirectoryTree, TreeQuery, TreeRequest


async def get_tree(request: web.Request) -> web.Response:
    files = request.app[FILES]
    root = paths.from_tree_tail(request[TAIL])
    query = operations.query(request, TreeQuery)
    if not query.recursive:
        return json_response(await files.tree_listing(root))
    options = TreeOptions(
        content=query.content,
        patterns=tuple(query.patterns or ()),
        exclude_dirs=tuple(query.exclude_dirs or ()),
        exclude_hidden=query.exclude_hidden,
        max_files=query.max_files or TreeOptions.max_files,  # 0 is the default
        max_bytes=query.max_bytes or TreeOptions.max_bytes,
    )
    return json_response(await files.read_tree(root, options))


async def put_tree(request: web.Request) -> web.Response:
    root = paths.from_tree_tail(request[TAIL])
    entries = (await operations.body(request, TreeRequest)).files or {}
    for key in entries:
        paths.checked(key)
    encoded = {key: value.encode("utf-8") for key, value in entries.items()}
    return json_response(await request.app[FILES].write_tree(root, encoded))


async def delete_tree(request: web.Request) -> web.Response:
    root = paths.from_tree_tail(request[TAIL])
    await request.app[FILES].delete_tree(root, operations.query(request, DeleteQuery).recursive)
    return _success(root.display, "Directory deleted successfully")


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/filesystem/tree/{path}",
        get_tree,
        "filesystem",
        "A directory tree",
        {
            200: Media(
                {"application/json": (Directory, DirectoryTree)},
                "One level (a `Directory`), or with `recursive=true` every level (a `DirectoryTree`).",
            ),
            400: Failure("Not a directory, or an invalid `maxFiles`/`maxBytes`."),
            404: Failure("No such directory (`recursive=true`)."),
            422: Failure("Over `maxFiles` or `maxBytes` (nothing partial), or unreadable."),
        },
        description="The path is always absolute here (`/filesystem/tree/tmp/x` is `/tmp/x`).",
        params=(FILE_PATH,),
        query=TreeQuery,
        prefix=True,
    ),
    Operation(
        "PUT",
        "/filesystem/tree/{path}",
        put_tree,
        "filesystem",
        "Write many files at once",
        {
            200: Media({"application/json": Directory}, "The directory, listed after the writes."),
            400: Failure(f"{BAD_BODY} Also: a key with a `..` component, or naming the root."),
            422: Failure("A file cannot be written (what this request created is removed)."),
            507: Failure("The disk is full (what this request created is removed)."),
        },
        params=(FILE_PATH,),
        body=TreeRequest,
        prefix=True,
    ),
    Operation(
        "DELETE",
        "/filesystem/tree/{path}",
        delete_tree,
        "filesystem",
        "Delete a directory",
        {
            200: Success,
            400: Failure("Invalid path."),
            404: Failure("No such directory."),
            422: Failure("Missing, not a directory, not empty (without `recursive`), or permission denied."),
        },
        params=(FILE_PATH,),
        query=DeleteQuery,
        prefix=True,
    ),
)
OPERATIONS = idempotent(OPERATIONS, ("PUT", "/filesystem/tree/{path}"))  # a retry with the key writes once


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    operations.register(app, OPERATIONS, prefixes)
