"""The MCP `bash` tool through the official `mcp` client: one persistent default shell
(Anthropic's bash tool contract: `command`, `restart`), or a session made over HTTP."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from mcp import ClientSession

from ..conftest import Daemon
from .test_mcp import with_session


async def test_bash_keeps_its_shell_between_calls(daemon: Daemon, tmp_path):
    async def body(session: ClientSession) -> None:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools["bash"].input_schema["properties"]) == {"command", "restart", "sessionId", "timeout"}
        first = await session.call_tool(
            "bash", {"command": f"cd {tmp_path} && export SEEN=1 && greet() {{ echo hi $1; }}"}
        )
        assert not first.is_error and first.structured_content["exitCode"] == 0
        assert first.structured_content["cwd"] == str(tmp_path) and first.structured_content["sessionId"] == "default"
        second = await session.call_tool("bash", {"command": "pwd; echo $SEEN; greet you; echo oops >&2; false"})
        assert second.structured_content["output"] == f"{tmp_path}\n1\nhi you\noops\n"
        assert second.structured_content["exitCode"] == 1 and not second.is_error

    await with_session(daemon.url, body)


async def test_bash_interrupts_a_command_at_its_timeout_and_goes_on(daemon: Daemon):
    async def body(session: ClientSession) -> None:
        await session.call_tool("bash", {"command": "export STAYS=yes"})
        started = time.monotonic()
        slow = await session.call_tool("bash", {"command": "sleep 30", "timeout": 0.5})
        assert time.monotonic() - started < 5
        assert slow.structured_content["timedOut"] and slow.structured_content["exitCode"] == 130
        after = await session.call_tool("bash", {"command": "echo $STAYS; cat"})  # cat: stdin is at EOF
        assert after.structured_content["output"] == "yes\n" and not after.structured_content["timedOut"]

    await with_session(daemon.url, body)


async def test_bash_restart_after_the_shell_exits(daemon: Daemon):
    async def body(session: ClientSession) -> None:
        await session.call_tool("bash", {"command": "export GONE=1"})
        ended = await session.call_tool("bash", {"command": "exit 4"})
        assert ended.structured_content["sessionEnded"] and ended.structured_content["exitCode"] == 4
        refused = await session.call_tool("bash", {"command": "echo hi"})
        assert refused.is_error and "restart" in refused.content[0].text
        restarted = await session.call_tool("bash", {"restart": True})
        assert not restarted.is_error and restarted.structured_content["restarted"] is True
        fresh = await session.call_tool("bash", {"command": 'echo "${GONE:-unset}"'})
        assert fresh.structured_content["output"] == "unset\n"
        missing = await session.call_tool("bash", {})
        assert missing.is_error and "command is required" in missing.content[0].text

    await with_session(daemon.url, body)


async def test_bash_runs_in_a_session_made_over_http(daemon: Daemon):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{daemon.url}/session", json={"name": "shared", "env": {"FROM_HTTP": "y"}}) as resp:
            assert resp.status == 200

        async def body(session: ClientSession) -> None:
            result = await session.call_tool("bash", {"command": "echo $FROM_HTTP; X=2", "sessionId": "shared"})
            assert result.structured_content["output"] == "y\n" and result.structured_content["sessionId"] == "shared"
            unknown = await session.call_tool("bash", {"command": "true", "sessionId": "nope"})
            assert unknown.is_error and unknown.content[0].text == "session nope not found"

        await with_session(daemon.url, body)
        async with http.post(f"{daemon.url}/session/shared/exec", json={"command": "echo $X"}) as resp:
            assert (await resp.json())["output"] == "2\n"  # the same shell over HTTP and MCP
        async with http.get(f"{daemon.url}/session") as resp:
            assert {s["id"] for s in (await resp.json())["sessions"]} == {"shared"}  # no default made meanwhile


async def test_bash_says_when_its_shell_was_reaped(daemon_factory):
    daemon = daemon_factory(env={"SANDBOX_SESSION_IDLE_SECONDS": "1"})
    daemon.start()

    async def body(session: ClientSession) -> None:
        first = await session.call_tool("bash", {"command": "export LOST=1"})
        assert "note" not in first.structured_content
        await asyncio.sleep(2.5)
        again = await session.call_tool("bash", {"command": 'echo "${LOST:-unset}"'})
        assert again.structured_content["output"] == "unset\n"
        assert "idle seconds" in again.structured_content["note"]

    await with_session(daemon.url, body)
