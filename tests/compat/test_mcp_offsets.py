"""MCP `processGetLogs` by offset, through the official `mcp` client (which checks every
structuredContent against the tool's outputSchema)."""

from __future__ import annotations

from mcp import ClientSession

from .test_mcp import with_session


async def test_process_get_logs_reads_by_offset_and_stays_the_original_without(sdk_daemon):
    async def body(session: ClientSession) -> None:
        started = await session.call_tool(
            "processExecute",
            {"command": "seq 1 3000; echo oops >&2", "name": "mcp-offsets", "waitForCompletion": True},
        )
        assert started.structured_content["status"] == "completed"
        plain = await session.call_tool("processGetLogs", {"identifier": "mcp-offsets"})
        assert set(plain.structured_content) == {"logs"}  # the original's answer
        assert plain.structured_content["logs"].endswith("3000\noops\n")
        out, err = "", ""
        arguments = {"identifier": "mcp-offsets", "stdoutOffset": 0, "stderrOffset": 0, "maxBytes": 4000}
        for _ in range(20):
            part = await session.call_tool("processGetLogs", arguments)
            assert not part.is_error, part.content
            answer = part.structured_content
            assert "logs" not in answer and answer["encoding"] == "utf-8"
            out += answer["stdout"]
            err += answer["stderr"]
            arguments = {
                **arguments,
                "stdoutOffset": answer["stdoutNextOffset"],
                "stderrOffset": answer["stderrNextOffset"],
            }
            if answer["stdoutEnded"] and answer["stderrEnded"]:
                break
        assert out == "".join(f"{i}\n" for i in range(1, 3001)) and err == "oops\n"
        past = await session.call_tool("processGetLogs", {"identifier": "mcp-offsets", "stdoutOffset": 10**9})
        assert past.is_error and "past the end of stdout" in past.content[0].text
        negative = await session.call_tool("processGetLogs", {"identifier": "mcp-offsets", "stderrOffset": -1})
        assert negative.is_error
        # processGet tells how it ended.
        got = await session.call_tool("processGet", {"identifier": "mcp-offsets"})
        assert got.structured_content["endReason"] == "exited"

    await with_session(sdk_daemon.url, body)
