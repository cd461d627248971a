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
    "processesList",
    "processExecute",
    "processGet",
    "processGetLogs",
    "processStop",
    "processKill",
    "fsGetWorkingDirectory",
    "fsListDirectory",
    "fsReadFile",
    "fsWriteFile",
    "fsEditFile",
    "fsDeleteFileOrDirectory",
    "codegenFileSearch",
    "codegenCodebaseSearch",
    "codegenGrepSearch",
    "codegenReadFileRange",
    "codegenReapply",
    "codegenListDir",
    "codegenParallelApply",
    # Beyond the original (issue 16): exact edits and metrics.
    "fsTextEditor",
    "sandboxMetrics",
    "bash",  # not the original's: the shell sessions' tool
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
        assert got.structured_content["status"] == "running" and got.structured_content["completedAt"] == ""
        listed = await session.call_tool("processesList", {})
        assert "mcp-sleeper" in [p["name"] for p in listed.structured_content["processes"]]
        killed = await session.call_tool("processKill", {"identifier": "mcp-sleeper"})
        assert killed.structured_content == {"status": "killed"}
        logs = await session.call_tool("processGetLogs", {"identifier": "mcp-sleeper"})
        assert "forcefully killed" in logs.structured_content["logs"]
        timed = await session.call_tool(
            "processExecute", {"command": "sleep 5", "waitForCompletion": True, "timeout": 1}
        )
        assert (
            timed.is_error and "stopped waiting after 1 s; the process is still running (pid " in timed.content[0].text
        )

    await with_session(sdk_daemon.url, body)


async def test_raw_post_without_initialize_is_stateless(sdk_daemon):
    async with aiohttp.ClientSession() as http:
        body = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "fsGetWorkingDirectory", "arguments": {}},
        }
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
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        async with http.post(f"{sdk_daemon.url}/mcp", json=init, headers=HEADERS) as resp:
            result = (await resp.json())["result"]
        assert result["serverInfo"] == {"name": "Sandbox API Server", "version": "1.0.0"}
        assert result["capabilities"]["tools"] == {"listChanged": True}


async def test_fifty_concurrent_calls(sdk_daemon):
    async def body(session: ClientSession) -> None:
        results = await asyncio.gather(
            *(
                session.call_tool("processExecute", {"command": f"echo {i}", "waitForCompletion": True})
                for i in range(50)
            )
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
        lines = await session.call_tool(
            "codegenReadFileRange",
            {"targetFile": "pkg/handler_util.py", "startLineOneIndexed": 2, "endLineOneIndexedInclusive": 3},
        )
        assert lines.structured_content["content"] == "line2\nline3"
        bad = await session.call_tool(
            "codegenReadFileRange",
            {"targetFile": "pkg/handler_util.py", "startLineOneIndexed": 0, "endLineOneIndexedInclusive": 3},
        )
        assert bad.is_error and "invalid line range" in bad.content[0].text
        grep = await session.call_tool("codegenGrepSearch", {"query": "line[23]"})
        results = grep.structured_content["results"]
        assert isinstance(results, str) and results.endswith("\n")
        events = [json.loads(line) for line in results.splitlines()]
        matches = [e["data"] for e in events if e["type"] == "match"]
        assert [m["path"]["text"] for m in matches] == ["pkg/handler_util.py"] * 2  # relative to the search root
        listing = await session.call_tool("codegenListDir", {"relativeWorkspacePath": "pkg"})
        assert [f["name"] for f in listing.structured_content["directory"]["files"]] == ["handler_util.py"]
        outside = await session.call_tool("codegenListDir", {"relativeWorkspacePath": "../.."})
        assert outside.is_error

    await with_session(sdk_daemon.url, body)


# Raw single requests and their answers (these were the shortcut's cases when the SDK served
# /mcp; the expectations are the SDK's answers, with error texts in JSON rather than Python).
WD = {"name": "fsGetWorkingDirectory", "arguments": {}}
RAW_CASES = [
    ({"jsonrpc": "2.0", "id": "s-2", "method": "tools/call", "params": WD}, {"structuredContent": {"path": "WORKDIR"}}),
    (
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "fsReadFile", "arguments": {"path": "note.txt"}},
        },
        {"content_key": "hello\n"},
    ),
    (
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "fsReadFile", "arguments": {"path": "missing.txt"}},
        },
        {"isError": None},
    ),
    (
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "fsListDirectory", "arguments": {}}},
        {"isError": 'validating "arguments": "path" is a required property'},
    ),
    (
        {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "nope", "arguments": {}}},
        {"error": (-32602, 'unknown tool "nope"')},
    ),
    (
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "fsReadFile", "arguments": {"path": 42}},
        },
        {"isError": 'validating "arguments": "path" must be of type "string", got integer 42'},
    ),
    ({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"arguments": {}}}, {"error": (-32602, None)}),
    ({"jsonrpc": "2.0", "id": 9, "method": "ping"}, {"result": {}}),
    ({"jsonrpc": "2.0", "id": 10, "method": "no/such/method"}, {"error": (-32601, "Method not found")}),
    ({"jsonrpc": "2.0", "id": 11, "method": "resources/list"}, {"result": {"resources": []}}),
    ({"jsonrpc": "2.0", "id": 12, "method": "prompts/list"}, {"result": {"prompts": []}}),
    ({"jsonrpc": "2.0", "id": 13, "method": "resources/templates/list"}, {"result": {"resourceTemplates": []}}),
    ({"jsonrpc": "2.0", "id": 14, "method": "logging/setLevel", "params": {"level": "debug"}}, {"result": {}}),
    (
        {"jsonrpc": "2.0", "id": 15, "method": "logging/setLevel", "params": {"level": "loud"}},
        {"error": (-32602, None)},
    ),
    (
        {
            "jsonrpc": "2.0",
            "id": 16,
            "method": "tools/call",
            "params": {"name": "processGet", "arguments": {"identifier": "x", "bogus": 1}},
        },
        {"isError": 'validating "arguments": Additional properties are not allowed ("bogus" was unexpected)'},
    ),
    (
        {
            "jsonrpc": "2.0",
            "id": 17,
            "method": "tools/call",
            "params": {
                "name": "codegenReadFileRange",
                "arguments": {"targetFile": "note.txt", "startLineOneIndexed": True, "endLineOneIndexedInclusive": 1},
            },
        },
        {"isError": 'validating "arguments": "startLineOneIndexed" must be of type "integer", got boolean true'},
    ),
    (
        {
            "jsonrpc": "2.0",
            "id": 18,
            "method": "tools/call",
            "params": {
                "name": "codegenParallelApply",
                "arguments": {"editPlan": "p", "editRegions": [{"startLine": 1}]},
            },
        },
        {"isError": 'validating "arguments": "editRegions[0].relativeWorkspacePath" is a required property'},
    ),
    (
        {
            "jsonrpc": "2.0",
            "id": 19,
            "method": "tools/call",
            "params": {"name": "processExecute", "arguments": {"command": "true", "env": {"A": 1}}},
        },
        {"isError": 'validating "arguments": "env.A" must be of type "string", got integer 1'},
    ),
    (
        {
            "jsonrpc": "2.0",
            "id": 20,
            "method": "tools/call",  # a required argument may not be null
            "params": {"name": "processGet", "arguments": {"identifier": None}},
        },
        {"isError": 'validating "arguments": "identifier" must be of type "string", got null'},
    ),
    (
        {
            "jsonrpc": "2.0",
            "id": 21,
            "method": "tools/call",  # 2.0 is a JSON integer
            "params": {
                "name": "codegenReadFileRange",
                "arguments": {"targetFile": "note.txt", "startLineOneIndexed": 1.0, "endLineOneIndexedInclusive": 1},
            },
        },
        {"structuredContent": {"success": True, "content": "hello", "file": "note.txt"}},
    ),
    (
        {"jsonrpc": "2.0", "id": 22, "method": "tools/call", "params": {"name": "fsReadFile", "arguments": [1]}},
        {"error": (-32602, None)},
    ),
    ({"jsonrpc": "2.0", "id": 23, "method": "ping", "params": None, "extra": 1}, {"result": {}}),
]


@pytest.mark.parametrize("version", [None, "2025-06-18", "2025-11-25"])
async def test_raw_requests_get_the_sdk_answers(sdk_daemon, version):
    work = Path(sdk_daemon.workdir)
    (work / "note.txt").write_text("hello\n")
    headers = {**HEADERS, **({"MCP-Protocol-Version": version} if version else {})}
    async with aiohttp.ClientSession() as http:
        for case, expected in RAW_CASES:
            async with http.post(f"{sdk_daemon.url}/mcp", json=case, headers=headers) as resp:
                assert resp.status == 200, case
                assert resp.content_type == "application/json", case
                reply = await resp.json()
            assert reply["jsonrpc"] == "2.0" and reply["id"] == case["id"], case
            if "error" in expected:
                code, message = expected["error"]
                assert "result" not in reply and reply["error"]["code"] == code, (case, reply)
                assert message is None or reply["error"]["message"] == message, (case, reply)
                continue
            assert "error" not in reply, (case, reply)
            result = reply["result"]
            if "result" in expected:
                assert result == expected["result"], case
            elif "isError" in expected:
                assert result["isError"] is True and "structuredContent" not in result, (case, result)
                assert expected["isError"] is None or result["content"] == [
                    {"type": "text", "text": expected["isError"]}
                ], (case, result)
            elif "content_key" in expected:
                assert result["isError"] is False and result["structuredContent"]["content"] == expected["content_key"]
                assert json.loads(result["content"][0]["text"]) == result["structuredContent"]
            else:
                want = json.loads(json.dumps(expected["structuredContent"]).replace("WORKDIR", str(work)))
                assert result["structuredContent"] == want, case
                assert result["content"] == [{"type": "text", "text": json.dumps(want, ensure_ascii=False)}], case


async def post_raw(url: str, body: bytes | object, headers: dict[str, str] | None = None) -> tuple[int, str, object]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/mcp", data=data, headers=headers or HEADERS) as resp:
            text = await resp.text()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text
            return resp.status, resp.content_type, parsed


def rpc_error(reply: object, code: int) -> str:
    assert isinstance(reply, dict) and reply["jsonrpc"] == "2.0" and reply["id"] is None, reply
    assert reply["error"]["code"] == code, reply
    return reply["error"]["message"]


async def test_invalid_envelopes_get_invalid_request(sdk_daemon):
    for body in (
        {"jsonrpc": "2.0", "id": None, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
        {"jsonrpc": "2.0", "id": True, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": {}, "method": "ping"},
        {"jsonrpc": "1.0", "id": 1, "method": "ping"},
        {"id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]},
        {"jsonrpc": "2.0", "id": 1},
        {},
        42,
        "ping",
        None,
        [],
    ):
        status, content_type, reply = await post_raw(sdk_daemon.url, body)
        assert (status, content_type) == (400, "application/json"), body  # never a 202 that leaves a client waiting
        message = rpc_error(reply, -32600)
        assert message.startswith("Invalid Request") and "'" not in message, message
    status, _, reply = await post_raw(sdk_daemon.url, {"jsonrpc": "2.0", "id": None, "method": "ping"})
    assert '"id" must be a string or an integer, got null' in rpc_error(reply, -32600)


async def test_malformed_json_is_a_parse_error(sdk_daemon):
    for body in (b"{not json", b"", b'{"jsonrpc": "2.0", "id": 1, "method": "ping"', b"\xff\xfe{", b"NaN"):
        status, content_type, reply = await post_raw(sdk_daemon.url, body)
        assert (status, content_type) == (400, "application/json"), body
        assert rpc_error(reply, -32700).startswith("Parse error"), body


async def test_unsupported_protocol_version_header(sdk_daemon):
    for version in ("1999-01-01", "2026-07-28", ""):
        status, content_type, reply = await post_raw(
            sdk_daemon.url, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, {**HEADERS, "MCP-Protocol-Version": version}
        )
        assert (status, content_type) == (400, "application/json"), version
        message = rpc_error(reply, -32022)
        assert all(v in message for v in ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")), message
        assert reply["error"]["data"] == {
            "supported": ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"],
            "requested": version,
        }
    for version in ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"):
        status, _, reply = await post_raw(
            sdk_daemon.url, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, {**HEADERS, "MCP-Protocol-Version": version}
        )
        assert status == 200 and reply == {"jsonrpc": "2.0", "id": 1, "result": {}}, version


async def test_initialize_negotiates_the_version(sdk_daemon):
    for requested, answered in (
        ("2024-11-05", "2024-11-05"),
        ("2025-03-26", "2025-03-26"),
        ("2025-11-25", "2025-11-25"),
        ("2026-07-28", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ):
        body = {
            "jsonrpc": "2.0",
            "id": "init",
            "method": "initialize",
            "params": {"protocolVersion": requested, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        }
        status, _, reply = await post_raw(sdk_daemon.url, body)
        assert status == 200 and reply["id"] == "init", reply
        assert reply["result"] == {
            "protocolVersion": answered,
            "capabilities": {"logging": {}, "tools": {"listChanged": True}},
            "serverInfo": {"name": "Sandbox API Server", "version": "1.0.0"},
        }
    status, _, reply = await post_raw(sdk_daemon.url, {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {}})
    assert status == 200 and reply["error"]["code"] == -32602


async def test_batches_are_answered_as_arrays(sdk_daemon):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "two", "method": "tools/call", "params": WD},
        {"jsonrpc": "2.0", "id": None, "method": "ping"},
        {"jsonrpc": "2.0", "id": 3, "method": "no/such/method"},
        {"jsonrpc": "2.0", "id": 9, "result": {}},
    ]
    status, content_type, replies = await post_raw(sdk_daemon.url, batch)
    assert (status, content_type) == (200, "application/json")
    assert isinstance(replies, list) and len(replies) == 4
    assert replies[0] == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert replies[1]["id"] == "two" and replies[1]["result"]["structuredContent"] == {"path": str(sdk_daemon.workdir)}
    assert replies[2]["id"] is None and replies[2]["error"]["code"] == -32600
    assert replies[3]["id"] == 3 and replies[3]["error"]["code"] == -32601


async def test_notifications_and_responses_get_202(sdk_daemon):
    for body in (
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
        {"jsonrpc": "2.0", "method": "no/such/notification"},
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        {"jsonrpc": "2.0", "id": "x", "error": {"code": 1, "message": "no"}},
        [{"jsonrpc": "2.0", "method": "notifications/initialized"}, {"jsonrpc": "2.0", "id": 1, "result": {}}],
    ):
        status, _, reply = await post_raw(sdk_daemon.url, body)
        assert (status, reply) == (202, None), body


async def test_http_level_checks(sdk_daemon):
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for accept in ("application/json", "*/*", "application/*;q=0.9", "text/html, Application/JSON"):
        status, _, reply = await post_raw(sdk_daemon.url, ping, {"Content-Type": "application/json", "Accept": accept})
        assert status == 200 and reply["result"] == {}, accept
    for accept in ("text/event-stream", "text/html"):
        status, content_type, reply = await post_raw(
            sdk_daemon.url, ping, {"Content-Type": "application/json", "Accept": accept}
        )
        assert (status, content_type) == (406, "application/json"), accept
        assert rpc_error(reply, -32600) == "Not Acceptable: Client must accept application/json"
    for content_type in ("text/plain", "application/jsonx", "application/x-www-form-urlencoded"):
        status, answered_type, reply = await post_raw(sdk_daemon.url, ping, {**HEADERS, "Content-Type": content_type})
        assert (status, answered_type, reply) == (400, "text/plain", "Invalid Content-Type header"), content_type
    status, _, reply = await post_raw(
        sdk_daemon.url, ping, {**HEADERS, "Content-Type": "Application/JSON; charset=utf-8"}
    )
    assert status == 200 and reply["result"] == {}
    async with aiohttp.ClientSession() as http:
        async with http.delete(f"{sdk_daemon.url}/mcp") as resp:
            assert resp.status == 404  # not registered, as the original (gin's plain 404)


@pytest.mark.filterwarnings("ignore:The logging capability is deprecated")
async def test_official_client_sorted_tools_logging_and_null_options(sdk_daemon, tmp_path):
    target = tmp_path / "nulls.txt"

    async def body(session: ClientSession) -> None:
        names = [t.name for t in (await session.list_tools()).tools]
        assert names == sorted(names) and set(names) == EXPECTED_TOOLS
        await session.set_logging_level("warning")
        # Optional arguments sent as explicit nulls are absent ones: their defaults apply.
        result = await session.call_tool(
            "processExecute",
            {
                "command": "echo nulls; pwd",
                "name": None,
                "workingDir": None,
                "env": None,
                "waitForCompletion": True,
                "timeout": None,
                "waitForPorts": None,
                "restartOnFailure": None,
                "maxRestarts": None,
                "keepAlive": None,
            },
        )
        assert not result.is_error, result.content
        assert result.structured_content["status"] == "completed"
        assert result.structured_content["logs"] == "nulls\n/\n"
        result = await session.call_tool(
            "fsWriteFile", {"path": str(target), "content": "x", "permissions": None, "isDirectory": None}
        )
        assert not result.is_error and target.read_text() == "x"
        result = await session.call_tool("codegenFileSearch", {"query": "zzz-none", "directory": None})
        assert result.structured_content == {"success": True, "matches": [], "query": "zzz-none"}

    async with streamable_http_client(f"{sdk_daemon.url}/mcp") as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.capabilities.logging is not None and init.capabilities.tools.list_changed is True
            assert init.server_info.name == "Sandbox API Server" and init.protocol_version == "2025-11-25"
            await body(session)


async def test_high_level_client_falls_back_to_initialize(sdk_daemon):
    """`mcp.Client` probes the 2026 wire first (`server/discover`); our 400 -32022 sends it to `initialize`."""
    from mcp import Client

    async with Client(f"{sdk_daemon.url}/mcp") as client:
        assert client.protocol_version == "2025-11-25"
        result = await client.call_tool("fsGetWorkingDirectory", {})
        assert result.structured_content == {"path": str(sdk_daemon.workdir)}


FORBIDDEN_MODULES = {
    "mcp",
    "mcp_types",
    "pydantic",
    "pydantic_core",
    "jsonschema",
    "anyio",
    "starlette",
    "httpx",
    "httpx2",
}


async def test_the_daemon_imports_no_sdk(daemon_factory):
    """After initialize, tools/list and tools/call, the daemon has imported none of the SDK's stack."""
    daemon = daemon_factory(env={"PYTHONPROFILEIMPORTTIME": "1"})
    daemon.start()

    async def body(session: ClientSession) -> None:
        assert len((await session.list_tools()).tools) == len(EXPECTED_TOOLS)
        result = await session.call_tool("processExecute", {"command": "echo imported", "waitForCompletion": True})
        assert result.structured_content["logs"] == "imported\n"
        assert (await session.call_tool("fsGetWorkingDirectory", {})).structured_content == {
            "path": str(daemon.workdir)
        }

    await with_session(daemon.url, body)
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in daemon.log().splitlines() if line.startswith("import time:")
    }
    assert "sandbox_api.mcp.transport" in imported  # the log is the import log
    assert not {name for name in imported if name.split(".")[0] in FORBIDDEN_MODULES}
