"""A managed process: what a client asked to run (`ProcessSpec`) and what the daemon
holds for it while it runs (`ManagedProcess`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .. import config
from ..linux.reaper import Child
from .logstore import OutputLog
from .records import ProcessRecord


@dataclass
class ProcessSpec:
    """What a client asks to run (already validated for types)."""

    command: str
    name: str = ""
    working_dir: str = ""
    env: dict[str, str] = field(default_factory=dict)
    restart_on_failure: bool = False
    max_restarts: int = 0
    keep_alive: bool = False
    timeout: int | None = None
    stdin: bool = False
    unique_name: bool = True  # refuse a name that a running process already has


class ManagedProcess:
    """A record plus what the daemon holds for it while it runs."""

    def __init__(self, record: ProcessRecord, output: OutputLog) -> None:
        self.record = record
        self.log = output
        self.child: Child | None = None
        self.stdin_fd = -1
        self.stdin_waiters: set[asyncio.Future[None]] = set()
        self.holds_keepalive = False
        self.final = asyncio.Event()
        self.watches: list[int] = []
        self.task: asyncio.Task[None] | None = None
        self.kill_timer: asyncio.TimerHandle | None = None
        self.escalation: asyncio.TimerHandle | None = None
        self.events_since_cap = 0
        self.restarting = False  # between two runs of a restartOnFailure process
        self.restart_cancelled = asyncio.Event()

    @property
    def cookie(self) -> str:
        return f"{config.PROCESS_COOKIE}={self.record.key}"

    async def wait_final(self, timeout: float | None) -> bool:
        """Wait until no more runs will come; False on timeout."""
        if self.final.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):  # no task made per wait, unlike wait_for
                await self.final.wait()
        except TimeoutError:
            return False
        return True


def settle(future: asyncio.Future[None]) -> None:
    """A readiness callback: resolve `future` once."""
    if not future.done():
        future.set_result(None)


def wait_timeout_message(proc: ManagedProcess, seconds: float) -> str:
    """What a wait that ran out of time answers: a keepAlive process is killed by its
    timeout; any other keeps running, and the message must not read as if it were killed."""
    if proc.record.keep_alive:
        return f"process timed out after {seconds:g} seconds"
    return f"stopped waiting after {seconds:g} s; the process is still running (pid {proc.record.pid})"
