"""`sandbox.fetch(port, path)` of the official SDK, through a real daemon's /port/{n} proxy."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web

from tests.conftest import free_port


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "target": request.raw_path,
            "header": request.headers.get("X-Test"),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
    )


async def missing(request: web.Request) -> web.Response:
    return web.Response(status=404, text="no such thing here")


@pytest_asyncio.fixture
async def upstream_port() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/missing", missing)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


async def test_fetch_gets_a_path_with_a_query(sandbox, upstream_port):
    response = await sandbox.fetch(upstream_port, "/hello/world?x=1&y=two%20words")
    assert response.status_code == 200
    body = response.json()
    assert body["method"] == "GET"
    assert body["target"] == "/hello/world?x=1&y=two%20words"


async def test_fetch_defaults_to_the_root(sandbox, upstream_port):
    response = await sandbox.fetch(upstream_port)
    assert response.json()["target"] == "/"


async def test_fetch_posts_a_body_with_headers(sandbox, upstream_port):
    payload = b"\x00\x01binary" * 100_000
    response = await sandbox.fetch(upstream_port, "submit", method="POST", content=payload, headers={"X-Test": "yes"})
    body = response.json()
    assert (body["method"], body["target"], body["header"]) == ("POST", "/submit", "yes")
    assert body["sha256"] == hashlib.sha256(payload).hexdigest()


async def test_fetch_returns_upstream_errors_as_they_are(sandbox, upstream_port):
    response = await sandbox.fetch(upstream_port, "/missing")
    assert response.status_code == 404
    assert response.text == "no such thing here"


async def test_fetch_to_a_port_nobody_listens_on_is_a_502(sandbox):
    port = free_port()
    response = await sandbox.fetch(port, "/")
    assert response.status_code == 502
    assert response.json() == {"error": f"nothing is listening on port {port}"}
