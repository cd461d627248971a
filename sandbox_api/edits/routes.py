"""HTTP adapter of the exact edits: POST /edit/view, /edit/str-replace, /edit/create, /edit/insert.

Each takes a JSON body (`path` relative to the working directory, `~` and `//` as in every
body path) and answers the service's result as JSON; see edits/service.py.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import Invalid
from ..http import paths
from ..http.appkeys import SETTINGS
from ..http.responses import field, json_response, read_json_object
from .service import Edits

EDITS = web.AppKey("edits", Edits)


async def _body(request: web.Request) -> tuple[dict[str, Any], paths.ResolvedPath]:
    body = await read_json_object(request)
    path = field(body, "path", str)
    if not path:
        raise Invalid("invalid request body: field path is required")
    return body, paths.from_body(path, request.app[SETTINGS].workdir)


def _view_range(body: dict[str, Any]) -> list[int] | None:
    value = field(body, "viewRange", list)
    if value is not None and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise Invalid("invalid request body: field viewRange must be two integers [start, end]")
    return value


def _required_text(body: dict[str, Any], key: str) -> str:
    value = field(body, key, str)
    if value is None:
        raise Invalid(f"invalid request body: field {key} is required")
    return value


async def view(request: web.Request) -> web.Response:
    body, p = await _body(request)
    return json_response(await request.app[EDITS].view(p, _view_range(body)))


async def str_replace(request: web.Request) -> web.Response:
    body, p = await _body(request)
    old = _required_text(body, "oldStr")
    result = await request.app[EDITS].str_replace(
        p, old, field(body, "newStr", str, ""), field(body, "expectedSha256", str)
    )
    return json_response(result)


async def create(request: web.Request) -> web.Response:
    body, p = await _body(request)
    text = _required_text(body, "fileText")
    return json_response(await request.app[EDITS].create(p, text, field(body, "expectedSha256", str)))


async def insert(request: web.Request) -> web.Response:
    body, p = await _body(request)
    line = field(body, "insertLine", int)
    if line is None:
        raise Invalid("invalid request body: field insertLine is required")
    text = _required_text(body, "insertText")
    return json_response(await request.app[EDITS].insert(p, line, text, field(body, "expectedSha256", str)))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/edit/view", view)
    r.add_post("/edit/str-replace", str_replace)
    r.add_post("/edit/create", create)
    r.add_post("/edit/insert", insert)
