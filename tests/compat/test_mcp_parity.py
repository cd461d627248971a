"""MCP parity with the original: descriptions, error texts in JSON, output shapes a client parses,
workspace paths, and the official TypeScript client (`make ts-client` installs it into build/)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession

from ..conftest import Daemon
from .test_mcp import EXPECTED_TOOLS, post_raw, with_session

TS_CLIENT = Path(__file__).resolve().parents[2] / "build" / "ts-mcp"
TS_SCRIPT = Path(__file__).resolve().parent / "ts" / "client.cjs"
PYTHON_REPR = re.compile(r"\b(None|True|False)\b|'[^']*'")  # what a Python repr would leak into a message


def undescribed(schema: dict[str, Any], where: str) -> list[str]:
    """The properties (at any depth) of an object schema that have no description."""
    missing = []
    for key, sub in schema.get("properties", {}).items():
        if not str(sub.get("description", "")).strip():
            missing.append(f"{where}.{key}")
        missing += undescribed(sub, f"{where}.{key}")
        if isinstance(sub.get("items"), dict):
            missing += undescribed(sub["items"], f"{where}.{key}[]")
    return missing


async def list_tools(url: str) -> list[dict[str, Any]]:
    status, _, reply = await post_raw(url, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert status == 200 and isinstance(reply, dict), reply
    return reply["result"]["tools"]


async def call(url: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    status, _, reply = await post_raw(url, body)
    assert status == 200 and isinstance(reply, dict) and "result" in reply, reply
    return reply["result"]


# The original's 19 (21 with a key), fsTextEditor, sandboxMetrics and the shell sessions' `bash`.
@pytest.mark.parametrize("with_key", [False, True], ids=["22-tools", "24-tools"])
async def test_every_tool_and_parameter_has_a_description(daemon_factory, with_key):
    daemon = daemon_factory(env={"RELACE_API_KEY": "k", "RELACE_BASE_URL": "http://127.0.0.1:9"} if with_key else {})
    daemon.start()
    tools = await list_tools(daemon.url)
    assert len(tools) == (24 if with_key else 22)
    missing = []
    for tool in tools:
        if not tool.get("description", "").strip():
            missing.append(tool["name"])
        missing += undescribed(tool["inputSchema"], tool["name"])
    assert missing == []
    described = {t["name"]: t for t in tools}
    # The guidance an agent needs is in them.
    edit = described["fsEditFile"]["description"]
    assert "fsWriteFile" in edit and "read it again" in edit
    assert "fsEditFile" in described["fsWriteFile"]["description"]
    assert "250" in described["codegenReadFileRange"]["description"]
    keep_alive = described["processExecute"]["inputSchema"]["properties"]["keepAlive"]["description"]
    assert "sleep" in keep_alive and "timeout" in keep_alive


async def test_validation_errors_name_the_argument_and_the_json_type(sdk_daemon):
    cases = [
        ("fsReadFile", {"path": None}, '"path" must be of type "string", got null'),
        ("fsReadFile", {"path": ["a"]}, '"path" must be of type "string", got array ["a"]'),
        (
            "fsWriteFile",
            {"path": "x", "isDirectory": "yes"},
            '"isDirectory" must be of type "boolean", got string "yes"',
        ),
        ("processExecute", {"command": "true", "timeout": 1.5}, '"timeout" must be of type "null" or "integer"'),
        ("processExecute", {"command": "true", "waitForPorts": [80, False]}, '"waitForPorts[1]"'),
        ("processExecute", {"command": "true", "env": {"K": None}}, '"env.K" must be of type "string", got null'),
        ("codegenParallelApply", {"editPlan": "p", "editRegions": [{"relativeWorkspacePath": "a", "x": 1}]}, '"x"'),
        ("fsEditFile", {"path": "a", "oldString": "b"}, '"newString" is a required property'),
    ]
    for name, arguments, expected in cases:
        result = await call(sdk_daemon.url, name, arguments)
        text = result["content"][0]["text"]
        assert result["isError"] is True and text.startswith('validating "arguments": '), (name, result)
        assert expected in text, (name, text)
        assert not PYTHON_REPR.search(text.removeprefix('validating "arguments": ')), text
    # A failing tool's own message shows its values as JSON too.
    result = await call(sdk_daemon.url, "processExecute", {"command": "true", "env": {"A=B": "x"}})
    assert result["isError"] is True and '"A=B"' in result["content"][0]["text"], result
    assert "'A=B'" not in result["content"][0]["text"]


async def test_grep_results_are_one_string_and_no_match_is_an_error(sdk_daemon):
    work = Path(sdk_daemon.workdir)
    (work / "src").mkdir(exist_ok=True)
    (work / "src" / "alpha.py").write_text("needle = 1\nhaystack\nNEEDLE = 2\n")

    async def body(session: ClientSession) -> None:
        found = await session.call_tool("codegenGrepSearch", {"query": "needle"})
        assert not found.is_error
        results = found.structured_content["results"]
        assert isinstance(results, str) and results.endswith("\n") and "\n\n" not in results
        events = [json.loads(line) for line in results.splitlines()]
        matched = [(e["data"]["path"]["text"], e["data"]["line_number"]) for e in events if e["type"] == "match"]
        assert matched == [("src/alpha.py", 1), ("src/alpha.py", 3)]  # case ignored by default
        assert events[0]["type"] == "begin" and events[0]["data"]["path"]["text"] == "src/alpha.py"
        exact = await session.call_tool("codegenGrepSearch", {"query": "NEEDLE", "caseSensitive": True})
        assert [
            json.loads(x)["data"]["line_number"]
            for x in exact.structured_content["results"].splitlines()
            if json.loads(x)["type"] == "match"
        ] == [3]
        none = await session.call_tool("codegenGrepSearch", {"query": "no-such-text-anywhere"})
        assert none.is_error and none.structured_content is None
        assert none.content[0].text.startswith("grep search failed: no match")
        invalid = await session.call_tool("codegenGrepSearch", {"query": "(unclosed"})
        assert invalid.is_error and invalid.content[0].text.startswith("grep search failed: ")
        assert "regex" in invalid.content[0].text.lower()

    await with_session(sdk_daemon.url, body)


async def test_list_dir_slash_is_the_workspace_root(sdk_daemon):
    work = Path(sdk_daemon.workdir)
    (work / "sub").mkdir(exist_ok=True)
    (work / "sub" / "inner.txt").write_text("x")
    (work / "top.txt").write_text("x")
    for value in ("/", "", ".", str(work)):
        result = await call(sdk_daemon.url, "codegenListDir", {"relativeWorkspacePath": value})
        assert result["isError"] is False, (value, result)
        directory = result["structuredContent"]["directory"]
        assert directory["path"].rstrip("/") == str(work), value
        assert "top.txt" in [f["name"] for f in directory["files"]], value
        assert "sub" in [d["name"] for d in directory["subdirectories"]], value
    for value in ("/sub", "sub", str(work / "sub")):
        result = await call(sdk_daemon.url, "codegenListDir", {"relativeWorkspacePath": value})
        assert [f["name"] for f in result["structuredContent"]["directory"]["files"]] == ["inner.txt"], value
    for value in ("../..", "/../..", "sub/../../.."):
        result = await call(sdk_daemon.url, "codegenListDir", {"relativeWorkspacePath": value})
        assert result["isError"] is True, value
        assert result["content"][0]["text"] == f"directory {json.dumps(value)} is outside the working directory"


async def test_output_shapes_a_client_parses(sdk_daemon):
    tools = {t["name"]: t for t in await list_tools(sdk_daemon.url)}
    # Fields the original leaves out when empty are optional in its output schemas.
    for name in ("codegenReapply", "codegenParallelApply", "codegenListDir"):
        assert tools[name]["outputSchema"]["required"] == ["success"], name
    assert tools["codegenGrepSearch"]["outputSchema"]["properties"]["results"]["type"] == "string"

    async def body(session: ClientSession) -> None:
        started = await session.call_tool("processExecute", {"command": "sleep 30", "name": "parity-sleeper"})
        assert started.structured_content["status"] == "running"
        try:
            got = await session.call_tool("processGet", {"identifier": "parity-sleeper"})
            assert got.structured_content["completedAt"] == ""  # not null, as the original
            listed = await session.call_tool("processesList", {})
            entry = next(p for p in listed.structured_content["processes"] if p["name"] == "parity-sleeper")
            assert entry["completedAt"] == ""
        finally:
            await session.call_tool("processKill", {"identifier": "parity-sleeper"})
        for _ in range(100):  # the kill is sent at once; the end is recorded when the process has gone
            ended = await session.call_tool("processGet", {"identifier": "parity-sleeper"})
            if ended.structured_content["completedAt"]:
                break
            await asyncio.sleep(0.05)
        assert ended.structured_content["completedAt"].endswith("GMT")
        stub = await session.call_tool("codegenReapply", {"targetFile": "x"})
        assert stub.structured_content == {"success": False, "message": "Reapply functionality not yet implemented"}

    await with_session(sdk_daemon.url, body)


async def test_ids_that_are_neither_string_nor_integer_get_an_answer(sdk_daemon):
    for body in (
        {"jsonrpc": "2.0", "id": 1.0, "method": "ping"},
        {"jsonrpc": "2.0", "id": [1], "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1.5, "result": {}},  # a response with a bad id is not silently accepted
        {"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "x"}},
    ):
        status, content_type, reply = await post_raw(sdk_daemon.url, body)
        assert (status, content_type) == (400, "application/json"), body
        assert isinstance(reply, dict) and reply["id"] is None and reply["error"]["code"] == -32600, reply
    status, _, replies = await post_raw(sdk_daemon.url, [{"jsonrpc": "2.0", "id": 2.5, "method": "ping"}])
    assert status == 200 and isinstance(replies, list) and replies[0]["error"]["code"] == -32600


# --- the official TypeScript client ---------------------------------------------------------------


async def run_ts_client(daemon: Daemon, calls: list[dict[str, Any]]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (TS_CLIENT / ".installed").exists():
        pytest.skip("the TypeScript MCP client is not installed: `make ts-client` (needs node and npm)")
    env = {**os.environ, "NODE_PATH": str(TS_CLIENT / "node_modules")}
    proc = await asyncio.create_subprocess_exec(
        node,
        str(TS_SCRIPT),
        daemon.url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(calls).encode()), 90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_typescript_client(sdk_daemon, tmp_path):
    work = Path(sdk_daemon.workdir)
    (work / "ts-grep.txt").write_text("first\nsecond match\n")
    target = tmp_path / "ts.txt"
    calls = [
        {"label": "write", "name": "fsWriteFile", "arguments": {"path": str(target), "content": "one two"}},
        {
            "label": "edit",
            "name": "fsEditFile",
            "arguments": {"path": str(target), "oldString": "two", "newString": "3"},
        },
        {
            "label": "editMissing",
            "name": "fsEditFile",
            "arguments": {"path": str(target), "oldString": "zz", "newString": "y"},
        },
        {"label": "read", "name": "fsReadFile", "arguments": {"path": str(target)}},
        {"label": "exec", "name": "processExecute", "arguments": {"command": "echo ts", "waitForCompletion": True}},
        {"label": "start", "name": "processExecute", "arguments": {"command": "sleep 30", "name": "ts-sleeper"}},
        {"label": "running", "name": "processGet", "arguments": {"identifier": "ts-sleeper"}},
        {"label": "list", "name": "processesList", "arguments": {}},
        {"label": "kill", "name": "processKill", "arguments": {"identifier": "ts-sleeper"}},
        {"label": "grep", "name": "codegenGrepSearch", "arguments": {"query": "second"}},
        {"label": "grepNone", "name": "codegenGrepSearch", "arguments": {"query": "zzz-nothing"}},
        {"label": "listRoot", "name": "codegenListDir", "arguments": {"relativeWorkspacePath": "/"}},
        {"label": "reapply", "name": "codegenReapply", "arguments": {"targetFile": "x"}},
        {
            "label": "range",
            "name": "codegenReadFileRange",
            "arguments": {"targetFile": "ts-grep.txt", "startLineOneIndexed": 2, "endLineOneIndexedInclusive": 2},
        },
        {"label": "badArg", "name": "fsReadFile", "arguments": {"path": 7}},
        {"label": "unknown", "name": "noSuchTool", "arguments": {}},
    ]
    out = await run_ts_client(sdk_daemon, calls)
    assert out["serverVersion"] == {"name": "Sandbox API Server", "version": "1.0.0"}
    assert out["capabilities"] == {"logging": {}, "tools": {"listChanged": True}}
    assert {t["name"] for t in out["tools"]} == EXPECTED_TOOLS
    results = out["calls"]
    # Every successful call passed the client's check of structuredContent against the outputSchema.
    for label in (
        "write",
        "edit",
        "read",
        "exec",
        "start",
        "running",
        "list",
        "kill",
        "grep",
        "listRoot",
        "reapply",
        "range",
    ):
        assert "thrown" not in results[label] and not results[label].get("isError"), (label, results[label])
    assert results["edit"]["structuredContent"] == {"path": str(target), "occurrencesReplaced": 1}
    assert results["read"]["structuredContent"]["content"] == "one 3"
    assert results["exec"]["structuredContent"]["logs"] == "ts\n"
    assert results["running"]["structuredContent"]["completedAt"] == ""
    grep = [json.loads(line) for line in results["grep"]["structuredContent"]["results"].splitlines()]
    assert [e["data"]["path"]["text"] for e in grep if e["type"] == "match"] == ["ts-grep.txt"]
    assert "ts-grep.txt" in [f["name"] for f in results["listRoot"]["structuredContent"]["directory"]["files"]]
    assert results["range"]["structuredContent"]["content"] == "second match"
    for label, text in (
        ("editMissing", "oldString not found"),
        ("grepNone", "grep search failed: no match"),
        ("badArg", 'validating "arguments": "path" must be of type "string", got integer 7'),
    ):
        assert results[label]["isError"] is True and text in results[label]["content"][0]["text"], results[label]
    assert results["unknown"]["thrown"]["code"] == -32602 and "unknown tool" in results["unknown"]["thrown"]["message"]
