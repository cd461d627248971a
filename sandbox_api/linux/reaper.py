"""The reaping of every child of the daemon, orphans included.

The daemon is a child subreaper (it may even be PID 1), so the orphans of user commands
are re-parented to it and must be reaped too, or they stay zombies forever. Each known
child is watched through a pidfd (readable once it exits, then reaped with one waitpid):
no SIGCHLD handler, which uvloop keeps for itself, and no waitpid on every known child
at every signal. Where pidfds are missing (Linux < 5.3) known children are reaped on
SIGCHLD. Unknown zombies are reaped by a once-a-second sweep, only once seen twice in a
row: a zombie that lingers that long has no other waiter (so a library that spawns and
waits for its own child is never robbed of its exit status).
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import subprocess

from .syscalls import set_child_subreaper
from .tree import stat_fields

log = logging.getLogger("sandbox_api.children")

SWEEP_INTERVAL = 1.0


class Child:
    """A started child: its pid, and a future for its exit status."""

    def __init__(self, pid: int, loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.popen = popen
        self.pid = pid
        self._exit: asyncio.Future[int] = loop.create_future()
        self.pidfd = -1  # watched while the child runs

    @property
    def returncode(self) -> int | None:
        """Exit code, or `-signal` when a signal ended it; None while it runs."""
        return self._exit.result() if self._exit.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def _exited(self, code: int) -> None:
        if self.popen is not None:
            # Popen must not wait for this pid again: a later child may reuse it.
            self.popen.returncode = code
        if not self._exit.done():
            self._exit.set_result(code)


class Reaper:
    """Reaps every child of this process; learns of the exit of each known one."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._known: dict[int, Child] = {}
        self._suspects: set[int] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._signal_installed = False
        # The pidfds of running children, in an epoll set of our own that the loop watches as
        # one fd: adding a child is two syscalls, without the loop's per-fd bookkeeping.
        self._exits: select.epoll | None = select.epoll() if pidfds_supported() else None
        self._by_pidfd: dict[int, Child] = {}

    def install(self) -> None:
        """Become subreaper and start reaping. Call from the event loop's thread."""
        self._loop = asyncio.get_running_loop()
        set_child_subreaper()
        if self._exits is not None:
            self._loop.add_reader(self._exits.fileno(), self._pidfds_ready)
        else:
            try:
                self._loop.add_signal_handler(signal.SIGCHLD, self.reap)
                self._signal_installed = True
            except RuntimeError:  # outside the main thread, or uvloop's own SIGCHLD handler
                log.warning("neither pidfds nor a SIGCHLD handler: children are reaped by the sweep only")
        self._schedule_sweep()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._signal_installed and self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGCHLD)
            self._signal_installed = False
        for child in list(self._by_pidfd.values()):
            self._unwatch(child)
        if self._exits is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._exits.fileno())
            self._exits.close()
            self._exits = None

    def _track(self, child: Child) -> Child:
        """Know `child`, and learn of its exit from its pidfd (or SIGCHLD / the sweep without)."""
        self._known[child.pid] = child
        if self._exits is not None:
            try:
                child.pidfd = os.pidfd_open(child.pid)
            except OSError:  # out of fds: the sweep still reaps it, within a second
                return child
            self._exits.register(child.pidfd, select.EPOLLIN)
            self._by_pidfd[child.pidfd] = child
        return child

    def _pidfds_ready(self) -> None:
        if self._exits is None:
            return
        for fd, _ in self._exits.poll(0):
            child = self._by_pidfd.get(fd)
            if child is None:
                continue
            try:
                got, status = os.waitpid(child.pid, os.WNOHANG)
            except ChildProcessError:
                got, status = child.pid, -1
            if got != child.pid:
                continue  # not over yet (a spurious wake-up): stay watched
            self._unwatch(child)
            if self._known.get(child.pid) is child:
                del self._known[child.pid]
            child._exited(255 if status < 0 else os.waitstatus_to_exitcode(status))

    def _unwatch(self, child: Child) -> None:
        if child.pidfd >= 0:
            self._by_pidfd.pop(child.pidfd, None)
            if self._exits is not None:
                self._exits.unregister(child.pidfd)
            os.close(child.pidfd)
            child.pidfd = -1

    def adopt(self, pid: int) -> Child | None:
        """Track `pid` if it is our child though we did not start it in this life of the
        daemon (an upgrade re-execs in place: same pid, same children)."""
        if pid in self._known:
            return self._known[pid]
        if parent_of(pid) != os.getpid():
            return None
        child = self._track(Child(pid, self._loop or asyncio.get_running_loop()))
        self.reap()  # it may have ended already
        return child

    def reap(self) -> None:
        """Collect the exit status of every known child that has exited."""
        for pid in list(self._known):
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                # Someone else reaped it: its status is lost.
                child = self._known.pop(pid)
                self._unwatch(child)
                child._exited(255)
                continue
            if got == pid:
                child = self._known.pop(pid)
                self._unwatch(child)
                child._exited(os.waitstatus_to_exitcode(status))

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


def pidfds_supported() -> bool:
    """Whether this kernel has pidfd_open (Linux 5.3) and poll on a pidfd."""
    try:
        fd = os.pidfd_open(os.getpid())
    except (OSError, AttributeError):
        return False
    os.close(fd)
    return True


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


def parent_of(pid: int) -> int:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else 0


def zombie_exit_code(pid: int) -> int | None:
    """The exit code of a zombie that is not ours to reap (/proc exposes its wait status)."""
    fields = stat_fields(pid)
    if len(fields) < 50 or fields[0] != b"Z":
        return None
    return os.waitstatus_to_exitcode(int(fields[49]))


def _is_zombie(pid: int) -> bool:
    fields = stat_fields(pid)
    return bool(fields) and fields[0] == b"Z"
