"""Every child the daemon starts, and the reaping of all of them, orphans included.

All subprocesses of the daemon are started here, so one place knows which pids are
ours to wait for. The daemon is a child subreaper (it may even be PID 1), so the
orphans of user commands are re-parented to it and must be reaped too, or they stay
zombies forever. Each known child is watched through a pidfd (readable once it exits,
then reaped with one waitpid): no SIGCHLD handler, which uvloop keeps for itself, and
no waitpid on every known child at every signal. Where pidfds are missing (Linux < 5.3)
known children are reaped on SIGCHLD. Unknown zombies are reaped by a once-a-second
sweep, only once seen twice in a row: a zombie that lingers that long has no other
waiter (so a library that spawns and waits for its own child is never robbed of its
exit status).
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import os
import select
import signal
import subprocess
import termios
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..identity import Identity
from .syscalls import set_child_subreaper
from .tree import stat_fields

log = logging.getLogger("sandbox_api.children")

SWEEP_INTERVAL = 1.0


# Dispositions a child must not inherit: Python ignores SIGPIPE and SIGXFSZ, and an
# ignored signal stays ignored across exec (`yes | head` would then never end). SIGINT
# and SIGQUIT are ignored in the daemon when it was started in the background by a
# shell without job control (`sandbox-api &` in an entrypoint script): its shells and
# commands would then never stop on Ctrl-C or on an interrupt.
_INTERRUPTS = (signal.SIGINT, signal.SIGQUIT)
_RESET_SIGNALS = tuple(
    sig
    for sig in (signal.SIGPIPE, getattr(signal, "SIGXFSZ", None), getattr(signal, "SIGXFZ", None), *_INTERRUPTS)
    if sig
)


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


class Piped:
    """A child with its stdout and stderr as asyncio streams."""

    def __init__(
        self, child: Child, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader, transports: list
    ) -> None:
        self.child = child
        self.stdout = stdout
        self.stderr = stderr
        self._transports = transports

    async def close(self) -> None:
        """Kill it if still running, reap it, release the pipes."""
        if self.child.returncode is None:
            try:
                os.kill(self.child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        await self.child.wait()
        for transport in self._transports:
            transport.close()


@dataclass(frozen=True)
class Completed:
    """A helper program that ran to its end."""

    returncode: int
    stdout: bytes
    stderr: bytes

    def output(self) -> str:
        """Its messages, for an error reply: stderr, else stdout, trimmed."""
        return (self.stderr or self.stdout).decode("utf-8", "replace").strip()


class Children:
    """Starts children and reaps every child of this process."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._known: dict[int, Child] = {}
        self._suspects: set[int] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._signal_installed = False
        self._home_fd = -1
        self._home = ""
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
        # Held for life (posix_spawn steps out of it and back): opened now, so the fd
        # count of an idle daemon is the count after any number of processes.
        self._home_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._home = os.getcwd()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._signal_installed and self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGCHLD)
            self._signal_installed = False
        if self._home_fd >= 0:
            os.close(self._home_fd)
            self._home_fd = -1
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

    def spawn(self, argv: Sequence[str], *, identity: Identity | None = None, **popen_kwargs: Any) -> Child:
        """Start a child (same arguments as subprocess.Popen) and track it; as the
        workload user when `identity` is given.

        Raises OSError (e.g. FileNotFoundError) when it cannot be started.
        """
        loop = self._loop or asyncio.get_running_loop()
        if identity is not None:
            popen_kwargs.update(user=identity.uid, group=identity.gid, extra_groups=list(identity.groups))
        ignored = [sig for sig in _INTERRUPTS if signal.getsignal(sig) == signal.SIG_IGN]
        if ignored:  # Popen restores only SIGPIPE and SIGXFSZ (see _RESET_SIGNALS)
            popen_kwargs["preexec_fn"] = _with_default_signals(ignored, popen_kwargs.get("preexec_fn"))
        popen = subprocess.Popen(list(argv), **popen_kwargs)
        return self._track(Child(popen.pid, loop, popen))

    async def spawn_reading(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        limit: int = 64 * 1024 * 1024,
        env: Mapping[bytes, bytes] | None = None,
        identity: Identity | None = None,
        pass_fds: Sequence[int] = (),
    ) -> Piped:
        """Start a helper whose stdout and stderr we read as streams (e.g. `rg`)."""
        loop = self._loop or asyncio.get_running_loop()
        child = self.spawn(
            argv,
            cwd=cwd,
            env=env,
            identity=identity,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            pass_fds=pass_fds,
        )
        assert child.popen is not None and child.popen.stdout is not None and child.popen.stderr is not None
        streams = []
        transports = []
        for pipe in (child.popen.stdout, child.popen.stderr):
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            transport, _ = await loop.connect_read_pipe(functools.partial(asyncio.StreamReaderProtocol, reader), pipe)
            streams.append(reader)
            transports.append(transport)
        return Piped(child, streams[0], streams[1], transports)

    async def run(
        self, argv: Sequence[str], *, timeout: float, cwd: str = "/", env: Mapping[bytes, bytes] | None = None
    ) -> Completed:
        """Run a short helper program (`ip`, `fusermount`...) to its end, with its output.

        Raises OSError when it cannot start, TimeoutError (after killing it) when it
        runs longer than `timeout` seconds.
        """
        piped = await self.spawn_reading(argv, cwd=cwd, env=env)
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await asyncio.gather(piped.stdout.read(), piped.stderr.read())
                code = await piped.child.wait()
        finally:
            await piped.close()
        return Completed(code, stdout, stderr)

    def spawn_terminal(
        self, argv: Sequence[str], *, env: Mapping[bytes, bytes], cwd: str, tty: str, identity: Identity | None = None
    ) -> Child:
        """Start `argv` as the leader of a new session whose controlling terminal is the
        pty `tty` (opened in the child after setsid, which makes it the controlling tty)."""
        if identity is not None:
            return self._spawn_terminal_as(argv, env=env, cwd=cwd, tty=tty, identity=identity)
        flags = os.O_RDWR
        actions = [(os.POSIX_SPAWN_OPEN, 0, tty, flags, 0), (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)]
        return self._posix_spawn(argv, env=env, cwd=cwd, actions=actions, setsid=True)

    def _spawn_terminal_as(
        self, argv: Sequence[str], *, env: Mapping[bytes, bytes], cwd: str, tty: str, identity: Identity
    ) -> Child:
        # posix_spawn cannot change credentials, so Popen; it offers no way to take a
        # controlling terminal either, hence the one ioctl in preexec_fn.
        os.chown(tty, identity.uid, identity.gid)
        fd = os.open(tty, os.O_RDWR | os.O_NOCTTY)
        try:
            return self.spawn(
                argv,
                env=env,
                cwd=cwd,
                identity=identity,
                stdin=fd,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
                preexec_fn=_take_controlling_tty,
            )
        finally:
            os.close(fd)

    def spawn_as(
        self,
        identity: Identity,
        argv: Sequence[str],
        *,
        env: Mapping[bytes, bytes],
        cwd: str,
        stdin: int,
        stdout: int,
        stderr: int,
    ) -> Child:
        """spawn_fast's twin for the workload user (Popen: posix_spawn cannot set ids)."""
        return self.spawn(
            argv,
            env=env,
            cwd=cwd,
            identity=identity,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            process_group=0,
            close_fds=True,
        )

    def spawn_fast(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[bytes, bytes],
        cwd: str,
        stdin: int,
        stdout: int,
        stderr: int,
    ) -> Child:
        """Start a child in a new process group with posix_spawn (a third of Popen's cost).

        posix_spawn cannot change directory, so the daemon steps into `cwd` for the
        duration of the call and back (all paths the daemon uses are absolute, so no
        other code can notice). `argv[0]` must be a path. Raises OSError.
        """
        actions = [
            (os.POSIX_SPAWN_DUP2, stdin, 0),
            (os.POSIX_SPAWN_DUP2, stdout, 1),
            (os.POSIX_SPAWN_DUP2, stderr, 2),
        ]
        return self._posix_spawn(argv, env=env, cwd=cwd, actions=actions, setpgroup=0)

    def _posix_spawn(
        self, argv: Sequence[str], *, env: Mapping[bytes, bytes], cwd: str, actions: list, **attributes: Any
    ) -> Child:
        loop = self._loop or asyncio.get_running_loop()
        if cwd == self._home:  # already there (the common case): two syscalls saved
            pid = os.posix_spawn(
                argv[0], list(argv), env, file_actions=actions, setsigdef=_RESET_SIGNALS, setsigmask=(), **attributes
            )
            return self._track(Child(pid, loop))
        os.chdir(cwd)
        try:
            pid = os.posix_spawn(
                argv[0], list(argv), env, file_actions=actions, setsigdef=_RESET_SIGNALS, setsigmask=(), **attributes
            )
        finally:
            os.fchdir(self._home_fd)
        return self._track(Child(pid, loop))

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


def _with_default_signals(signals: Sequence[int], then: Callable[[], None] | None) -> Callable[[], None]:
    def preexec() -> None:  # in the child, before exec
        for sig in signals:
            signal.signal(sig, signal.SIG_DFL)
        if then is not None:
            then()

    return preexec


def _take_controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


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
