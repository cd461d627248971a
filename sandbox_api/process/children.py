"""Every child the daemon starts, and the reaping of all of them, orphans included.

All subprocesses of the daemon are started here, so one place knows which pids are
ours to wait for. The daemon is a child subreaper (it may even be PID 1), so the
orphans of user commands are re-parented to it and must be reaped too, or they stay
zombies forever. Known children are reaped on SIGCHLD. Unknown zombies are reaped by
a once-a-second sweep, only once seen twice in a row: a zombie that lingers that long
has no other waiter (so a library that spawns and waits for its own child is never
robbed of its exit status).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

from ..linux.syscalls import set_child_subreaper

log = logging.getLogger("sandbox_api.children")

SWEEP_INTERVAL = 1.0


class Child:
    """A started child: its pid, and a future for its exit status."""

    def __init__(self, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.popen = popen
        self.pid = popen.pid
        self._exit: asyncio.Future[int] = loop.create_future()

    @property
    def returncode(self) -> int | None:
        """Exit code, or `-signal` when a signal ended it; None while it runs."""
        return self._exit.result() if self._exit.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def _exited(self, code: int) -> None:
        # Popen must not wait for this pid again: a later child may reuse it.
        self.popen.returncode = code
        if not self._exit.done():
            self._exit.set_result(code)


class Children:
    """Starts children and reaps every child of this process."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._known: dict[int, Child] = {}
        self._suspects: set[int] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._signal_installed = False

    def install(self) -> None:
        """Become subreaper and start reaping. Call from the event loop's thread."""
        self._loop = asyncio.get_running_loop()
        set_child_subreaper()
        try:
            self._loop.add_signal_handler(signal.SIGCHLD, self.reap)
            self._signal_installed = True
        except (RuntimeError, ValueError, NotImplementedError):
            log.warning("SIGCHLD handler unavailable; reaping by sweep only")
        self._schedule_sweep()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._signal_installed and self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGCHLD)
            self._signal_installed = False

    def spawn(self, argv: Sequence[str], **popen_kwargs: Any) -> Child:
        """Start a child (same arguments as subprocess.Popen) and track it.

        Raises OSError (e.g. FileNotFoundError) when it cannot be started.
        """
        loop = self._loop or asyncio.get_running_loop()
        popen = subprocess.Popen(list(argv), **popen_kwargs)  # noqa: S603 - argv is built by us
        child = Child(popen, loop)
        self._known[child.pid] = child
        return child

    @property
    def running(self) -> int:
        return len(self._known)

    def reap(self) -> None:
        """Collect the exit status of every known child that has exited."""
        for pid in list(self._known):
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                # Someone else reaped it: its status is lost.
                self._known.pop(pid)._exited(255)
                continue
            if got == pid:
                self._known.pop(pid)._exited(os.waitstatus_to_exitcode(status))

    def _schedule_sweep(self) -> None:
        assert self._loop is not None
        self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _sweep(self) -> None:
        try:
            self.reap()
            self._reap_orphans()
        except Exception:  # never let the sweeper die
            log.exception("child sweep failed")
        finally:
            self._schedule_sweep()

    def _reap_orphans(self) -> None:
        zombies = {pid for pid in _direct_children() if pid not in self._known and _is_zombie(pid)}
        for pid in zombies & self._suspects:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        self._suspects = zombies - self._suspects


def _direct_children() -> set[int]:
    me = os.getpid()
    pids: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:
        return pids
    for task in tasks:
        try:
            with open(f"/proc/{me}/task/{task}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except (OSError, ValueError):
            continue
    return pids


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False
