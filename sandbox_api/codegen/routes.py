"""HTTP adapter of codegen: PUT /codegen/fastapply/{path}, GET /codegen/reranking/{path}."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..http import operations
from ..http.operations import Failure, Operation
from ..http.paths import FILE_PATH, from_request
from ..http.prefix_routes import PrefixRouter
from ..http.responses import json_response
from ..lazy import OnFirstUse
from .wire import ApplyEditRequest, ApplyEditResponse, RerankingResponse, RerankQuery

if TYPE_CHECKING:
    from .service import Codegen

CODEGEN: web.AppKey[OnFirstUse[Codegen]] = web.AppKey("codegen")  # built on the first call


async def fastapply(request: web.Request) -> web.Response:
    codegen = request.app[CODEGEN]()
    codegen.ensure_configured()  # before the body is looked at, as the original
    body = await operations.body(request, ApplyEditRequest)
    result = await codegen.fastapply(from_request(request), body.code_edit, body.model)
    return json_response(result)


async def reranking(request: web.Request) -> web.Response:
    codegen = request.app[CODEGEN]()
    codegen.ensure_configured()
    query = operations.query(request, RerankQuery)
    result = await codegen.rerank(
        from_request(request), query.query, query.score_threshold, query.token_limit, query.file_pattern or None
    )
    return json_response(result)


NOT_CONFIGURED = "No provider key (`RELACE_API_KEY` or `MORPH_API_KEY`); it comes before any other check."

OPERATIONS = (
    Operation(
        "PUT",
        "/codegen/fastapply/{path}",
        fastapply,
        "codegen",
        "Merge an edit snippet into a file",
        {
            200: ApplyEditResponse,
            400: Failure(f"{NOT_CONFIGURED} Also: an invalid body (`invalid request body: ...`), a directory."),
            422: Failure("The provider failed, or the file could not be written."),
        },
        description="A model (Relace, else Morph) merges the edit; the file (created if missing) is written "
        "atomically with mode 0644.",
        params=(FILE_PATH,),
        body=ApplyEditRequest,
        prefix=True,
    ),
    Operation(
        "GET",
        "/codegen/reranking/{path}",
        reranking,
        "codegen",
        "The files most relevant to a query",
        {
            200: RerankingResponse,
            400: Failure(f"{NOT_CONFIGURED} Also: no query, an invalid parameter, not a directory."),
            422: Failure("The provider failed."),
        },
        description="Text files under the directory (hidden, dependency and binary files left out) ranked by the "
        "provider; those below `scoreThreshold` are dropped.",
        params=(FILE_PATH,),
        query=RerankQuery,
        prefix=True,
    ),
)


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    operations.register(app, OPERATIONS, prefixes)
