"""MCP at POST /mcp, driven by the official `mcp` client (streamable HTTP) and raw POSTs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

EXPECTED_TOOLS = {
    "processesList", "processExecute", "processGet", "processGetLogs", "processStop", "processKill",
    "fsGetWorkingDirectory", "fsListDirectory", "fsReadFile", "fsWriteFile", "fsEditFile", "fsDeleteFileOrDirectory",
    "codegenFileSearch", "codegenCodebaseSearch", "codegenGrepSearch", "codegenReadFileRange", "codegenReapply",
    "codegenListDir", "codegenParallelApply",
}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


async def with_session(url: str, body) -> None:
    async with streamable_http_client(f"{url}/mcp") as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            await body(session)


async def test_official_client_lists_and_calls_tools(sdk_daemon, tmp_path):
    target = tmp_path / "mcp.txt"

    async def body(session: ClientSession) -> None:
        tools = await session.list_tools()
        assert {t.name for t in tools.tools} == EXPECTED_TOOLS
        for tool in tools.tools:
            assert tool.description and tool.input_schema["type"] == "object"
            assert tool.input_schema["additionalProperties"] is False

        result = await session.call_tool("processExecute", {"command": "echo from-mcp", "waitForCompletion": True})
        assert not result.is_error
        assert result.structured_content["status"] == "completed"
        assert result.structured_content["logs"] == "from-mcp\n"

        result = await session.call_tool("fsWriteFile", {"path": str(target), "content": "alpha beta alpha"})
        assert not result.is_error and target.read_text() == "alpha beta alpha"
        result = await session.call_tool("fsReadFile", {"path": str(target)})
        assert result.structured_content["content"] == "alpha beta alpha"
        assert result.structured_content["name"] == str(target)

        result = await session.call_tool("fsEditFile", {"path": str(target), "oldString": "beta", "newString": "gamma"})
        assert result.structured_content == {"path": str(target), "occurrencesReplaced": 1}
        assert target.read_text() == "alpha gamma alpha"
        result = await session.call_tool("fsEditFile", {"path": str(target), "oldString": "alpha", "newString": "x"})
        assert result.is_error and "2 times" in result.content[0].text
        result = await session.call_tool("fsEditFile", {"path": str(target), "oldString": "zzz", "newString": "x"})
        assert result.is_error and "not found" in result.content[0].text
        result = await session.call_tool(
            "fsEditFile", {"path": str(target), "oldString": "alpha", "newString": "x", "replaceAll": True}
        )
        assert result.structured_content["occurrencesReplaced"] == 2 and target.read_text() == "x gamma x"

        listing = await session.call_tool("fsListDirectory", {"path": str(tmp_path)})
        assert "mcp.txt" in [f["name"] for f in listing.structured_content["directory"]["files"]]

    await with_session(sdk_daemon.url, body)


async def test_tool_failures_are_error_results_and_unknown_tools_protocol_errors(sdk_daemon):
    async def body(session: ClientSession) -> None:
        result = await session.call_tool("processGet", {"identifier": "no-such-process"})
        assert result.is_error and "not found" in result.content[0].text
        result = await session.call_tool("processExecute", {"command": "true", "bogus": 1})
        assert result.is_error and result.content[0].text.startswith('validating "arguments"')
        with pytest.raises(Exception) as info:
            await session.call_tool("noSuchTool", {})
        assert "unknown tool" in str(info.value)

    await with_session(sdk_daemon.url, body)


async def test_process_tools_round_trip(sdk_daemon):
    async def body(session: ClientSession) -> None:
        started = await session.call_tool("processExecute", {"command": "sleep 30", "name": "mcp-sleeper"})
        assert started.structured_content["status"] == "running"
        got = await session.call_tool("processGet", {"identifier": "mcp-sleeper"})
        assert got.structured_content["status"] == "running" and got.structured_content["completedAt"] is None
        listed = await session.call_tool("processesList", {})
        assert "mcp-sleeper" in [p["name"] for p in listed.structured_content["processes"]]
        killed = await session.call_tool("processKill", {"identifier": "mcp-sleeper"})
        assert killed.structured_content == {"status": "killed"}
        logs = await session.call_tool("processGetLogs", {"identifier": "mcp-sleeper"})
        assert "forcefully killed" in logs.structured_content["logs"]
        timed = await session.call_tool("processExecute", {"command": "sleep 5", "waitForCompletion": True, "timeout": 1})
        assert timed.is_error and "timed out after 1 seconds" in timed.content[0].text

    await with_session(sdk_daemon.url, body)


async def test_raw_post_without_initialize_is_stateless(sdk_daemon):
    async with aiohttp.ClientSession() as http:
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "fsGetWorkingDirectory", "arguments": {}}}
        async with http.post(f"{sdk_daemon.url}/mcp", json=body, headers=HEADERS) as resp:
            assert resp.status == 200
            assert "Mcp-Session-Id" not in resp.headers
            payload = await resp.json()
        assert payload["id"] == 7
        assert payload["result"]["structuredContent"] == {"path": str(sdk_daemon.workdir)}
        notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with http.post(f"{sdk_daemon.url}/mcp", json=notification, headers=HEADERS) as resp:
            assert resp.status == 202
        async with http.get(f"{sdk_daemon.url}/mcp") as resp:
            assert resp.status == 405
            assert await resp.json() == {"error": "SSE streaming not supported. Please use POST for MCP communication."}
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        async with http.post(f"{sdk_daemon.url}/mcp", json=init, headers=HEADERS) as resp:
            result = (await resp.json())["result"]
        assert result["serverInfo"] == {"name": "Sandbox API Server", "version": "1.0.0"}
        assert result["capabilities"]["tools"] == {"listChanged": True}


async def test_fifty_concurrent_calls(sdk_daemon):
    async def body(session: ClientSession) -> None:
        results = await asyncio.gather(
            *(session.call_tool("processExecute", {"command": f"echo {i}", "waitForCompletion": True}) for i in range(50))
        )
        assert sorted(r.structured_content["logs"] for r in results) == sorted(f"{i}\n" for i in range(50))

    await with_session(sdk_daemon.url, body)


async def test_codegen_helpers(sdk_daemon):
    work = Path(sdk_daemon.workdir)
    (work / "pkg").mkdir(exist_ok=True)
    (work / "pkg" / "handler_util.py").write_text("line1\nline2\nline3\n")

    async def body(session: ClientSession) -> None:
        found = await session.call_tool("codegenFileSearch", {"query": "handutil"})
        assert str(work / "pkg" / "handler_util.py") in found.structured_content["matches"]
        lines = await session.call_tool("codegenReadFileRange", {"targetFile": "pkg/handler_util.py",
                                                                  "startLineOneIndexed": 2, "endLineOneIndexedInclusive": 3})
        assert lines.structured_content["content"] == "line2\nline3"
        bad = await session.call_tool("codegenReadFileRange", {"targetFile": "pkg/handler_util.py",
                                                                "startLineOneIndexed": 0, "endLineOneIndexedInclusive": 3})
        assert bad.is_error and "invalid line range" in bad.content[0].text
        grep = await session.call_tool("codegenGrepSearch", {"query": "line[23]"})
        matches = [json.loads(line) for line in grep.structured_content["results"]]
        assert sum(1 for m in matches if m["type"] == "match") == 2
        listing = await session.call_tool("codegenListDir", {"relativeWorkspacePath": "pkg"})
        assert [f["name"] for f in listing.structured_content["directory"]["files"]] == ["handler_util.py"]
        outside = await session.call_tool("codegenListDir", {"relativeWorkspacePath": "../.."})
        assert outside.is_error

    await with_session(sdk_daemon.url, body)


SHORTCUT_CASES = [
    {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": "s-2", "method": "tools/call", "params": {"name": "fsGetWorkingDirectory", "arguments": {}}},
    {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "fsReadFile", "arguments": {"path": "note.txt"}}},
    {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "fsReadFile", "arguments": {"path": "missing.txt"}}},
    {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "fsListDirectory", "arguments": {}}},
    {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "nope", "arguments": {}}},
    {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "fsReadFile", "arguments": {"path": 42}}},
    {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"arguments": {}}},
    {"jsonrpc": "2.0", "id": 9, "method": "ping"},
    {"jsonrpc": "2.0", "id": 10, "method": "no/such/method"},
    {"jsonrpc": "2.0", "id": 11, "method": "resources/list"},
    {"jsonrpc": "2.0", "id": 12, "method": "prompts/list"},
]
DECLINED_CASES = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize",
     "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
    {"jsonrpc": "1.0", "id": 1, "method": "ping"},
    {"id": 1, "result": {}, "jsonrpc": "2.0"},
]


@pytest.mark.parametrize("version", [None, "2025-06-18", "2025-11-25"])
async def test_the_shortcut_answers_as_the_sdk_transport_does(settings, workdir, version):
    """A plain request skips the SDK's per-request streams; the reply must not change."""
    from aiohttp.test_utils import make_mocked_request

    from sandbox_api.app import build_app
    from sandbox_api.mcp.transport import MCP

    (workdir / "note.txt").write_text("hello\n")
    app = build_app(settings)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    try:
        endpoint = app[MCP]
        await endpoint.through_sdk_transport(make_mocked_request("POST", "/mcp", headers=HEADERS), b"{}")  # starts the SDK
        headers = {**HEADERS, "Host": "localhost"}
        if version:
            headers["MCP-Protocol-Version"] = version
        for case in SHORTCUT_CASES:
            body = json.dumps(case).encode()
            request = make_mocked_request("POST", "/mcp", headers=headers)
            shortcut = await endpoint._exchange(request, body)
            assert shortcut is not None, case
            sdk = await endpoint.through_sdk_transport(request, body)
            assert (shortcut.status, shortcut.content_type) == (sdk.status, sdk.content_type), case
            assert json.loads(shortcut.body) == json.loads(sdk.body), case
        for case in DECLINED_CASES:
            request = make_mocked_request("POST", "/mcp", headers=headers)
            assert await endpoint._exchange(request, json.dumps(case).encode()) is None, case
        for odd in ({**headers, "Accept": "text/event-stream"}, {**headers, "Content-Type": "text/plain"},
                    {**headers, "MCP-Protocol-Version": "1999-01-01"}):
            request = make_mocked_request("POST", "/mcp", headers=odd)
            assert await endpoint._exchange(request, json.dumps(SHORTCUT_CASES[0]).encode()) is None, odd
        assert await endpoint._exchange(make_mocked_request("POST", "/mcp", headers=headers), b"{not json") is None
    finally:
        await runner.cleanup()
