"""End to end: headless Chromium opens /terminal, types a command, and sees its output.

Chromium is driven through chromedriver's WebDriver HTTP API (plain JSON over HTTP),
so no Selenium is needed. `make test` installs the Debian `chromium` and
`chromium-driver` packages when they are missing.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time

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
            await browser.until(
                "const r = document.querySelector('.xterm-rows'); return r ? r.innerText : ''",
                lambda text: "#" in text or "$" in text,
            )
            textarea = await browser.call(
                "POST", "/element", {"using": "css selector", "value": ".xterm-helper-textarea"}
            )
            await browser.call("POST", f"/element/{textarea[ELEMENT]}/value", {"text": "echo hello-$RANDOM" + ENTER})
            # The command line shows `hello-$RANDOM`; only the output has digits.
            text = await browser.until(
                "return document.querySelector('.xterm-rows').innerText",
                lambda text: re.search(r"^hello-\d+\s*$", text, re.MULTILINE),
            )
            assert "echo hello-$RANDOM" in text
        finally:
            await browser.call("DELETE", "")
