"""HTTP adapter of codegen: PUT /codegen/fastapply/{path}, GET /codegen/reranking/{path}."""

from __future__ import annotations

from aiohttp import web

from ..errors import Invalid
from ..http import paths
from ..http.prefix_routes import PrefixRouter
from ..http.responses import json_response, read_json_object
from .service import Codegen

CODEGEN = web.AppKey("codegen", Codegen)


def _number(request: web.Request, name: str, kind: type) -> float | int:
    raw = request.query.get(name, "")
    if not raw:
        return 0
    try:
        return kind(raw)
    except ValueError:
        raise Invalid(f"invalid {name}: {raw}") from None


async def fastapply(request: web.Request) -> web.Response:
    request.app[CODEGEN].ensure_configured()
    body = await read_json_object(request)
    result = await request.app[CODEGEN].fastapply(paths.from_request(request), body.get("codeEdit"), body.get("model"))
    return json_response(result)


async def reranking(request: web.Request) -> web.Response:
    result = await request.app[CODEGEN].rerank(
        paths.from_request(request),
        request.query.get("query"),
        _number(request, "scoreThreshold", float),
        int(_number(request, "tokenLimit", int)),
        request.query.get("filePattern") or None,
    )
    return json_response(result)


def add_routes(prefixes: PrefixRouter) -> None:
    prefixes.add("PUT", "/codegen/fastapply", fastapply)
    prefixes.add("GET", "/codegen/reranking", reranking)
