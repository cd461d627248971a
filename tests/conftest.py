"""Shared fixtures: an in-process app over real HTTP, and a real daemon subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api import config
from sandbox_api.app import build_app
from sandbox_api.config import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def clean_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $HOME for the daemon under test. The terminal's shell is interactive, so
    it reads the startup files of $HOME; a test machine's own ~/.bashrc is not what is
    tested and can stall a shell for a minute (pyenv's `init` waits on a lock that a
    killed shell left behind)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def settings(tmp_path: Path, workdir: Path) -> Settings:
    return replace(
        config.from_environment(),
        host="127.0.0.1",
        port=0,
        state_dir=tmp_path / "state",
        log_dir=None,
        workdir=str(workdir),
        disable_request_logging=True,
        scale_file=str(tmp_path / "scale" / "scale_to_zero_disable"),
        stop_grace_seconds=2.0,
    )


@pytest_asyncio.fixture
async def client(settings: Settings) -> Iterator[TestClient]:
    """The app, served on a real loopback socket in this process."""
    app = build_app(settings)
    async with TestClient(TestServer(app)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """A `sandbox-api` subprocess on a free port, for tests that need a real daemon."""

    def __init__(
        self, state_dir: Path, workdir: Path, env: dict[str, str] | None = None, args: list[str] | None = None
    ):
        self.state_dir = state_dir
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SANDBOX_STATE_DIR": str(state_dir), "WORKDIR": str(workdir), **(env or {})}
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = state_dir.parent / f"daemon-{self.port}.log"

    def start(self, timeout: float = 15.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox_api", "--host", "127.0.0.1", "-p", str(self.port), *self.args],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("daemon did not start")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def daemon_factory(tmp_path: Path, workdir: Path) -> Iterator:
    daemons: list[Daemon] = []

    def make(**kwargs) -> Daemon:
        d = Daemon(kwargs.pop("state_dir", tmp_path / "state"), kwargs.pop("workdir", workdir), **kwargs)
        daemons.append(d)
        return d

    yield make
    for d in daemons:
        if d.proc is not None and d.proc.poll() is None:
            d.stop(signal.SIGKILL)


@pytest.fixture
def daemon(daemon_factory) -> Daemon:
    d = daemon_factory()
    d.start()
    return d


def kill_leftovers(marker: str) -> None:
    """Kill processes whose command line carries `marker` (test hygiene)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:
            continue
