"""End to end: headless Chromium opens /terminal, types a command, and sees its output;
each tab has its own session, `exit` shows an ended session with a control to start a new
one, the connection state follows the server, and underscores are drawn at 1x density.

Chromium is driven through chromedriver's WebDriver HTTP API (plain JSON over HTTP),
so no Selenium is needed. `make test` installs the Debian `chromium` and
`chromium-driver` packages when they are missing.
"""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import aiohttp
import pytest

from ..conftest import free_port

pytestmark = pytest.mark.timeout(120)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C WebDriver element key
ENTER = "\ue007"


class Browser:
    def __init__(self, http: aiohttp.ClientSession, base: str, session: str) -> None:
        self.http = http
        self.base = f"{base}/session/{session}"

    async def call(self, method: str, path: str, body: dict | None = None):
        async with self.http.request(method, self.base + path, json=body) as resp:
            reply = await resp.json()
        if resp.status != 200:
            raise AssertionError(f"webdriver {method} {path}: {resp.status} {reply}")
        return reply["value"]

    async def script(self, source: str):
        return await self.call("POST", "/execute/sync", {"script": source, "args": []})

    async def new_tab(self) -> str:
        handle = (await self.call("POST", "/window/new", {"type": "tab"}))["handle"]
        await self.switch(handle)
        return handle

    async def switch(self, handle: str) -> None:
        await self.call("POST", "/window", {"handle": handle})

    async def until(self, source: str, predicate, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while True:
            value = await self.script(source)
            if predicate(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting; last value {value!r}")
            await asyncio.sleep(0.1)


@pytest.fixture
def chromedriver(tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver are not installed (make test installs them)")
    port = free_port()
    proc = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def open_browser(http: aiohttp.ClientSession, driver: str, profile: str) -> Browser:
    options = {
        "binary": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--window-size=1200,800",
            "--force-device-scale-factor=1",  # 1x density, where clipped glyph parts show
        ],
    }
    capabilities = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
    for _ in range(100):  # chromedriver takes a moment to listen
        try:
            async with http.post(f"{driver}/session", json=capabilities) as resp:
                reply = await resp.json()
            break
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("chromedriver did not start")
    assert resp.status == 200, reply
    return Browser(http, driver, reply["value"]["sessionId"])


def decode_png(data: bytes) -> tuple[int, int, list[bytes], int]:
    """(width, height, rows, bytes per pixel) of an 8-bit, non-interlaced RGB(A) PNG (what
    WebDriver screenshots are): enough to look at pixels without an imaging library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and color in (2, 6) and not interlace, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows, channels


async def save_screenshot(browser: Browser, path: Path, element: str | None = None) -> bytes:
    """A screenshot (of the page, or of one element) saved at `path`; checked to be at 1x density."""
    if element is None:
        png = base64.b64decode(await browser.call("GET", "/screenshot"))
        width = decode_png(png)[0]
        assert width == await browser.script("return window.innerWidth"), "not at device scale factor 1"
    else:
        found = await browser.call("POST", "/element", {"using": "css selector", "value": element})
        png = base64.b64decode(await browser.call("GET", f"/element/{found[ELEMENT]}/screenshot"))
    path.write_bytes(png)
    return png


def longest_bright_run(png: bytes) -> int:
    """The longest horizontal run of pixels clearly lighter than the dark background: a row
    of underscores draws one line (antialiased: a 1 px stroke may be half grey)."""
    width, _, rows, channels = decode_png(png)
    best = 0
    for row in rows:
        run = 0
        for x in range(width):
            if sum(row[x * channels : x * channels + 3]) > 3 * 80:
                run += 1
                best = max(best, run)
            else:
                run = 0
    return best


STATE = "return [document.getElementById('status').dataset.state, document.getElementById('status').textContent]"
SCREEN = "const r = document.querySelector('.xterm-rows'); return r ? r.innerText : ''"


async def type_keys(browser: Browser, text: str) -> None:
    textarea = await browser.call("POST", "/element", {"using": "css selector", "value": ".xterm-helper-textarea"})
    await browser.call("POST", f"/element/{textarea[ELEMENT]}/value", {"text": text})


async def wait_prompt(browser: Browser) -> None:
    await browser.until(SCREEN, lambda text: "#" in text or "$" in text)


async def wait_state(browser: Browser, state: str, timeout: float = 20.0) -> str:
    return (await browser.until(STATE, lambda value: value[0] == state, timeout))[1]


async def test_chromium_types_into_the_terminal_and_sees_the_output(daemon, chromedriver, tmp_path):
    await type_and_see(daemon.url + "/terminal", chromedriver, tmp_path)


async def test_with_a_token_the_page_loads_and_its_socket_authenticates(daemon_factory, chromedriver, tmp_path):
    daemon = daemon_factory(args=["--token", "page-token-123"])
    daemon.start()
    await type_and_see(daemon.url + "/terminal?token=page-token-123", chromedriver, tmp_path)


async def type_and_see(url: str, chromedriver: str, tmp_path) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_browser(http, chromedriver, str(tmp_path / "profile"))
        try:
            await browser.call("POST", "/url", {"url": url})
            # The shell's prompt shows once the socket is up.
            await wait_prompt(browser)
            assert (await browser.script(STATE))[0] == "connected"
            await type_keys(browser, "echo hello-$RANDOM" + ENTER)
            # The command line shows `hello-$RANDOM`; only the output has digits.
            text = await browser.until(
                "return document.querySelector('.xterm-rows').innerText",
                lambda text: re.search(r"^hello-\d+\s*$", text, re.MULTILINE),
            )
            assert "echo hello-$RANDOM" in text
        finally:
            await browser.call("DELETE", "")


async def test_underscores_are_drawn_at_1x_density(daemon, chromedriver, tmp_path):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_browser(http, chromedriver, str(tmp_path / "profile"))
        try:
            await browser.call("POST", "/url", {"url": daemon.url + "/terminal"})
            await wait_prompt(browser)
            # 40 underscores in a row: a line of ~300 light pixels when drawn, nothing when clipped.
            await type_keys(browser, "clear; printf '%040d\\n' 0 | tr 0 _" + ENTER)
            await browser.until(SCREEN, lambda text: "_" * 40 in text)
            await asyncio.sleep(0.3)  # the DOM renderer paints on the next frame
            png = await save_screenshot(browser, tmp_path / "terminal.png", element="#terminal")
            assert longest_bright_run(png) >= 40 * 6, "the underscores are not drawn"
        finally:
            await browser.call("DELETE", "")


async def test_each_tab_has_its_own_session_a_reload_keeps_it_and_the_url_can_share_one(daemon, chromedriver, tmp_path):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_browser(http, chromedriver, str(tmp_path / "profile"))
        try:
            session_of = "return window.sandboxTerminal.sessionId()"
            await browser.call("POST", "/url", {"url": daemon.url + "/terminal"})
            first = await browser.call("GET", "/window")
            await wait_prompt(browser)
            one = await browser.script(session_of)
            await type_keys(browser, "echo first-$((6*7))" + ENTER)
            await browser.until(SCREEN, lambda text: "first-42" in text)

            await browser.new_tab()
            await browser.call("POST", "/url", {"url": daemon.url + "/terminal"})
            await wait_prompt(browser)
            two = await browser.script(session_of)
            assert one != two and one.startswith("tab-") and two.startswith("tab-")
            assert "first-42" not in await browser.script(SCREEN)  # another shell

            # A reload of the first tab reattaches to its shell (the output is replayed).
            await browser.switch(first)
            await browser.call("POST", "/refresh", {})
            await browser.until(SCREEN, lambda text: "first-42" in text)
            assert await browser.script(session_of) == one

            # A window this page opens starts with a copy of its sessionStorage, so of its id:
            # the open tab says the id is taken and the new window makes its own.
            await browser.script("window.open(location.href, '_blank'); return 1")
            handles = await browser.call("GET", "/window/handles")
            await browser.switch(handles[-1])
            await wait_prompt(browser)
            three = await browser.script(session_of)
            assert three not in (one, two) and three.startswith("tab-")
            assert "first-42" not in await browser.script(SCREEN)
            await browser.call("DELETE", "/window")
            await browser.switch(first)

            # `sessionId` in the URL shares one session between tabs.
            await browser.call("POST", "/url", {"url": daemon.url + "/terminal?sessionId=shared"})
            await wait_prompt(browser)
            await browser.switch((await browser.call("GET", "/window/handles"))[-1])
            await browser.call("POST", "/url", {"url": daemon.url + "/terminal?sessionId=shared"})
            await wait_prompt(browser)
            await type_keys(browser, "echo shared-$((6*7))" + ENTER)
            await browser.switch(first)
            await browser.until(SCREEN, lambda text: "shared-42" in text)
            assert await browser.script(session_of) == "shared"
        finally:
            await browser.call("DELETE", "")


async def test_exit_shows_the_session_ended_and_offers_a_new_one(daemon, chromedriver, tmp_path):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_browser(http, chromedriver, str(tmp_path / "profile"))
        try:
            await browser.call("POST", "/url", {"url": daemon.url + "/terminal"})
            await wait_prompt(browser)
            await type_keys(browser, "exit 3" + ENTER)
            assert await wait_state(browser, "ended") == "session ended (exit status 3)"
            assert await browser.script("return document.getElementById('new-session').hidden") is False
            await browser.until(SCREEN, lambda text: "[session ended (exit status 3)" in text)
            await save_screenshot(browser, tmp_path / "terminal-ended.png")
            # No new shell until asked: the state stays, typing sends nothing.
            await asyncio.sleep(1.5)
            await type_keys(browser, "echo typed-while-ended")
            assert (await browser.script(STATE))[0] == "ended"

            await browser.script("document.getElementById('new-session').click(); return 1")
            await wait_state(browser, "connected")
            assert await browser.script("return document.getElementById('new-session').hidden") is True
            await type_keys(browser, "echo again-$((6*7))" + ENTER)
            text = await browser.until(SCREEN, lambda text: "again-42" in text)
            assert "exit status 3" in text  # the old output stays above the new shell
            assert "typed-while-ended" not in text

            # Enter starts one too.
            await type_keys(browser, "exit" + ENTER)
            assert await wait_state(browser, "ended") == "session ended (exit status 0)"
            await type_keys(browser, ENTER)
            await wait_state(browser, "connected")
        finally:
            await browser.call("DELETE", "")


async def test_the_connection_state_follows_the_server_with_backoff_and_a_retry(daemon, chromedriver, tmp_path):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_browser(http, chromedriver, str(tmp_path / "profile"))
        try:
            await browser.call("POST", "/url", {"url": daemon.url + "/terminal"})
            await wait_prompt(browser)
            assert (await browser.script(STATE)) == ["connected", "connected"]
            daemon.stop()
            text = await wait_state(browser, "disconnected", timeout=15)
            assert text.startswith("disconnected; retrying in")
            assert await browser.script("return document.getElementById('retry').hidden") is False
            await save_screenshot(browser, tmp_path / "terminal-disconnected.png")
            # The automatic retries back off: 1 s, 2 s, 4 s ...
            await browser.until(STATE, lambda value: value[1].startswith("disconnected; retrying in 4 s"), 15)
            daemon.start()
            # "Retry now" connects at once, without waiting out the backoff.
            await browser.script("document.getElementById('retry').click(); return 1")
            await wait_state(browser, "connected", timeout=5)
            await wait_prompt(browser)
            # And without a click the page comes back by itself.
            daemon.stop()
            await wait_state(browser, "disconnected", timeout=15)
            daemon.start()
            await wait_state(browser, "connected", timeout=20)
        finally:
            await browser.call("DELETE", "")


async def test_without_the_token_the_page_asks_for_it(daemon_factory, chromedriver, tmp_path):
    daemon = daemon_factory(args=["--token", "asked-token-7"])
    daemon.start()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_browser(http, chromedriver, str(tmp_path / "profile"))
        try:
            await browser.call("POST", "/url", {"url": daemon.url + "/terminal"})
            assert await wait_state(browser, "unauthorized") == "the daemon needs a token"
            field = await browser.call("POST", "/element", {"using": "css selector", "value": "#token"})
            await browser.call("POST", f"/element/{field[ELEMENT]}/value", {"text": "asked-token-7" + ENTER})
            await wait_state(browser, "connected")
            await wait_prompt(browser)
            # Kept for this tab (and shared with the swagger page): a reload connects at once.
            await browser.call("POST", "/refresh", {})
            await wait_state(browser, "connected")
        finally:
            await browser.call("DELETE", "")
