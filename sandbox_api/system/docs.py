"""The API's own description: `/openapi.json`, and the original's `/swagger` addresses
(`/swagger` -> `/swagger/index.html`, a page that renders `/swagger/doc.json` offline)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from ..http.appkeys import SETTINGS

PAGE = "/swagger/index.html"


@cache
def _page() -> bytes:
    return (resources.files("sandbox_api.system") / "static" / "swagger.html").read_bytes()


async def openapi_json(request: web.Request) -> web.Response:
    from ..openapi import document_json  # a big table: loaded when first asked for

    body = document_json(terminal=not request.app[SETTINGS].disable_terminal)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def swagger(request: web.Request) -> web.Response:
    return web.Response(status=301, headers={"Location": PAGE})


async def swagger_page(request: web.Request) -> web.Response:
    return web.Response(body=_page(), content_type="text/html", charset="utf-8")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/openapi.json", openapi_json)
    r.add_get("/swagger", swagger)
    r.add_get(PAGE, swagger_page)
    r.add_get("/swagger/doc.json", openapi_json)
