"""The MCP tool `fsTextEditor`, driven by the official `mcp` client against a real daemon."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from pathlib import Path

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def with_session(url: str, body) -> None:
    async with streamable_http_client(f"{url}/mcp") as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            await asyncio.wait_for(body(session), 60)


async def test_the_tool_is_listed_with_the_public_tool_argument_names(daemon):
    async def body(session: ClientSession) -> None:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        schema = tools["fsTextEditor"].input_schema
        assert schema["required"] == ["command", "path"]
        assert schema["properties"]["command"]["enum"] == ["view", "str_replace", "create", "insert"]
        assert {"view_range", "old_str", "new_str", "file_text", "insert_line", "insert_text"} <= set(
            schema["properties"]
        )

    await with_session(daemon.url, body)


async def test_view_create_str_replace_insert_chain_by_hash(daemon, tmp_path: Path):
    target = tmp_path / "m.txt"

    async def body(session: ClientSession) -> None:
        result = await session.call_tool("fsTextEditor", {"command": "create", "path": str(target),
                                                          "file_text": "alpha\r\nbeta\r\n"})  # fmt: skip
        assert not result.is_error, result.content
        created = result.structured_content
        assert created["created"] is True and created["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
        os.chmod(target, 0o700)

        result = await session.call_tool("fsTextEditor", {"command": "view", "path": str(target),
                                                          "view_range": [2, -1]})  # fmt: skip
        assert result.structured_content["content"] == "     2\tbeta"

        result = await session.call_tool("fsTextEditor", {"command": "str_replace", "path": str(target),
                                                          "old_str": "beta", "new_str": "gamma\ndelta",
                                                          "expected_sha256": created["sha256"]})  # fmt: skip
        assert not result.is_error, result.content
        replaced = result.structured_content
        assert target.read_bytes() == b"alpha\r\ngamma\r\ndelta\r\n" and stat.S_IMODE(target.stat().st_mode) == 0o700
        assert "     3\tdelta" in replaced["snippet"]
        # The same call again, on the hash it already consumed: refused, and the answer names the current one.
        result = await session.call_tool("fsTextEditor", {"command": "str_replace", "path": str(target),
                                                          "old_str": "alpha", "new_str": "x",
                                                          "expected_sha256": created["sha256"]})  # fmt: skip
        assert result.is_error and replaced["sha256"] in result.content[0].text
        result = await session.call_tool("fsTextEditor", {"command": "insert", "path": str(target),
                                                          "insert_line": 0, "insert_text": "top",
                                                          "expected_sha256": replaced["sha256"]})  # fmt: skip
        assert not result.is_error, result.content
        assert target.read_bytes() == b"top\r\nalpha\r\ngamma\r\ndelta\r\n"
        # `new_str` as the text of insert, as earlier versions of the public tool have it.
        result = await session.call_tool("fsTextEditor", {"command": "insert", "path": str(target),
                                                          "insert_line": 4, "new_str": "end"})  # fmt: skip
        assert not result.is_error and target.read_bytes().endswith(b"delta\r\nend\r\n")

    await with_session(daemon.url, body)


async def test_errors_say_how_many_occurrences_and_where(daemon, tmp_path: Path):
    target = tmp_path / "dup.txt"
    target.write_text("x\ny\nx\n")
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\x00\x01")

    async def body(session: ClientSession) -> None:
        result = await session.call_tool("fsTextEditor", {"command": "str_replace", "path": str(target),
                                                          "old_str": "x", "new_str": "z"})  # fmt: skip
        assert result.is_error and "occurs 2 times" in result.content[0].text and "lines 1, 3" in result.content[0].text
        result = await session.call_tool("fsTextEditor", {"command": "str_replace", "path": str(target),
                                                          "old_str": "", "new_str": "z"})  # fmt: skip
        assert result.is_error and "must not be empty" in result.content[0].text
        result = await session.call_tool("fsTextEditor", {"command": "view", "path": str(binary)})
        assert result.is_error and "binary" in result.content[0].text
        result = await session.call_tool("fsTextEditor", {"command": "str_replace", "path": str(tmp_path),
                                                          "old_str": "a"})  # fmt: skip
        assert result.is_error and "is a directory" in result.content[0].text
        result = await session.call_tool("fsTextEditor", {"command": "insert", "path": str(target)})
        assert result.is_error and "insert_line" in result.content[0].text
        listing = await session.call_tool("fsTextEditor", {"command": "view", "path": str(tmp_path)})
        assert f"{target}" in json.dumps(listing.structured_content["entries"])
        assert target.read_text() == "x\ny\nx\n"

    await with_session(daemon.url, body)
