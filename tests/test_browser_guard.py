"""What a web page in a browser may do: DNS rebinding and cross-site requests (http/origins.py)."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app

pytestmark = pytest.mark.timeout(60)

EVIL = "https://evil.example"


def _marker_command(path: Path) -> str:
    return json.dumps({"command": f"touch {path}"})


async def _no_process_started(client: TestClient, marker: Path) -> None:
    await asyncio.sleep(0.5)  # a process, had one started, would have touched it by now
    assert not marker.exists()
    assert await (await client.get("/process")).json() == []


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
async def test_simple_cross_site_post_is_refused_and_starts_nothing(client, tmp_path, content_type):
    marker = tmp_path / "pwned"
    headers = {"Origin": EVIL}
    if content_type is not None:
        headers["Content-Type"] = content_type
    resp = await client.post(
        "/process", data=_marker_command(marker), headers=headers, skip_auto_headers=["Content-Type"]
    )
    assert resp.status == 403
    assert "cross-site request refused" in (await resp.json())["error"]
    assert "Access-Control-Allow-Origin" not in resp.headers  # the page cannot even read the refusal
    await _no_process_started(client, marker)


async def test_a_foreign_site_gets_nothing_from_a_tokenless_daemon_on_loopback(client, tmp_path):
    # Our preflight grants every origin: a JSON post from a remote site must not pass either.
    preflight = await client.options(
        "/process",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 403 and "Access-Control-Allow-Origin" not in preflight.headers
    marker = tmp_path / "pwned"
    resp = await client.post("/process", json={"command": f"touch {marker}"}, headers={"Origin": EVIL})
    assert resp.status == 403
    await _no_process_started(client, marker)
    read = await client.get("/process", headers={"Origin": EVIL})
    assert read.status == 403 and "Access-Control-Allow-Origin" not in read.headers


async def test_sec_fetch_site_cross_site_without_origin_is_refused(client, tmp_path):
    marker = tmp_path / "pwned"
    resp = await client.post(
        "/process", data=_marker_command(marker), headers={"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}
    )
    assert resp.status == 403
    await _no_process_started(client, marker)


async def test_a_local_page_on_another_port_uses_cors_after_a_preflight(client, tmp_path):
    origin = "http://localhost:3000"  # a dev server on this machine: the SDK in a browser
    preflight = await client.options("/process", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    marker = tmp_path / "made"
    resp = await client.post(
        "/process", json={"command": f"touch {marker}", "waitForCompletion": True}, headers={"Origin": origin}
    )
    assert resp.status == 200, await resp.text()
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert marker.exists()
    # Its simple requests are still refused, and its plain reads unreadable.
    refused = await client.post(
        "/process", data=_marker_command(tmp_path / "no"), headers={"Origin": origin, "Content-Type": "text/plain"}
    )
    assert refused.status == 403
    read = await client.get("/process", headers={"Origin": origin})
    assert read.status == 200 and "Access-Control-Allow-Origin" not in read.headers
    read = await client.get("/process", headers={"Origin": origin, "X-Requested-With": "sdk"})
    assert read.headers["Access-Control-Allow-Origin"] == "*"


async def test_with_a_token_a_foreign_page_may_call_after_a_preflight(settings, tmp_path):
    async with TestClient(TestServer(build_app(replace(settings, auth_token="s3cret")))) as c:
        preflight = await c.options("/process", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
        assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
        marker = tmp_path / "made"
        resp = await c.post(
            "/process",
            json={"command": f"touch {marker}", "waitForCompletion": True},
            headers={"Origin": EVIL, "Authorization": "Bearer s3cret"},
        )
        assert resp.status == 200, await resp.text()
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert marker.exists()
        # Without the token the guard answers first; with it, a simple post is still refused.
        no = tmp_path / "no"
        simple = {"Origin": EVIL, "Content-Type": "text/plain"}
        resp = await c.post("/process", data=_marker_command(no), headers=simple)
        assert resp.status == 403
        await asyncio.sleep(0.3)
        assert not no.exists()


async def test_requests_without_origin_work_whatever_their_type(client, tmp_path):
    marker = tmp_path / "made"
    body = json.dumps({"command": f"touch {marker}", "waitForCompletion": True})
    resp = await client.post("/process", data=body, headers={"Content-Type": "text/plain"})
    assert resp.status == 200, await resp.text()
    assert marker.exists()
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_same_origin_pages_work(client, tmp_path):
    own = f"http://{client.host}:{client.port}"
    marker = tmp_path / "made"
    body = json.dumps({"command": f"touch {marker}", "waitForCompletion": True})
    resp = await client.post("/process", data=body, headers={"Origin": own, "Content-Type": "text/plain"})
    assert resp.status == 200, await resp.text()
    assert marker.exists()
    # The same page under the name localhost (Host and Origin agree).
    resp = await client.get(
        "/process", headers={"Origin": f"http://localhost:{client.port}", "Host": f"localhost:{client.port}"}
    )
    assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_allowed_origins_are_treated_as_ours(settings, tmp_path):
    app = build_app(replace(settings, allowed_origins=("https://console.example",)))
    async with TestClient(TestServer(app)) as c:
        marker = tmp_path / "made"
        body = json.dumps({"command": f"touch {marker}", "waitForCompletion": True})
        headers = {"Origin": "https://console.example/", "Content-Type": "text/plain"}
        resp = await c.post("/process", data=body, headers=headers)
        assert resp.status == 200, await resp.text()
        assert (await c.post("/process", data=body, headers={"Origin": EVIL})).status == 403


async def test_mcp_simple_cross_site_post_is_refused(client):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    headers = {"Origin": "http://localhost:1234", "Content-Type": "text/plain"}
    resp = await client.post("/mcp", data=body, headers=headers)
    assert resp.status == 403


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "localhost.evil.example", "[::1", "a:b:c"])
async def test_a_foreign_host_on_loopback_is_refused(client, host):
    resp = await client.get("/process", headers={"Host": host})
    assert resp.status == 403
    assert "DNS rebinding" in (await resp.json())["error"]


@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "app.localhost"])
async def test_loopback_hosts_are_served(client, host):
    resp = await client.get("/process", headers={"Host": host.format(port=client.port)})
    assert resp.status == 200


async def test_allowed_hosts_extend_the_loopback_names(settings):
    async with TestClient(TestServer(build_app(replace(settings, allowed_hosts=("sandbox.internal",))))) as c:
        assert (await c.get("/process", headers={"Host": "sandbox.internal:8080"})).status == 200
        assert (await c.get("/process", headers={"Host": "evil.example"})).status == 403


def _public_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


async def test_gateway_traffic_from_a_non_loopback_address_keeps_its_public_host(settings, tmp_path):
    address = _public_address()
    if address is None:
        pytest.skip("no non-loopback address on this machine")
    async with TestClient(TestServer(build_app(settings), host=address)) as c:
        # Blaxel's gateway: the sandbox's public name, and a browser app's origin after its preflight.
        headers = {"Host": "sbx-1234.bl.run", "Origin": "https://app.example.com", "X-Forwarded-For": "203.0.113.9"}
        marker = tmp_path / "made"
        resp = await c.post("/process", json={"command": f"touch {marker}", "waitForCompletion": True}, headers=headers)
        assert resp.status == 200, await resp.text()
        assert marker.exists()
        # The simple cross-site post is refused there too.
        resp = await c.post(
            "/process",
            data=_marker_command(tmp_path / "no"),
            headers={"Host": "sbx-1234.bl.run", "Origin": EVIL, "Content-Type": "text/plain"},
        )
        assert resp.status == 403


async def test_terminal_websocket_from_a_foreign_origin_is_refused(client):
    for origin in (EVIL, "http://localhost:3000"):
        with pytest.raises(WSServerHandshakeError) as refused:
            await client.ws_connect("/terminal/ws", headers={"Origin": origin})
        assert refused.value.status == 403


@pytest.mark.usefixtures("clean_home")
async def test_terminal_websocket_from_its_own_page_works(client):
    own = f"http://{client.host}:{client.port}"
    async with client.ws_connect("/terminal/ws?sessionId=guard", headers={"Origin": own}) as ws:
        frame = await asyncio.wait_for(ws.receive_json(), 10)
        assert frame["type"] == "output"
    # The page itself and the API docs page load from anywhere (reads without side effects).
    assert (await client.get("/terminal")).status == 200


async def test_the_guard_applies_to_a_real_daemon(daemon, tmp_path):
    marker = tmp_path / "pwned"
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{daemon.url}/process",
            data=_marker_command(marker),
            headers={"Origin": EVIL, "Content-Type": "text/plain"},
        ) as resp:
            assert resp.status == 403
        async with s.get(f"{daemon.url}/health", headers={"Host": "rebound.evil.example"}) as resp:
            assert resp.status == 403
        async with s.get(f"{daemon.url}/health") as resp:
            assert resp.status == 200
    await asyncio.sleep(0.3)
    assert not marker.exists()
