"""Terminal sessions: a shell on a pty, kept alive between connections.

A session is keyed by its id. Connecting to a live id reattaches: the last 100 KiB of
output are replayed first. Several clients may share a session. A session without
clients is reaped once its shell is gone or after 10 idle minutes; closing one kills
every process of the shell's session.

Output is decoded incrementally, so a multibyte character split between two reads of
the pty is never garbled.
"""

from __future__ import annotations

import asyncio
import codecs
import errno
import fcntl
import logging
import os
import struct
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import config
from ..linux import tree
from ..linux.children import Children
from ..linux.reaper import Child

log = logging.getLogger("sandbox_api.terminal")

REPLAY_BYTES = 100 * 1024
# Input waiting for the pty: past this, the socket stops being read until the shell
# catches up (a 1 GiB paste into a program that reads nothing holds 1 MiB, not 1 GiB).
INPUT_HIGH_WATER = 1024 * 1024
IDLE_SECONDS = 600.0
REAP_INTERVAL = 30.0
SHELLS = ("/bin/zsh", "/bin/bash", "/bin/sh", "/bin/ash")
RESET = "\x1b[0m"

Listener = Callable[[str | None], None]  # output text, or None when the shell is gone


def pick_shell(requested: str | None) -> str:
    if requested and os.access(requested, os.X_OK):
        return requested
    shell = config.get_variable("SHELL") or ""
    if shell and os.access(shell, os.X_OK):
        return shell
    for candidate in SHELLS:
        if os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("no shell found (tried $SHELL, " + ", ".join(SHELLS) + ")")


def set_size(fd: int, cols: int, rows: int) -> None:
    if cols > 0 and rows > 0:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@dataclass
class Session:
    id: str
    master: int
    child: Child
    replay: bytearray = field(default_factory=bytearray)
    listeners: set[Listener] = field(default_factory=set)
    last_activity: float = field(default_factory=time.monotonic)
    alive: bool = True
    shell_watcher: asyncio.Task[None] | None = None  # held: the loop keeps only weak references to tasks
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )
    _pending_input: bytearray = field(default_factory=bytearray)
    _input_room: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._input_room.set()

    async def input_room(self) -> None:
        """Returns once the input not yet taken by the pty is under INPUT_HIGH_WATER."""
        await self._input_room.wait()

    async def exit_status(self, timeout: float) -> int | None:
        """The shell's exit status (`-signal` when a signal ended it), or None when it is
        not known within `timeout` (the pty can close before the shell is reaped)."""
        try:
            return await asyncio.wait_for(self.child.wait(), timeout)
        except TimeoutError:
            return None

    def replay_text(self) -> str:
        return RESET + bytes(self.replay).decode("utf-8", "replace")

    def _remember(self, data: bytes) -> None:
        self.replay += data
        excess = len(self.replay) - REPLAY_BYTES
        if excess > 0:
            # Cut at a line start when one is near, not inside an escape sequence.
            newline = self.replay.find(b"\n", excess, excess + 256)
            del self.replay[: newline + 1 if newline >= 0 else excess]

    def on_readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: no process holds the pty any more
        if not data:
            self.shell_gone()
            return
        self.last_activity = time.monotonic()
        self._remember(data)
        text = self._decoder.decode(data)
        if text:
            for listener in list(self.listeners):
                listener(text)

    def write(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if not self.alive:
            return
        self._pending_input += data
        self._flush_input()

    def _flush_input(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending_input:
            try:
                written = os.write(self.master, self._pending_input)
            except BlockingIOError:
                loop.add_writer(self.master, self._writable)
                if len(self._pending_input) > INPUT_HIGH_WATER:
                    self._input_room.clear()
                return
            except OSError:
                self._pending_input.clear()
                break
            del self._pending_input[:written]
        loop.remove_writer(self.master)
        self._input_room.set()

    def _writable(self) -> None:
        self._flush_input()

    def resize(self, cols: int, rows: int) -> None:
        if self.alive:
            try:
                set_size(self.master, cols, rows)
            except OSError:
                pass

    def shell_gone(self) -> None:
        if not self.alive:
            return
        self.alive = False
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.master)
        loop.remove_writer(self.master)
        self._pending_input.clear()
        self._input_room.set()  # nobody will take it: a waiting client goes on (and learns the end)
        for listener in list(self.listeners):
            listener(None)

    def close(self) -> None:
        self.shell_gone()
        if self.shell_watcher is not None:
            self.shell_watcher.cancel()
        tree.kill_session(self.child.pid)
        try:
            os.close(self.master)
        except OSError:
            pass


class Terminals:
    def __init__(self, settings: config.Settings, children: Children) -> None:
        self.settings = settings
        self.children = children
        self._sessions: dict[str, Session] = {}
        self._reaper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_loop())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        for session in list(self._sessions.values()):
            session.close()
        self._sessions.clear()

    def attach(
        self, session_id: str, cols: int, rows: int, shell: str | None, working_dir: str | None, listener: Listener
    ) -> Session:
        """The live session `session_id` (resized), or a new one; `listener` gets its output."""
        session = self._sessions.get(session_id)
        if session is not None and not session.alive:
            session.close()
            session = None
        if session is None:
            session = self._open(session_id, cols, rows, shell, working_dir)
            self._sessions[session_id] = session
        else:
            session.resize(cols, rows)
        session.listeners.add(listener)
        session.last_activity = time.monotonic()
        return session

    def detach(self, session: Session, listener: Listener) -> None:
        session.listeners.discard(listener)
        session.last_activity = time.monotonic()

    def _open(self, session_id: str, cols: int, rows: int, shell: str | None, working_dir: str | None) -> Session:
        program = pick_shell(shell)
        cwd = working_dir or self.settings.workdir
        if not os.path.isdir(cwd):
            raise FileNotFoundError(errno.ENOENT, f"working directory {cwd} does not exist")
        master, slave = os.openpty()
        try:
            set_size(master, cols, rows)
            identity = self.settings.identity
            env = config.child_environment(identity=identity)
            env.setdefault(b"TERM", b"xterm-256color")
            child = self.children.spawn_terminal([program], env=env, cwd=cwd, tty=os.ttyname(slave), identity=identity)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        session = Session(session_id, master, child)
        loop = asyncio.get_running_loop()
        loop.add_reader(master, session.on_readable)

        async def watch_shell() -> None:
            await child.wait()
            # Let the last output through before telling the clients.
            await asyncio.sleep(0.05)
            session.on_readable() if session.alive else None
            session.shell_gone()

        session.shell_watcher = loop.create_task(watch_shell())
        log.info("terminal session %s: %s in %s (pid %d)", session_id, program, cwd, child.pid)
        return session

    def reap(self) -> int:
        """Close sessions without clients whose shell is gone or that sat idle too long."""
        now = time.monotonic()
        closed = 0
        for session_id, session in list(self._sessions.items()):
            if session.listeners:
                continue
            if not session.alive or now - session.last_activity > IDLE_SECONDS:
                session.close()
                del self._sessions[session_id]
                closed += 1
        return closed

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            self.reap()

    @property
    def sessions(self) -> dict[str, Session]:
        return dict(self._sessions)
