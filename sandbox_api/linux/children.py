"""Every child the daemon starts.

All subprocesses of the daemon are started here, so one place knows which pids are
ours to wait for; reaper.py reaps them, and every other child of the daemon.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import signal
import subprocess
import termios
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..identity import Identity
from .reaper import Child, Reaper
from .spawner import SPAWNER

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


class Children(Reaper):
    """Starts children, and reaps every child of this process (Reaper)."""

    def __init__(self) -> None:
        super().__init__()
        self._home_fd = -1
        self._home = ""

    def install(self) -> None:
        """Become subreaper and start reaping. Call from the event loop's thread."""
        super().install()
        # Held for life (posix_spawn steps out of it and back): opened now, so the fd
        # count of an idle daemon is the count after any number of processes.
        self._home_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._home = os.getcwd()

    def close(self) -> None:
        if self._loop is not None:
            SPAWNER.release(self._loop)
        super().close()
        if self._home_fd >= 0:
            os.close(self._home_fd)
            self._home_fd = -1

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

    async def spawn_fast(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[bytes, bytes],
        cwd: str,
        stdin: int,
        stdout: int,
        stderr: int,
    ) -> Child:
        """Start a child in a new process group with posix_spawn (a third of Popen's cost),
        on the spawner thread (spawner.py): the loop serves on while the child execs.

        `argv[0]` must be a path. The fds must stay open until this returns. Raises OSError.
        """
        loop = self._loop or asyncio.get_running_loop()
        if SPAWNER.claim(loop):
            pid = await SPAWNER.spawn(
                argv,
                [name + b"=" + value for name, value in env.items()],
                ((stdin, 0), (stdout, 1), (stderr, 2)),
                cwd,  # always: the main thread may be inside _posix_spawn's chdir at this moment
                setsid=False,
                setpgroup=0,
                sigdef=_RESET_SIGNALS,
            )
            return self._track(Child(pid, loop))
        # Another event loop of this process owns the spawner thread: spawn here.
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


def _with_default_signals(signals: Sequence[int], then: Callable[[], None] | None) -> Callable[[], None]:
    def preexec() -> None:  # in the child, before exec
        for sig in signals:
            signal.signal(sig, signal.SIG_DFL)
        if then is not None:
            then()

    return preexec


def _take_controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
