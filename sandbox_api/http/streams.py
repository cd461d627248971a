"""Encoding process output for the wire, fast: these loops carry hundreds of MB/s.

Output is handled as bytes. Text that is valid UTF-8 (nearly always) passes through
`bytes.replace`, which runs at gigabytes per second; str round trips and the json
module's escaper are ten times slower. Invalid UTF-8 becomes U+FFFD.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web


def valid_utf8(data: bytes) -> bytes:
    """`data`, with invalid UTF-8 sequences replaced by U+FFFD."""
    if data.isascii():
        return data
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode("utf-8")


# Every byte but the control characters JSON would need as \\u escapes.
_PLAIN_BYTES = bytes(i for i in range(256) if i >= 0x20 or i in b"\t\n\r")


def json_string(data: bytes) -> bytes:
    """`data` (UTF-8) as the body of a JSON string literal, without the quotes."""
    try:
        data.decode("utf-8")
        plain = not data.translate(None, _PLAIN_BYTES)  # no control character left
    except UnicodeDecodeError:
        plain = False
    if plain:
        return (
            data.replace(b"\\", b"\\\\")
            .replace(b'"', b'\\"')
            .replace(b"\n", b"\\n")
            .replace(b"\r", b"\\r")
            .replace(b"\t", b"\\t")
        )
    text = data.decode("utf-8", "replace")
    return json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8")


def prefix_lines(data: bytes, prefix: bytes) -> bytes:
    """Complete lines (each ending with a newline) with `prefix` before each one."""
    if not data:
        return b""
    return prefix + valid_utf8(data)[:-1].replace(b"\n", b"\n" + prefix) + b"\n"


def disconnected(request: web.Request, interval: float = 1.0) -> asyncio.Future[None]:
    """A future resolved once the client's connection is gone (checked every `interval`).

    aiohttp does not cancel a handler whose client left (and must not: a process must
    never die with its requester), so long streams watch for it to release what they
    hold. Cancel the future when the stream ends.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def check() -> None:
        if future.done():
            return
        transport = request.transport
        if transport is None or transport.is_closing():
            future.set_result(None)
        else:
            loop.call_later(interval, check)

    loop.call_later(interval, check)
    return future
