"""HTTP adapter of the search services: find, fuzzy search, content search."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import Invalid
from ..http import operations
from ..http.appkeys import SETTINGS
from ..http.operations import Failure, Operation
from ..http.paths import FILE_PATH, from_request
from ..http.prefix_routes import PrefixRouter
from ..http.responses import json_response
from ..lazy import OnFirstUse
from .wire import (
    DEFAULT_EXCLUDES,
    ContentSearchQuery,
    ContentSearchResponse,
    FindQuery,
    FindResponse,
    FuzzyQuery,
    FuzzySearchResponse,
)

if TYPE_CHECKING:
    from .content import ContentSearch

# Built on the first content search; find and fuzzy search import their modules on their first call.
CONTENT_SEARCH: web.AppKey[OnFirstUse[ContentSearch]] = web.AppKey("content_search")


def _exclude_dirs(names: list[str] | None) -> frozenset[str]:
    return frozenset(DEFAULT_EXCLUDES if names is None else names)


async def find_files(request: web.Request) -> web.Response:
    from . import find

    query = operations.query(request, FindQuery)
    kind = query.type or "file"
    if kind not in ("file", "directory"):
        raise Invalid(f"invalid search type: {kind}")
    root = from_request(request, formatted=False)
    result = await find.find(
        root.absolute,
        kind=kind,
        patterns=tuple(query.patterns or ()),
        exclude_dirs=_exclude_dirs(query.exclude_dirs),
        exclude_hidden=query.exclude_hidden,
        limit=query.max_results,
    )
    return json_response(result)


async def fuzzy_search(request: web.Request) -> web.Response:
    from . import fuzzy

    query = operations.query(request, FuzzyQuery)
    root = from_request(request, formatted=False)
    pattern = query.query
    if not pattern:
        # The original's quirk: without `query`, the path is both the root and the pattern.
        pattern = root.display if root.display != request.app[SETTINGS].workdir else ""
        if pattern in ("", "/", "."):
            raise Invalid("query parameter is required in path")
    result = await fuzzy.search(
        root.absolute,
        pattern,
        exclude_dirs=_exclude_dirs(query.exclude_dirs),
        exclude_hidden=query.exclude_hidden,
        limit=query.max_results,
    )
    return json_response(result)


async def content_search(request: web.Request) -> web.Response:
    query = operations.query(request, ContentSearchQuery)
    root = from_request(request, formatted=True)
    result = await request.app[CONTENT_SEARCH]().search(
        root.absolute,
        query.query,
        case_sensitive=query.case_sensitive,
        regex=query.regex,
        context=query.context_lines,
        limit=query.max_results,
        file_pattern=query.file_pattern or None,
        exclude_dirs=_exclude_dirs(query.exclude_dirs),
    )
    return json_response(result)


NO_DIRECTORY = Failure("No such directory.")

OPERATIONS = (
    Operation(
        "GET",
        "/filesystem-find/{path}",
        find_files,
        "search",
        "Find files or directories by name",
        {200: FindResponse, 400: Failure("Invalid parameter (`invalid maxResults: -1`)."), 404: NO_DIRECTORY},
        description="Paths are relative to the root, in walk order; `patterns` follow Go's `filepath.Match`.",
        params=(FILE_PATH,),
        query=FindQuery,
        prefix=True,
    ),
    Operation(
        "GET",
        "/filesystem-search/{path}",
        fuzzy_search,
        "search",
        "Fuzzy search of paths",
        {200: FuzzySearchResponse, 400: Failure("Invalid parameter, or no query."), 404: NO_DIRECTORY},
        description="Ranked like fzf; space-separated terms must all match, smart case. Without `query` the path "
        "is the pattern (the original's quirk).",
        params=(FILE_PATH,),
        query=FuzzyQuery,
        prefix=True,
    ),
    Operation(
        "GET",
        "/filesystem-content-search/{path}",
        content_search,
        "search",
        "Search file contents (ripgrep)",
        {
            200: ContentSearchResponse,
            400: Failure("No query, an invalid parameter, glob or regular expression, or no such directory."),
            422: Failure("The directory cannot be read."),
            500: Failure("ripgrep failed (`content search failed: ...`)."),
            501: Failure("ripgrep is not installed."),
        },
        description="`.gitignore` is honoured and binary files are skipped.",
        params=(FILE_PATH,),
        query=ContentSearchQuery,
        prefix=True,
    ),
)


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    operations.register(app, OPERATIONS, prefixes)
