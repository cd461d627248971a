"""/port/{n}: the daemon's credentials stay home, loops are cut, bad upstream headers are a 502."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app
from sandbox_api.network.proxy import PORT_PROXY
from tests.network.test_port_proxy import Upstream, upstream  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(60)


def _headers(body: dict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in body["headers"]:
        found.setdefault(name.lower(), []).append(value)
    return found


async def test_the_daemon_token_is_not_forwarded_to_the_app(settings, upstream):  # noqa: F811
    async with TestClient(TestServer(build_app(replace(settings, auth_token="daemon-s3cret")))) as c:
        resp = await c.get(f"/port/{upstream.port}/h", headers={"Authorization": "Bearer daemon-s3cret"})
        assert resp.status == 200
        headers = _headers(await resp.json())
        assert "authorization" not in headers
        assert "daemon-s3cret" not in str(headers)
        # Authenticated by X-Blaxel-Authorization, the app's own Authorization passes on untouched.
        resp = await c.get(
            f"/port/{upstream.port}/h",
            headers={"X-Blaxel-Authorization": "Bearer daemon-s3cret", "Authorization": "Bearer for-the-app"},
        )
        headers = _headers(await resp.json())
        assert headers["authorization"] == ["Bearer for-the-app"]
        assert "x-blaxel-authorization" not in headers


async def test_the_daemon_token_is_not_forwarded_on_a_websocket(settings, upstream):  # noqa: F811
    seen: list[str | None] = []
    app = web.Application()

    async def ws(request: web.Request) -> web.WebSocketResponse:
        seen.append(request.headers.get("Authorization"))
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.close()
        return socket

    app.router.add_get("/ws", ws)
    async with TestServer(app) as other, TestClient(TestServer(build_app(replace(settings, auth_token="tok")))) as c:
        async with c.ws_connect(f"/port/{other.port}/ws", headers={"Authorization": "Bearer tok"}) as socket:
            await socket.receive()
    assert seen == [None]


async def test_forwarded_requests_carry_our_via(client, upstream):  # noqa: F811
    resp = await client.get(f"/port/{upstream.port}/h", headers={"Via": "1.1 edge"})
    via = _headers(await resp.json())["via"]
    assert len(via) == 1 and via[0].startswith("1.1 edge, 1.1 sandbox-api-")


@pytest_asyncio.fixture
async def relay_to_daemon(client) -> AsyncIterator[int]:
    """A plain TCP relay on another port back to the daemon: a loop the port check cannot see."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", client.port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_a_loop_through_another_port_is_cut_at_the_second_pass(client, relay_to_daemon):
    port = relay_to_daemon
    path = "".join(f"/port/{port}" for _ in range(50)) + "/health"
    resp = await client.get(path)
    assert resp.status == 508
    assert "loop detected" in (await resp.json())["error"]
    assert client.app[PORT_PROXY].active == 0


async def test_relays_beyond_the_cap_are_refused(client, upstream):  # noqa: F811
    proxy = client.app[PORT_PROXY]
    proxy.max_relays = 2
    upstream.release_stream.clear()
    first = await client.get(f"/port/{upstream.port}/events")
    second = await client.get(f"/port/{upstream.port}/events")
    assert first.status == second.status == 200
    refused = await client.get(f"/port/{upstream.port}/h")
    assert refused.status == 503
    assert "too many proxied requests" in (await refused.json())["error"]
    upstream.release_stream.set()
    await first.read()
    await second.read()
    assert (await client.get(f"/port/{upstream.port}/h")).status == 200
    assert proxy.active == 0


@pytest.mark.parametrize("value", [b"a\x01b", b"a\x1bb", b"a\x7fb"])
async def test_an_upstream_header_with_a_control_character_is_a_502(client, value):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nX-Bad: " + value + b"\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        resp = await client.get(f"/port/{server.sockets[0].getsockname()[1]}/x")
        assert resp.status == 502
        assert "header 'X-Bad' holds a control character" in (await resp.json())["error"]
    finally:
        server.close()


async def test_a_real_daemon_refuses_its_own_port(daemon):
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{daemon.url}/port/{daemon.port}/health") as resp:
            assert resp.status == 508
