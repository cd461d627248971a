"""End to end: headless Chromium renders /swagger offline and sends a request from it."""

from __future__ import annotations

import aiohttp
import pytest

from ..terminal.test_browser import chromedriver, open_browser  # noqa: F401 - chromedriver is a fixture

pytestmark = pytest.mark.timeout(120)

OPEN_HEALTH = """
const op = [...document.querySelectorAll('details.op')].find(d =>
    d.querySelector('.path').textContent === '/health' && d.querySelector('.method').textContent === 'get');
op.open = true;
op.dispatchEvent(new Event('toggle'));
op.querySelector('.try button').click();
[...op.querySelectorAll('.try button')].find(b => b.textContent === 'Send').click();
return true;
"""


async def test_the_page_renders_every_operation_and_tries_one(daemon, chromedriver, tmp_path):  # noqa: F811
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_browser(http, chromedriver, str(tmp_path / "profile"))
        try:
            await browser.call("POST", "/url", {"url": f"{daemon.url}/swagger"})
            assert (await browser.script("return location.pathname")) == "/swagger/index.html"
            count = await browser.until(
                "return document.querySelectorAll('details.op .method').length", lambda n: n > 50
            )
            async with http.get(f"{daemon.url}/openapi.json") as resp:
                doc = await resp.json()
            assert count == sum(len(item) for item in doc["paths"].values())
            await browser.script(OPEN_HEALTH)
            text = await browser.until(
                "return [...document.querySelectorAll('.try pre')].map(p => p.textContent).join('')",
                lambda text: '"status":"ok"' in text,
            )
            assert text.startswith("GET /health") or "200" in text
        finally:
            await browser.call("DELETE", "")
