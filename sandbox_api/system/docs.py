"""The API's own description: `/openapi.json`, and the original's `/swagger` addresses
(`/swagger` -> `/swagger/index.html`, a page that renders `/swagger/doc.json` offline).
The document is made from the app's route table the first time it is asked for."""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from ..http import operations
from ..http.operations import OPERATIONS, Empty, Media, Operation

PAGE = "/swagger/index.html"
DOCUMENT = web.AppKey("openapi_document", dict)  # "json": the document, made on first use


@cache
def _page() -> bytes:
    return (resources.files("sandbox_api.system") / "static" / "swagger.html").read_bytes()


async def openapi_json(request: web.Request) -> web.Response:
    made = request.app[DOCUMENT]
    if "json" not in made:
        from ..http.openapi import document_json  # builds every schema: loaded when first asked for

        table = request.app[OPERATIONS]
        made["json"] = document_json(table)
    body = made["json"]
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def swagger(request: web.Request) -> web.Response:
    return web.Response(status=301, headers={"Location": PAGE})


async def swagger_page(request: web.Request) -> web.Response:
    return web.Response(body=_page(), content_type="text/html", charset="utf-8")


_JSON_DOCUMENT = Media({"application/json": {"type": "object", "description": "This OpenAPI document."}})
_HTML = Media({"text/html": {"type": "string"}})

DOC_OPERATIONS = (
    Operation("GET", "/openapi.json", openapi_json, "docs", "This document", {200: _JSON_DOCUMENT}, head="same"),
    Operation(
        "GET",
        "/swagger",
        swagger,
        "docs",
        "Redirect to the API docs page",
        {301: Empty("To `/swagger/index.html`.")},
        head="same",
    ),
    Operation("GET", PAGE, swagger_page, "docs", "The API docs page (works offline)", {200: _HTML}, head="same"),
    Operation(
        "GET",
        "/swagger/doc.json",
        openapi_json,
        "docs",
        "This document (the original's address)",
        {200: _JSON_DOCUMENT},
        head="same",
    ),
)


def add_routes(app: web.Application) -> None:
    app[DOCUMENT] = {}
    operations.register(app, DOC_OPERATIONS)
