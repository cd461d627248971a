"""With a token, the browser pages load without it and authenticate what they do with it."""

from __future__ import annotations

from dataclasses import replace

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app

TOKEN = "page-secret-42"


@pytest.fixture
async def guarded(settings):
    async with TestClient(TestServer(build_app(replace(settings, auth_token=TOKEN)))) as c:
        yield c


async def test_the_pages_and_their_assets_need_no_token(guarded):
    for path in ("/terminal", "/swagger", "/swagger/index.html", "/openapi.json", "/swagger/doc.json",
                 "/terminal/static/xterm.js"):  # fmt: skip
        resp = await guarded.get(path)
        assert resp.status == 200, path


async def test_everything_else_still_needs_it(guarded):
    assert (await guarded.get("/process")).status == 401
    assert (await guarded.get("/process", params={"token": TOKEN})).status == 401  # the query is for the socket only
    assert (await guarded.post("/terminal")).status in (401, 405)
    assert (await guarded.get("/process", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200


@pytest.mark.usefixtures("clean_home")
async def test_the_terminal_socket_takes_the_token_from_its_query(guarded):
    for params in ({}, {"token": "wrong"}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await guarded.ws_connect("/terminal/ws", params={"sessionId": "t1", **params})
        assert refused.value.status == 401
    ws = await guarded.ws_connect("/terminal/ws", params={"sessionId": "t1", "token": TOKEN, "cols": 80, "rows": 24})
    try:
        await ws.send_json({"type": "input", "data": "echo via-$((40+2))\n"})
        seen = ""
        while "via-42" not in seen:
            msg = await ws.receive_json(timeout=10)
            seen += msg.get("data", "")
    finally:
        await ws.close()
