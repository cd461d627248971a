"""The workload the interpreter's profile-guided build learns from (build.py, step 1).

    python3 packaging/static/train.py BINARY

Starts the instrumented one-file daemon a few times and drives what matters most in a
sandbox: the start itself (imports, route tables), then the hot paths agents use (exec
round trips and streams, file reads and writes, search, MCP), and stops it with SIGTERM
so the counters are written. Plain `http.client`: it runs on the build machine's Python.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTS = 6  # the start dominates; the request mix runs on each start
ROUNDS = 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None) -> bytes:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.conn.request(method, path, body=data, headers={"Host": "127.0.0.1", **(headers or {})})
        response = self.conn.getresponse()
        payload = response.read()
        if response.status >= 500:
            raise SystemExit(f"train: {method} {path} answered {response.status}: {payload[:300]!r}")
        return payload


def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            Client(port).call("GET", "/health")
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("train: the instrumented daemon did not start") from None
            time.sleep(0.005)


def workload(port: int, root: Path) -> None:
    c = Client(port)
    (root / "src").mkdir(exist_ok=True)
    for i in range(20):
        (root / "src" / f"module_{i}.py").write_text(f"def handler_{i}():\n    return 'value {i}'\n" * 20)
    for i in range(ROUNDS):
        c.call("POST", "/process", {"command": f"echo round {i}", "waitForCompletion": True})
        c.call("PUT", f"/filesystem/{root}/notes/n{i % 5}.txt", {"content": f"line {i}\n" * 50})
        c.call("GET", f"/filesystem/{root}/notes/n{i % 5}.txt")
        c.call("GET", f"/filesystem/{root}/src")
    c.call("POST", "/process", {"command": "seq 1 20000", "name": "counting", "waitForCompletion": True})
    c.call("GET", "/process/counting/logs")
    c.call("GET", "/process")
    stream = c.call("POST", "/process", {"command": "seq 1 5000"}, {"Accept": "text/event-stream"})
    assert stream, "an empty NDJSON stream"
    c.call("GET", f"/filesystem-content-search/{root}/src?query=handler_1")
    c.call("GET", f"/filesystem-search/{root}/src?query=modle")
    c.call("GET", f"/filesystem-find/{root}?patterns=*.py")
    mcp = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    c.call("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                            "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                                       "clientInfo": {"name": "train", "version": "1"}}}, mcp)  # fmt: skip
    c.call("POST", "/mcp", {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, mcp)
    for i in range(10):
        c.call("POST", "/mcp", {"jsonrpc": "2.0", "id": 3 + i, "method": "tools/call",
                                "params": {"name": "processExecute",
                                           "arguments": {"command": f"echo {i}", "waitForCompletion": True}}},
               mcp)  # fmt: skip
    c.call("GET", "/openapi.json")


def main() -> None:
    binary = sys.argv[1]
    for _ in range(STARTS):
        with tempfile.TemporaryDirectory(prefix="sandbox-api-train-") as tmp:
            root = Path(tmp)
            port = free_port()
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SANDBOX_STATE_DIR": str(root / "state"),
                   "WORKDIR": str(root), "DISABLE_REQUEST_LOGGING": "true", "HOME": str(root)}  # fmt: skip
            proc = subprocess.Popen([binary, "--host", "127.0.0.1", "-p", str(port)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            try:
                wait_healthy(port, proc)
                workload(port, root)
            finally:
                proc.send_signal(signal.SIGTERM)  # a clean exit writes the profile
                if proc.wait(30) != 0:
                    raise SystemExit(f"train: the daemon exited {proc.returncode}")


if __name__ == "__main__":
    main()
