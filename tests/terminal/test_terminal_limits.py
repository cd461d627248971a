"""The terminal socket answers out-of-range resizes and oversized frames with a clear error."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import WSMsgType

from .test_terminal import connect, wait_for_size

# /bin/sh: no rc files to wait for (a shell killed inside pyenv's rehash leaves its lock behind).

pytestmark = pytest.mark.timeout(60)


async def _next_error(term, timeout: float = 10.0) -> dict:
    while True:
        message = await term.ws.receive(timeout=timeout)
        assert message.type == WSMsgType.TEXT, message
        frame = json.loads(message.data)
        if frame["type"] == "error":
            return frame
        term.text += frame["data"]


@pytest.mark.parametrize(
    "size",
    [
        {"cols": 65536, "rows": 24},
        {"cols": 80, "rows": 10**9},
        {"cols": -1, "rows": 5},
        {"cols": "wide", "rows": 24},
        {"cols": 1e400, "rows": 24},
        {"cols": [1], "rows": 2},
    ],
)
async def test_an_out_of_range_resize_gets_an_error_frame_and_the_socket_stays(client, size):
    term = await connect(client, shell="/bin/sh", sessionId="big-resize", cols=80, rows=24)
    await term.ws.send_str(json.dumps({"type": "resize", **size}).replace("Infinity", "1e400"))
    error = await _next_error(term)
    assert error["data"].startswith("resize: ") and "65535" in error["data"]
    await term.resize(65535, 100)  # the largest size works
    await wait_for_size(term, "100 65535")
    await term.ws.close()


async def test_a_frame_over_4_mib_gets_an_error_frame_and_a_close_reason(client):
    term = await connect(client, shell="/bin/sh", sessionId="paste")
    assert (await term.run("echo $((1 + 1))")).strip() == "2"
    frame = json.dumps({"type": "input", "data": "x" * (5 * 1024 * 1024)})
    # The server may stop reading before the whole frame is out: the send can fail.
    sending = asyncio.create_task(term.ws.send_str(frame))
    error = await _next_error(term)
    await asyncio.gather(sending, return_exceptions=True)
    assert "over 4 MiB" in error["data"]
    closing = await term.ws.receive(timeout=10)
    assert closing.type == WSMsgType.CLOSE
    assert closing.data == 1009
    assert "smaller frames" in closing.extra
    # The session lives on: a reconnect finds it.
    again = await connect(client, shell="/bin/sh", sessionId="paste")
    assert (await again.run("echo $((2 + 3))")).strip() == "5"
    await again.ws.close()


async def test_a_big_paste_in_small_frames_reaches_the_shell(client):
    term = await connect(client, shell="/bin/sh", sessionId="big-paste")
    # 8 MiB into `wc -c`, in the 64 KiB frames the page sends.
    await term.send("stty raw -echo; head -c 8388608 | wc -c; stty sane\r")
    await asyncio.sleep(0.3)
    chunk = "y" * 65536
    for _ in range(128):
        await term.send(chunk)
    await term.expect(r"\b8388608\b", timeout=30)
    await term.ws.close()
