"""Cross-cutting HTTP behaviour: routing, CORS, headers, errors, auth, health, access log."""

from __future__ import annotations

import logging
from dataclasses import replace

from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app
from sandbox_api.http.access_log import redact_query
from sandbox_api.system.health import go_duration

HEALTH_KEYS = {
    "status",
    "version",
    "gitCommit",
    "buildTime",
    "goVersion",
    "os",
    "arch",
    "uptime",
    "uptimeSeconds",
    "upgradeCount",
    "startedAt",
    "lastUpgrade",
}


async def test_unknown_route_is_plain_text_404(client):
    resp = await client.get("/no/such/route")
    assert resp.status == 404
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert await resp.text() == "404 page not found"


async def test_wrong_method_on_known_route_is_plain_404(client):
    resp = await client.put("/health")
    assert resp.status == 404
    assert await resp.text() == "404 page not found"


async def test_options_on_any_path_is_204_with_cors_and_no_cache_headers(client):
    for path in ("/", "/process", "/does/not/exist"):
        resp = await client.options(path)
        assert resp.status == 204
        assert await resp.read() == b""
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Cache-Control" not in resp.headers


async def test_every_response_carries_cors_and_no_cache_headers(client):
    for path in ("/health", "/nope"):
        resp = await client.get(path)
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert resp.headers["Access-Control-Allow-Methods"] == "GET, POST, PUT, DELETE, HEAD, OPTIONS"
        assert resp.headers["Access-Control-Allow-Headers"] == "Content-Type, Authorization"
        assert resp.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert resp.headers["Pragma"] == "no-cache"
        assert resp.headers["Expires"] == "0"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_welcome_answers_every_method(client):
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        resp = await client.request(method, "/")
        assert resp.status == 200
        body = await resp.json()
        assert body["message"] == "Welcome to your Blaxel Sandbox"
        assert set(body) == {"message", "documentation", "description"}


async def test_head_twins_answer_200_without_checking_existence(client):
    for path in ("/health", "/process", "/process/does-not-exist", "/process/x/logs", "/process/x/logs/stream"):
        resp = await client.head(path)
        assert resp.status == 200, path
        assert await resp.read() == b""


async def test_health_reports_every_key(client):
    resp = await client.get("/health")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    body = await resp.json()
    assert set(body) == HEALTH_KEYS
    assert body["status"] == "ok"
    assert body["os"] == "linux"
    assert body["arch"] in ("amd64", "arm64")
    assert isinstance(body["uptimeSeconds"], float)
    assert body["startedAt"].endswith("Z")
    assert body["lastUpgrade"] == {"status": "idle", "step": "none", "version": ""}


def test_uptime_uses_go_duration_format():
    assert go_duration(0) == "0s"
    assert go_duration(45) == "45s"
    assert go_duration(185) == "3m5s"
    assert go_duration(7207) == "2h0m7s"
    assert go_duration(3 * 86400) == "72h0m0s"


async def test_errors_on_known_routes_are_json(client):
    resp = await client.post("/process", data=b"{not json")
    assert resp.status == 400
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    body = await resp.json()
    assert body["error"].startswith("invalid request body: ")


async def test_server_timing_only_when_enabled(settings):
    async with TestClient(TestServer(build_app(settings))) as c:
        assert "Server-Timing" not in (await c.get("/health")).headers
    async with TestClient(TestServer(build_app(replace(settings, enable_processing_time=True)))) as c:
        timing = (await c.get("/health")).headers["Server-Timing"]
        assert timing.startswith("total;dur=")
        assert timing.endswith(';desc="Processing time of the Sandbox API request"')


async def test_auth_is_off_by_default(client):
    assert (await client.get("/process")).status == 200


async def test_auth_token_guards_every_route_but_health_and_options(settings):
    app = build_app(replace(settings, auth_token="s3cret"))
    async with TestClient(TestServer(app)) as c:
        resp = await c.get("/process")
        assert resp.status == 401
        assert "error" in await resp.json()
        assert (await c.get("/process", headers={"Authorization": "Bearer wrong"})).status == 401
        assert (await c.get("/process", headers={"Authorization": "Bearer s3cret"})).status == 200
        assert (await c.get("/process", headers={"X-Blaxel-Authorization": "Bearer s3cret"})).status == 200
        assert (await c.get("/health")).status == 200
        assert (await c.options("/process")).status == 204
        assert (await c.post("/process", json={"command": "true"})).status == 401


def test_query_redaction_rules():
    assert redact_query("a=1&b=2") == "a=1&b=2"
    assert redact_query("token=abc&path=/x") == "path=%2Fx&token=%5BREDACTED%5D"
    assert redact_query("Password=&z=1") == "Password=%5BREDACTED%5D&z=1"
    assert redact_query("api_key=k1&API-KEY=k2") == "API-KEY=%5BREDACTED%5D&api_key=%5BREDACTED%5D"
    assert "s3" not in redact_query("jwt=s3&x=%zz")


async def test_access_log_line_redacts_secrets(settings, caplog):
    app = build_app(replace(settings, disable_request_logging=False))
    caplog.set_level(logging.INFO, logger="sandbox_api.access")
    async with TestClient(TestServer(app)) as c:
        await c.get("/health?token=hunter2&x=1")
        await c.get("/nope")
    lines = [r for r in caplog.records if r.name == "sandbox_api.access"]
    messages = [r.getMessage() for r in lines]
    assert any(m.startswith("GET /health?token=%5BREDACTED%5D&x=1 200 ") and m.endswith("ms") for m in messages), (
        messages
    )
    assert "hunter2" not in " ".join(messages)
    not_found = [r for r in lines if " 404 " in r.getMessage()]
    assert not_found and not_found[0].levelno == logging.WARNING  # a client's mistake, not an error of ours
    assert all(getattr(r, "source", "") == "access" for r in lines)


async def test_request_logging_can_be_disabled(client, caplog):
    caplog.set_level(logging.INFO, logger="sandbox_api.access")
    await client.get("/health")
    assert not [r for r in caplog.records if r.name == "sandbox_api.access"]
