"""The web terminal: page, bundled assets, and the JSON-frame WebSocket on real ptys."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app
from sandbox_api.terminal.routes import TERMINALS

from ..helpers import pid_alive, wait_for

pytestmark = pytest.mark.timeout(60)


class Terminal:
    """One websocket connection, with the text it has received so far."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.text = ""
        self.frames: list[dict] = []

    async def send(self, data: str) -> None:
        await self.ws.send_str(json.dumps({"type": "input", "data": data}))

    async def resize(self, cols: int, rows: int) -> None:
        await self.ws.send_str(json.dumps({"type": "resize", "cols": cols, "rows": rows}))

    async def expect(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text, re.DOTALL)
            if found:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{pattern!r} not seen in {self.text[-2000:]!r}")
            try:
                message = await self.ws.receive(timeout=remaining)
            except TimeoutError:
                continue
            if message.type != WSMsgType.TEXT:
                raise AssertionError(f"socket ended ({message.type}) before {pattern!r}; got {self.text[-2000:]!r}")
            frame = json.loads(message.data)
            self.frames.append(frame)
            if frame["type"] == "output":
                self.text += frame["data"]

    async def run(self, command: str, timeout: float = 10.0) -> str:
        """Run `command` and return what it printed between two unique markers."""
        marker = f"M{time.monotonic_ns()}"
        # The markers are built by the shell, so the echoed command line never matches.
        await self.send(f"echo {marker[:3]}''{marker[3:]}-start; {command}; echo {marker[:3]}''{marker[3:]}-end\r")
        found = await self.expect(re.escape(marker) + r"-start\r?\n(.*?)" + re.escape(marker) + "-end", timeout)
        return found.group(1)


async def connect(client: TestClient, **query: str | int) -> Terminal:
    ws = await client.ws_connect("/terminal/ws", params={k: str(v) for k, v in query.items()})
    return Terminal(ws)


async def test_page_and_bundled_assets(client):
    page = await client.get("/terminal")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    assert all(not s.startswith(("http:", "https:", "//")) for s in sources), sources  # works offline
    for source in sources:
        asset = await client.get(source if source.startswith("/") else "/terminal/" + source)
        assert asset.status == 200, source
        assert len(await asset.read()) > 1000
    js = await client.get("/terminal/static/xterm.js")
    assert js.content_type == "application/javascript"
    assert (await client.get("/terminal/static/nope.js")).status == 404
    assert (await client.get("/terminal/static/..%2Fsessions.py")).status == 404
    assert (await client.head("/terminal")).status == 200


async def test_input_output_and_working_directory(client, workdir, monkeypatch):
    monkeypatch.delenv("TERM", raising=False)  # the daemon's TERM is kept when it has one
    term = await connect(client, sessionId="io", cols=90, rows=30)
    assert (await term.run("pwd")).strip() == str(workdir)
    assert (await term.run("echo $TERM")).strip() == "xterm-256color"
    assert (await term.run("stty size")).strip() == "30 90"
    assert (await term.run("echo $((6 * 7))")).strip() == "42"
    await term.ws.close()


async def test_a_bad_size_in_the_query_is_ignored(client):
    # As the original: the page still gets its terminal, at the default 80x24.
    term = await connect(client, sessionId="bad-size", cols="wide", rows=0)
    assert (await term.run("stty size")).strip() == "24 80"
    await term.ws.close()
    term = await connect(client, sessionId="big-size", cols=65536, rows="+30")
    assert (await term.run("stty size")).strip() == "24 80"
    await term.ws.close()


async def test_daemon_secrets_stay_out_of_the_shell(settings, workdir, monkeypatch):
    monkeypatch.setenv("SANDBOX_API_TOKEN", "secret-token-xyz")
    monkeypatch.setenv("VISIBLE_TO_SHELL", "yes-visible")
    async with TestClient(TestServer(build_app(settings))) as client:
        term = await connect(client, sessionId="env")
        out = await term.run("env")
        assert "VISIBLE_TO_SHELL=yes-visible" in out
        assert "secret-token-xyz" not in out
        await term.ws.close()


async def test_resize_changes_the_pty_size(client):
    term = await connect(client, sessionId="resize", cols=80, rows=24)
    assert (await term.run("stty size")).strip() == "24 80"
    await term.resize(132, 43)
    await wait_for_size(term, "43 132")
    # Bad frames are ignored, the session carries on.
    await term.ws.send_str("not json")
    await term.ws.send_str(json.dumps({"type": "resize", "cols": "wide"}))
    await term.ws.send_str(json.dumps({"type": "mystery"}))
    assert (await term.run("stty size")).strip() == "43 132"
    await term.ws.close()


async def wait_for_size(term: Terminal, size: str) -> None:
    for _ in range(50):
        if (await term.run("stty size")).strip() == size:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"size never became {size}")


async def test_reattach_replays_output_and_keeps_the_shell(client):
    first = await connect(client, sessionId="keep")
    await first.run("export KEPT=still-here")
    shell_pid = (await first.run("echo $$")).strip()
    await first.send("echo replay-''me\r")
    await first.expect("replay-me\r?\n")
    await first.ws.close()

    second = await connect(client, sessionId="keep", cols=100, rows=20)
    await second.expect("replay-me")  # the replay frame comes first
    assert second.frames[0]["type"] == "output" and "replay-me" in second.frames[0]["data"]
    assert (await second.run("echo $$")).strip() == shell_pid
    assert (await second.run("echo $KEPT")).strip() == "still-here"
    assert (await second.run("stty size")).strip() == "20 100"  # reattaching resizes

    other = await connect(client, sessionId="another")
    assert (await other.run("echo $$")).strip() != shell_pid
    assert "replay-me" not in other.text
    for t in (second, other):
        await t.ws.close()


async def test_two_clients_share_a_session(client):
    a = await connect(client, sessionId="shared")
    b = await connect(client, sessionId="shared")
    await a.send("echo from-''a\r")
    await a.expect("from-a\r?\n")
    await b.expect("from-a\r?\n")
    await a.ws.close()
    await b.ws.close()


async def test_ctrl_c_interrupts_and_multibyte_output_is_not_garbled(client):
    term = await connect(client, sessionId="keys")
    await term.send("sleep 30\r")
    await asyncio.sleep(0.3)
    await term.send("\x03")
    assert (await term.run("echo after")).strip() == "after"
    # 60000 two-byte characters cross many 64 KiB pty reads.
    out = await term.run("head -c 120000 /dev/zero | tr '\\0' 'x' | sed 's/x/é/g'", timeout=20)
    assert "\ufffd" not in out
    assert out.replace("\r", "").replace("\n", "") == "é" * 120000
    await term.ws.close()


async def test_exit_says_so_with_the_status_then_closes_and_the_session_is_reaped(client):
    terminals = client.server.app[TERMINALS]()
    term = await connect(client, sessionId="bye")
    await term.run("true")
    await term.send("exit 3\r")
    frames = []
    message = await term.ws.receive(timeout=10)
    while message.type == WSMsgType.TEXT:
        frames.append(json.loads(message.data))
        message = await term.ws.receive(timeout=10)
    # The page tells an ended shell (exit frame, then a normal close) from a lost connection.
    assert frames[-1] == {"type": "exit", "code": 3}
    assert message.type == WSMsgType.CLOSE
    assert (message.data, message.extra) == (1000, "session ended")
    await wait_for(lambda: not terminals.sessions["bye"].listeners)
    assert terminals.reap() == 1
    assert "bye" not in terminals.sessions
    # The same id starts afresh.
    again = await connect(client, sessionId="bye")
    assert (await again.run("echo new")).strip() == "new"
    await again.ws.close()


async def test_a_shell_killed_by_a_signal_ends_with_minus_the_signal(client):
    term = await connect(client, sessionId="killed")
    await term.run("true")
    await term.send("kill -9 $$\r")
    message = await term.ws.receive(timeout=10)
    frames = []
    while message.type == WSMsgType.TEXT:
        frames.append(json.loads(message.data))
        message = await term.ws.receive(timeout=10)
    assert frames[-1] == {"type": "exit", "code": -9}


async def test_idle_sessions_are_reaped_with_their_processes(client):
    terminals = client.server.app[TERMINALS]()
    term = await connect(client, sessionId="idle")
    background = int((await term.run("sleep 300 & echo $!")).split()[-1])
    assert pid_alive(background)
    await term.ws.close()
    await wait_for(lambda: not terminals.sessions["idle"].listeners)
    assert terminals.reap() == 0  # detached but recent: kept for reattach
    terminals.sessions["idle"].last_activity -= 3600
    assert terminals.reap() == 1
    await wait_for(lambda: not pid_alive(background))


async def test_a_bad_working_directory_is_an_error_frame(client):
    ws = await client.ws_connect("/terminal/ws", params={"sessionId": "bad", "workingDir": "/does/not/exist"})
    message = await ws.receive(timeout=10)
    frame = json.loads(message.data)
    assert frame["type"] == "error"
    assert "/does/not/exist" in frame["data"]
    assert (await ws.receive(timeout=10)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)


async def test_disable_terminal(settings):
    async with TestClient(TestServer(build_app(replace(settings, disable_terminal=True)))) as client:
        assert (await client.get("/terminal")).status == 404
        assert (await client.get("/terminal/ws")).status == 404
