"""What the daemon loads at start: aiohttp's client side waits for the first outbound call."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import Daemon


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from upstream"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def imported(log: str) -> set[str]:
    """Module names from `-X importtime` lines ("import time: self | cumulative | name")."""
    names = set()
    for line in log.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_the_client_side_of_aiohttp_loads_on_the_first_outbound_call(daemon_factory, upstream: int):
    daemon: Daemon = daemon_factory(env={"PYTHONPROFILEIMPORTTIME": "1"})
    daemon.start()
    with urllib.request.urlopen(f"{daemon.url}/health", timeout=10) as r:
        assert r.status == 200
    at_start = imported(daemon.log())
    assert "aiohttp.web_app" in at_start  # (aiohttp.web itself may load without an importtime line)
    assert not {"aiohttp.client", "aiohttp.connector", "aiohttp.tracing"} & at_start

    with urllib.request.urlopen(f"{daemon.url}/port/{upstream}/", timeout=10) as r:
        assert (r.status, r.read()) == (200, b"hello from upstream")
    assert {"aiohttp.client", "aiohttp.connector"} <= imported(daemon.log())
    daemon.stop()
