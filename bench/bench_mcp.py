"""MCP and terminal benchmarks.

- mcp: `tools/call processExecute` (echo, waitForCompletion) as one stateless JSON-RPC
  POST to /mcp, against the same command through `POST /process`, interleaved; and the
  same call through the official `mcp` client (its own overhead included).
- terminal: keystroke-to-echo latency over /terminal/ws, against the barest
  websocket-to-pty bridge (baseline_server.py /pty, raw text frames, same shell), and
  for scale against writing the key to a pty in this process.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import time

import aiohttp
from harness import BaselineServer, Daemon, Report, ms, summarize

RUNS = 500
KEYS = 1000
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
SHELL = "/bin/sh"


async def mcp_call(report: Report) -> None:
    with Daemon(env={"SHELL": SHELL}) as daemon:
        async with aiohttp.ClientSession() as session:
            http_body = {"command": "echo hello", "waitForCompletion": True}
            rpc = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "processExecute", "arguments": {"command": "echo hello", "waitForCompletion": True}},
            }
            mcp_times, http_times = [], []
            for i in range(RUNS + 50):
                t0 = time.perf_counter()
                async with session.post(f"{daemon.url}/mcp", json=rpc, headers=MCP_HEADERS) as resp:
                    reply = await resp.json()
                t1 = time.perf_counter()
                async with session.post(f"{daemon.url}/process", json=http_body) as resp:
                    result = await resp.json()
                t2 = time.perf_counter()
                assert not reply["result"].get("isError"), reply
                assert reply["result"]["structuredContent"]["status"] == "completed", reply
                assert result["status"] == "completed", result
                if i >= 50:
                    mcp_times.append(t1 - t0)
                    http_times.append(t2 - t1)
            m50, m99 = summarize(mcp_times)
            h50, h99 = summarize(http_times)
            report.add(
                "mcp",
                f"processExecute echo p50 ({RUNS} runs)",
                ms(m50),
                f"POST /process {ms(h50)}",
                m50 / h50,
                "<= 1.3x",
            )
            report.add("mcp", "processExecute echo p99", ms(m99), f"POST /process {ms(h99)}", m99 / h99)
            c50 = await official_client_p50(daemon.url)
            report.add(
                "mcp",
                "same, official mcp client p50",
                ms(c50),
                f"POST /process {ms(h50)}",
                c50 / h50,
                "",
                "client overhead included",
            )


async def official_client_p50(url: str) -> float:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    times = []
    async with streamable_http_client(f"{url}/mcp") as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for i in range(RUNS // 2 + 20):
                t0 = time.perf_counter()
                result = await session.call_tool("processExecute", {"command": "echo hello", "waitForCompletion": True})
                elapsed = time.perf_counter() - t0
                assert not result.is_error, result
                if i >= 20:
                    times.append(elapsed)
    return summarize(times)[0]


async def read_frame_containing(ws: aiohttp.ClientWebSocketResponse, needle: str, framed: bool) -> None:
    seen = ""
    while needle not in seen:
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        seen += json.loads(message.data)["data"] if framed else message.data


async def keystrokes(url: str, framed: bool) -> list[float]:
    """Type a key and rub it out again, KEYS times: both come back as echo."""

    def frame(text: str) -> str:
        return json.dumps({"type": "input", "data": text}) if framed else text

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            await ws.send_str(frame("echo rea''dy\r"))
            await read_frame_containing(ws, "ready\r\n", framed)
            await asyncio.sleep(0.2)
            while True:  # drain the prompt
                try:
                    await ws.receive(timeout=0.2)
                except TimeoutError:
                    break
            key, rubout = frame("x"), frame("\x7f")
            times = []
            for i in range(KEYS + 50):
                t0 = time.perf_counter()
                await ws.send_str(key)
                await read_frame_containing(ws, "x", framed)
                t1 = time.perf_counter()
                await ws.send_str(rubout)
                await read_frame_containing(ws, "\b", framed)
                if i >= 50:
                    times.append(t1 - t0)
    return times


async def terminal_latency(report: Report) -> None:
    with Daemon(env={"SHELL": SHELL}) as daemon:
        ours = await keystrokes(f"{daemon.url}/terminal/ws?sessionId=bench", framed=True)
        baseline = BaselineServer(daemon.workdir)
        try:
            await baseline.wait()
            bare = await keystrokes(f"{baseline.url}/pty", framed=False)
        finally:
            baseline.close()
    local = raw_pty_latency()
    t50, t99 = summarize(ours)
    b50, b99 = summarize(bare)
    report.add("terminal", f"keystroke to echo p50 ({KEYS} keys)", ms(t50), f"bare ws-pty bridge {ms(b50)}", t50 / b50)
    report.add("terminal", "keystroke to echo p99", ms(t99), f"bare ws-pty bridge {ms(b99)}", t99 / b99)
    report.add("terminal", "for scale: pty in the driver, p50", ms(summarize(local)[0]), "", None)


def raw_pty_latency() -> list[float]:
    master, slave = pty.openpty()
    shell = subprocess.Popen([SHELL], stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)

    def read_until(needle: bytes) -> None:
        seen = b""
        while needle not in seen:
            ready, _, _ = select.select([master], [], [], 10)
            assert ready, "no echo from the pty"
            seen += os.read(master, 65536)

    os.write(master, b"echo rea''dy\r")
    read_until(b"ready\r\n")
    time.sleep(0.2)
    while select.select([master], [], [], 0.2)[0]:
        os.read(master, 65536)
    times = []
    for i in range(KEYS + 50):
        t0 = time.perf_counter()
        os.write(master, b"x")
        read_until(b"x")
        t1 = time.perf_counter()
        os.write(master, b"\x7f")
        read_until(b"\b")
        if i >= 50:
            times.append(t1 - t0)
    shell.kill()
    shell.wait()
    os.close(master)
    return times


async def main(report: Report) -> None:
    await mcp_call(report)
    await terminal_latency(report)
