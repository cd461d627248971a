"""HTTP adapter of the search services: find, fuzzy search, content search."""

from __future__ import annotations

import re

from aiohttp import web

from ..errors import Invalid
from ..http import paths
from ..http.appkeys import SETTINGS
from ..http.prefix_routes import PrefixRouter
from ..http.responses import json_response
from . import find, fuzzy
from .content import MAX_CONTEXT_LINES, ContentSearch
from .walk import DEFAULT_EXCLUDES

CONTENT_SEARCH = web.AppKey("content_search", ContentSearch)

MAX_RESULTS_CAP = 1000
_GO_INT = re.compile(r"^[+-]?\d+$")


def max_results(request: web.Request, default: int) -> int:
    """`maxResults`: default, positive capped at 1000, 0 = all; else 400."""
    return _int(request, "maxResults", default, MAX_RESULTS_CAP)


def exclude_dirs(request: web.Request) -> frozenset[str]:
    """`excludeDirs` replaces the defaults; `excludeDirs=,` excludes nothing."""
    raw = request.query.get("excludeDirs")
    if not raw:
        return frozenset(DEFAULT_EXCLUDES)
    return frozenset(item.strip() for item in raw.split(",") if item.strip())


def exclude_hidden(request: web.Request) -> bool:
    raw = request.query.get("excludeHidden")
    return raw is None or raw == "true"


def _int(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _GO_INT.match(raw) or int(raw) < 0:
        raise Invalid(f"invalid {name}: {raw}")
    return min(int(raw), maximum)


async def find_files(request: web.Request) -> web.Response:
    limit = max_results(request, 20)
    kind = request.query.get("type") or "file"
    if kind not in ("file", "directory"):
        raise Invalid(f"invalid search type: {kind}")
    patterns = tuple(p.strip() for p in request.query.get("patterns", "").split(",") if p.strip())
    root = paths.from_request(request, formatted=False)
    result = await find.find(
        root.absolute,
        kind=kind,
        patterns=patterns,
        exclude_dirs=exclude_dirs(request),
        exclude_hidden=exclude_hidden(request),
        limit=limit,
    )
    return json_response(result)


async def fuzzy_search(request: web.Request) -> web.Response:
    limit = max_results(request, 20)
    root = paths.from_request(request, formatted=False)
    query = request.query.get("query")
    if not query:
        # The original's quirk: without `query`, the path is both the root and the pattern.
        query = root.display if root.display != request.app[SETTINGS].workdir else ""
        if query in ("", "/", "."):
            raise Invalid("query parameter is required in path")
    result = await fuzzy.search(
        root.absolute, query, exclude_dirs=exclude_dirs(request), exclude_hidden=exclude_hidden(request), limit=limit
    )
    return json_response(result)


async def content_search(request: web.Request) -> web.Response:
    query = request.query.get("query", "")
    if not query:
        raise Invalid("query parameter is required")
    root = paths.from_request(request, formatted=True)
    result = await request.app[CONTENT_SEARCH].search(
        root.absolute,
        query,
        case_sensitive=request.query.get("caseSensitive") == "true",
        regex=request.query.get("regex") == "true",
        context=_int(request, "contextLines", 0, MAX_CONTEXT_LINES),
        limit=max_results(request, 100),
        file_pattern=request.query.get("filePattern") or None,
        exclude_dirs=exclude_dirs(request),
    )
    return json_response(result)


def add_routes(prefixes: PrefixRouter) -> None:
    prefixes.add("GET", "/filesystem-find", find_files)
    prefixes.add("GET", "/filesystem-search", fuzzy_search)
    prefixes.add("GET", "/filesystem-content-search", content_search)
