"""/port/{n}/...: a reverse proxy to a real upstream server on 127.0.0.1:n."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest_asyncio
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from sandbox_api.app import build_app
from sandbox_api.network.proxy import PORT_PROXY, PortProxy
from tests.conftest import free_port

UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_CHUNK = 256 * 1024


@dataclass
class Upstream:
    """A real aiohttp server the proxy forwards to, with hooks the tests wait on."""

    port: int = 0
    upload_started: asyncio.Event = field(default_factory=asyncio.Event)
    release_stream: asyncio.Event = field(default_factory=asyncio.Event)
    stream_finished_at: float = 0.0
    ws_closed: asyncio.Future[int | None] | None = None
    quiet_abandoned: asyncio.Event = field(default_factory=asyncio.Event)

    async def echo(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "method": request.method,
                "target": request.raw_path,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": (await request.read()).decode(),
            }
        )

    async def upload(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            self.upload_started.set()
            digest.update(chunk)
            size += len(chunk)
        return web.json_response(
            {"sha256": digest.hexdigest(), "size": size, "chunked": request.headers.get("Transfer-Encoding")}
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        # Finishes only once the test has seen the first event through the proxy.
        await asyncio.wait_for(self.release_stream.wait(), 10)
        await response.write(b"data: second\n\n")
        self.stream_finished_at = time.monotonic()
        return response

    async def quiet(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        while request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(0.05)  # then nothing, until the proxy lets go
        self.quiet_abandoned.set()
        return response

    async def headers(self, request: web.Request) -> web.Response:
        response = web.Response(
            body=gzip.compress(b"hello " * 1000),
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain", "X-Upstream": "yes"},
        )
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; HttpOnly")
        return response

    async def status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"upstream says {code}", headers={"X-Status": str(code)})

    async def options(self, request: web.Request) -> web.Response:
        return web.Response(status=200, headers={"Allow": "GET, OPTIONS", "X-Upstream-Options": "1"})

    async def broken(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x" * 10)
        assert request.transport is not None
        request.transport.abort()  # dies mid-body
        return response

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=["echo.v1"])
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                if message.data == "bye":
                    await ws.close(code=4001, message=b"upstream bye")
                    break
                await ws.send_str("echo:" + message.data)
            elif message.type is WSMsgType.BINARY:
                await ws.send_bytes(b"echo:" + message.data)
        if self.ws_closed is not None:
            self.ws_closed.set_result(ws.close_code)
        return ws

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_post("/upload", self.upload)
        r.add_get("/events", self.events)
        r.add_get("/quiet", self.quiet)
        r.add_get("/headers", self.headers)
        r.add_get("/status/{code}", self.status)
        r.add_route("OPTIONS", "/cors", self.options)
        r.add_get("/broken", self.broken)
        r.add_get("/ws", self.ws)
        r.add_route("*", "/{tail:.*}", self.echo)
        return app


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    yield server
    await runner.cleanup()


async def test_get_forwards_the_raw_path_and_query(client, upstream):
    target = URL(f"/port/{upstream.port}/a%2Fb/c?x=1&y=two%20words&z=%2F", encoded=True)
    resp = await client.get(target)
    assert resp.status == 200
    body = await resp.json()
    assert body["method"] == "GET"
    assert body["target"] == "/a%2Fb/c?x=1&y=two%20words&z=%2F"


async def test_the_port_alone_means_the_root(client, upstream):
    for path in (f"/port/{upstream.port}", f"/port/{upstream.port}/"):
        resp = await client.get(path)
        assert (await resp.json())["target"] == "/"


async def test_any_method_and_its_body_are_forwarded(client, upstream):
    resp = await client.patch(f"/port/{upstream.port}/thing", data=b"patched")
    body = await resp.json()
    assert (body["method"], body["body"]) == ("PATCH", "patched")


async def test_request_headers_lose_hop_by_hop_and_gain_forwarded(client, upstream):
    resp = await client.get(
        f"/port/{upstream.port}/h",
        headers={
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "connection-scoped",
            "Proxy-Authorization": "Basic eA==",
            "X-Blaxel-Authorization": "Bearer for-the-sandbox-api",
            "Authorization": "Bearer for-the-app",
            "X-Custom": "kept",
        },
    )
    headers = dict((k.lower(), v) for k, v in (await resp.json())["headers"])
    assert headers["host"] == f"127.0.0.1:{upstream.port}"
    assert headers["x-custom"] == "kept" and headers["authorization"] == "Bearer for-the-app"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{client.port}"
    for dropped in ("x-hop", "proxy-authorization", "x-blaxel-authorization"):
        assert dropped not in headers


async def test_a_20_mb_upload_streams_through(client, upstream):
    expected = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        for i in range(UPLOAD_BYTES // UPLOAD_CHUNK):
            chunk = bytes([i % 256]) * UPLOAD_CHUNK
            expected.update(chunk)
            yield chunk
            if i == 0:
                # A proxy that read the whole body first would never let this happen.
                await asyncio.wait_for(upstream.upload_started.wait(), 10)

    resp = await client.post(f"/port/{upstream.port}/upload", data=body())
    assert resp.status == 200
    result = await resp.json()
    assert result == {"sha256": expected.hexdigest(), "size": UPLOAD_BYTES, "chunked": "chunked"}


async def test_a_streamed_response_flows_before_the_upstream_finishes(client, upstream):
    started = time.monotonic()
    resp = await client.get(f"/port/{upstream.port}/events")
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
    first_at = time.monotonic()
    assert first == b"data: first\n\n"
    upstream.release_stream.set()
    assert await resp.content.read() == b"data: second\n\n"
    assert first_at < upstream.stream_finished_at
    assert first_at - started < 5


async def test_a_client_leaving_a_quiet_stream_frees_the_upstream(settings, upstream):
    # Served as the daemon serves (aiohttp does not cancel the handler of a client that
    # left, unlike its TestServer), so the proxy has to notice by itself.
    app = build_app(settings)
    app[PORT_PROXY] = PortProxy(client_check_seconds=0.2)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            resp = await session.get(f"http://127.0.0.1:{port}/port/{upstream.port}/quiet")
            assert await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5) == b"data: first\n\n"
            resp.close()
        await asyncio.wait_for(upstream.quiet_abandoned.wait(), 5)
    finally:
        await runner.cleanup()


async def test_response_headers_and_encoded_bytes_pass_through(client, upstream):
    resp = await client.get(f"/port/{upstream.port}/headers", auto_decompress=False)
    assert resp.status == 200
    assert resp.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert resp.headers["Content-Encoding"] == "gzip"
    assert resp.headers["X-Upstream"] == "yes"
    raw = await resp.read()
    assert gzip.decompress(raw) == b"hello " * 1000
    assert int(resp.headers["Content-Length"]) == len(raw)
    # The upstream's headers are its own: none of the API's CORS or no-cache ones.
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Cache-Control" not in resp.headers


async def test_upstream_statuses_and_bodies_pass_through(client, upstream):
    for code in (404, 500, 201):
        resp = await client.get(f"/port/{upstream.port}/status/{code}")
        assert resp.status == code
        assert await resp.text() == f"upstream says {code}"
        assert resp.headers["X-Status"] == str(code)


async def test_head_passes_through(client, upstream):
    resp = await client.head(f"/port/{upstream.port}/headers")
    assert resp.status == 200
    assert resp.headers["X-Upstream"] == "yes"
    assert await resp.read() == b""


async def test_options_is_forwarded_to_the_upstream(client, upstream):
    resp = await client.options(f"/port/{upstream.port}/cors")
    assert resp.status == 200
    assert resp.headers["X-Upstream-Options"] == "1"
    resp = await client.options("/process")  # the API's own routes still answer at once
    assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_websocket_relays_text_binary_and_close(client, upstream):
    async with client.ws_connect(f"/port/{upstream.port}/ws?room=1", protocols=["echo.v1"]) as ws:
        assert ws.protocol == "echo.v1"
        await ws.send_str("hi")
        assert await ws.receive_str(timeout=5) == "echo:hi"
        await ws.send_bytes(b"\x00\x01")
        assert await ws.receive_bytes(timeout=5) == b"echo:\x00\x01"
        await ws.send_str("bye")
        message = await ws.receive(timeout=5)
        assert message.type is WSMsgType.CLOSE
        assert (message.data, message.extra) == (4001, "upstream bye")


async def test_websocket_close_from_the_client_reaches_the_upstream(client, upstream):
    upstream.ws_closed = asyncio.get_running_loop().create_future()
    async with client.ws_connect(f"/port/{upstream.port}/ws") as ws:
        await ws.send_str("hi")
        assert await ws.receive_str(timeout=5) == "echo:hi"
        await ws.close(code=4002)
    assert await asyncio.wait_for(upstream.ws_closed, 5) == 4002


async def test_websocket_declined_by_the_upstream_is_a_502(client, upstream):
    resp = await client.get(
        f"/port/{upstream.port}/not-a-socket",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert resp.status == 502
    assert "declined the websocket upgrade" in (await resp.json())["error"]


async def test_websocket_to_nothing_is_a_502(client):
    port = free_port()
    resp = await client.get(f"/port/{port}/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert resp.status == 502


async def test_nothing_listening_is_a_502(client):
    port = free_port()
    resp = await client.get(f"/port/{port}/x")
    assert resp.status == 502
    assert await resp.json() == {"error": f"nothing is listening on port {port}"}


async def test_bad_ports_are_a_400(client):
    for port in ("abc", "0", "65536", "-1", "+80", "1e3", "99999999999"):
        resp = await client.get(f"/port/{port}/x")
        assert resp.status == 400, port
        assert "invalid port" in (await resp.json())["error"]


async def test_an_upstream_dying_mid_body_aborts_the_response(client, upstream):
    resp = await client.get(f"/port/{upstream.port}/broken")
    assert resp.status == 200
    try:
        await resp.read()
    except aiohttp.ClientPayloadError:
        pass
    else:
        raise AssertionError("a truncated body was passed off as complete")


async def test_a_connect_timeout_is_a_504(settings):
    # A listener whose accept queue is full: further connects hang unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    app = build_app(settings)
    app[PORT_PROXY] = PortProxy(connect_timeout=0.3)
    try:
        async with TestClient(TestServer(app)) as c:
            resp = await c.get(f"/port/{port}/x")
            assert resp.status == 504
            assert "did not accept a connection" in (await resp.json())["error"]
    finally:
        filler.close()
        listener.close()


async def test_proxying_to_ourselves_is_refused_as_a_loop(client):
    resp = await client.get(f"/port/{client.port}/port/{client.port}/health")
    assert resp.status == 508
    assert "would loop back" in (await resp.json())["error"]


async def test_the_document_lists_each_proxied_method_once_under_its_tail_name(client):
    document = await (await client.get("/openapi.json")).json()
    methods = ("get", "head", "post", "put", "patch", "delete", "options")
    for path in ("/port/{port}", "/port/{port}/{path}"):
        assert sorted(document["paths"][path]) == sorted(methods)
    tail = document["paths"]["/port/{port}/{path}"]["get"]["parameters"]
    assert [p["name"] for p in tail] == ["port", "path"]
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))  # OpenAPI wants each one unique
    search = document["paths"]["/filesystem-find/{path}"]["get"]["parameters"]
    excluded = next(p for p in search if p["name"] == "excludeDirs")
    assert excluded["explode"] is False  # one comma-separated value, not `excludeDirs=a&excludeDirs=b`
