"""`sandbox-api ready` and `sandbox-api start-process`: what entrypoint.sh needs from a
running daemon, in images that have neither curl nor wget.

    sandbox-api ready [--port P] [--timeout S] [--pid N]  # exit 0 once GET /health answers 200
    sandbox-api start-process [--port P]         # POST /process from SANDBOX_START_* variables

start-process reads SANDBOX_START_COMMAND (required), SANDBOX_START_NAME (default
"entrypoint"), SANDBOX_START_WORKDIR, SANDBOX_START_RESTART_ON_FAILURE (true/false),
SANDBOX_START_MAX_RESTARTS and SANDBOX_START_WAIT_FOR_PORTS (comma-separated ports).
The process is supervised by the daemon like any other: its logs, restarts and kill
go through the API.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

from . import config
from .cli import CLIENT_COMMANDS


def _request(port: int, method: str, path: str, body: dict | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    token = config.client_from_environment().token
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    # Straight to the daemon: an http_proxy of the image must not be used for loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def ready(port: int, timeout: float, pid: int | None = None) -> int:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if pid is not None and not _alive(pid):
            print(f"sandbox-api: the daemon (pid {pid}) exited before it was ready", file=sys.stderr)
            return 1
        try:
            status, _ = _request(port, "GET", "/health", timeout=2.0)
            if status == 200:
                return 0
            last = f"HTTP {status}"
        except OSError as e:
            last = str(getattr(e, "reason", e))
        if time.monotonic() > deadline:
            print(f"sandbox-api: not ready on port {port} after {timeout:g} s ({last})", file=sys.stderr)
            return 1
        time.sleep(0.05)


def process_request_from_environment() -> dict:
    settings = config.client_from_environment()
    if not settings.start_command:
        raise ValueError("SANDBOX_START_COMMAND is empty")
    body: dict = {"command": settings.start_command, "name": settings.start_name}
    if settings.start_workdir:
        body["workingDir"] = settings.start_workdir
    if settings.start_restart_on_failure:
        body["restartOnFailure"] = True
    if settings.start_max_restarts is not None:
        body["maxRestarts"] = settings.start_max_restarts
    if settings.start_wait_for_ports:
        body["waitForPorts"] = list(settings.start_wait_for_ports)
    return body


def start_process(port: int) -> int:
    try:
        body = process_request_from_environment()
    except ValueError as e:
        print(f"sandbox-api: {e}", file=sys.stderr)
        return 2
    try:
        status, reply = _request(port, "POST", "/process", body, timeout=600.0)
    except OSError as e:
        print(f"sandbox-api: cannot reach the daemon on port {port}: {e}", file=sys.stderr)
        return 1
    if status != 200:
        print(
            f"sandbox-api: starting {body['name']!r} failed: HTTP {status} {reply.decode(errors='replace')}",
            file=sys.stderr,
        )
        return 1
    process = json.loads(reply)
    print(f"sandbox-api: started {process.get('name')!r} (pid {process.get('pid')}): {body['command']}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sandbox-api")
    parser.add_argument("command", choices=CLIENT_COMMANDS)
    try:
        default_port = config.client_from_environment().port
    except ValueError:
        default_port = 8080  # start-process reports the variable; `ready` needs only the port
    parser.add_argument("-p", "--port", "-port", type=int, default=default_port)
    parser.add_argument("--timeout", type=float, default=30.0, help="ready: how long to wait (seconds)")
    parser.add_argument("--pid", type=int, default=None, help="ready: give up if this process (the daemon) exits")
    args = parser.parse_args(argv)
    if args.command == "ready":
        return ready(args.port, args.timeout, args.pid)
    return start_process(args.port)
