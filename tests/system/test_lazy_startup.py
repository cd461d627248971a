"""The less used families import their modules and build their services on their first
request, not at start: a real daemon, its imports read from `-X importtime` in its log."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Daemon
from tests.system.test_startup import imported

# Each family's first request (method, path, JSON body or None), the statuses it may answer
# here (no ripgrep or wg may be installed, no codegen key is set), and the modules it loads.
FAMILIES: dict[str, tuple[str, str, object, set[int], set[str]]] = {
    "edits": ("POST", "/edit/view", {"path": "."}, {200}, {"sandbox_api.edits.service", "sandbox_api.edits.text"}),
    "sessions": (
        "GET",
        "/session",
        None,
        {200},
        {"sandbox_api.sessions.service", "sandbox_api.sessions.shell", "sandbox_api.sessions.output"},
    ),
    "metrics": ("GET", "/metrics", None, {200}, {"sandbox_api.system.metrics"}),
    "drives": ("GET", "/drives/mount", None, {200}, {"sandbox_api.drives.service", "sandbox_api.drives.mounts"}),
    "codegen": ("GET", "/codegen/reranking/.?query=x", None, {400}, {"sandbox_api.codegen.service"}),
    "find": (
        "GET",
        "/filesystem-find/.",
        None,
        {200},
        {"sandbox_api.search.find", "sandbox_api.search.walk", "sandbox_api.search.globs"},
    ),
    "fuzzy": ("GET", "/filesystem-search/.?query=x", None, {200}, {"sandbox_api.search.fuzzy"}),
    "content": ("GET", "/filesystem-content-search/.?query=x", None, {200, 501}, {"sandbox_api.search.content"}),
    "monitors": ("DELETE", "/network/process/1/monitor", None, {200}, {"sandbox_api.network.monitors"}),
    "tunnel": (
        "DELETE",
        "/network/tunnel",
        None,
        {400, 501},
        {"sandbox_api.network.tunnel", "sandbox_api.network.tunnel_config"},
    ),
}
TERMINAL = {"sandbox_api.terminal.sessions"}
WATCH = {"sandbox_api.watch.watcher"}
LAZY = set().union(*(modules for *_, modules in FAMILIES.values()), TERMINAL, WATCH)
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture
def lazy_daemon(daemon_factory) -> Daemon:
    # No codegen key and no tunnel configuration: with either, that service is wanted at start.
    env = {"PYTHONPROFILEIMPORTTIME": "1", "RELACE_API_KEY": "", "MORPH_API_KEY": "", "BL_NETWORKING_CONFIG": ""}
    daemon: Daemon = daemon_factory(env=env)
    daemon.start()
    return daemon


@pytest.mark.timeout(60)
async def test_the_less_used_families_load_on_their_first_request(lazy_daemon: Daemon, workdir: Path):
    (workdir / "a.txt").write_text("x\n")
    url = lazy_daemon.url
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(f"{url}/health") as resp:
            assert resp.status == 200
        # The MCP tool list names every tool without building the services behind them.
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        async with http.post(f"{url}/mcp", json=listing, headers=MCP_HEADERS) as resp:
            assert resp.status == 200
            tools = {t["name"] for t in (await resp.json())["result"]["tools"]}
        assert {"fsTextEditor", "sandboxMetrics", "bash", "codegenGrepSearch"} <= tools
        at_start = imported(lazy_daemon.log())
        assert "sandbox_api.app" in at_start and "sandbox_api.process.supervisor" in at_start
        assert not LAZY & at_start, sorted(LAZY & at_start)

        for family, (method, path, body, statuses, modules) in FAMILIES.items():
            async with http.request(method, url + path, json=body) as resp:
                assert resp.status in statuses, (family, resp.status, await resp.text())
                await resp.read()
            assert modules <= imported(lazy_daemon.log()), family

        async with http.ws_connect(f"{url}/terminal/ws?sessionId=lazy") as ws:
            frame = json.loads((await ws.receive(timeout=10)).data)
            assert frame["type"] == "output"
        assert TERMINAL <= imported(lazy_daemon.log())

        async with http.get(f"{url}/watch/filesystem/.") as resp:
            assert resp.status == 200
            assert await resp.content.readline() == b"[keepalive]\n"
        assert WATCH <= imported(lazy_daemon.log())
    # The services built on the way close with the daemon (the terminal's shell, the sessions).
    assert lazy_daemon.stop() == 0


@pytest.mark.timeout(60)
async def test_an_mcp_tool_builds_its_service_on_its_first_call(lazy_daemon: Daemon):
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sandboxMetrics", "arguments": {}}}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        async with http.post(f"{lazy_daemon.url}/mcp", json=call, headers=MCP_HEADERS) as resp:
            answer = await resp.json()
    assert "result" in answer and not answer["result"].get("isError"), answer
    assert answer["result"]["structuredContent"]["cpu"]["source"] in ("cgroup2", "cgroup1", "host")
    loaded = imported(lazy_daemon.log())
    assert "sandbox_api.system.metrics" in loaded
    assert not (LAZY - {"sandbox_api.system.metrics"}) & loaded, sorted(LAZY & loaded)
    assert lazy_daemon.stop() == 0
