"""Malformed input gets a clear 4xx: bytes that are not UTF-8 in Authorization, JSON nested too deeply."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app

pytestmark = pytest.mark.timeout(60)


async def _raw_request(port: int, head: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("credentials", [b"Bearer \xff\xfe", b"Bearer s3cr\xe9t", b"\xff\xfe s3cret"])
async def test_authorization_that_is_not_utf8_is_a_401(settings, credentials):
    async with TestClient(TestServer(build_app(replace(settings, auth_token="s3cret")))) as c:
        for header in (b"Authorization", b"X-Blaxel-Authorization"):
            head = (
                b"GET /process HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                + header
                + b": "
                + credentials
                + b"\r\n\r\n"
            )
            status, body = await _raw_request(c.port, head)
            assert status == 401, body
            assert "bearer token" in json.loads(body)["error"]
        # The token itself still works.
        assert (await c.get("/process", headers={"Authorization": "Bearer s3cret"})).status == 200


async def test_a_token_that_is_not_ascii_matches_its_bytes(settings):
    async with TestClient(TestServer(build_app(replace(settings, auth_token="s3cr\u00e9t")))) as c:
        head = (
            b"GET /process HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Authorization: Bearer s3cr\xc3\xa9t\r\n\r\n"
        )
        status, body = await _raw_request(c.port, head)
        assert status == 200, body


@pytest.mark.parametrize("depth", [100_000, 5_000])
async def test_json_nested_too_deeply_is_a_400(client, depth):
    body = b"[" * depth + b"]" * depth
    resp = await client.post("/process", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid request body: JSON nested too deeply"
    deep_object = b'{"command":' * depth + b'"x"' + b"}" * depth
    resp = await client.post("/filesystem-copy", data=deep_object, headers={"Content-Type": "application/json"})
    assert resp.status == 400


async def test_deep_json_with_a_lone_surrogate_is_a_400(client):
    depth = 990  # parses, but the walk that replaces the lone surrogate recursed too deep
    body = b'{"a":' * depth + b'"\\ud800"' + b"}" * depth
    resp = await client.post("/process", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "nested too deeply" in (await resp.json())["error"]


async def test_mcp_json_nested_too_deeply_is_a_parse_error(client):
    body = b"[" * 100_000 + b"]" * 100_000
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    resp = await client.post("/mcp", data=body, headers=headers)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == -32700 and "nested too deeply" in error["message"]
