"""One persistent shell on a pty, and the protocol that runs a command in it.

The shell is interactive (`bash -i`, `sh -i`...) with job control, on a pty that is its
controlling terminal; it reads its commands from a pipe. So, as in a terminal:
- each command runs in the shell itself (cd, export, functions and aliases persist), and
  each job it starts gets its own process group, made the terminal's foreground group;
- an interrupt is SIGINT to the foreground group (`tcgetpgrp` on the pty): it stops the
  job, not the shell, and an interactive shell then abandons the rest of that command
  line and reads the next one (a non-interactive one would exit);
- stdout and stderr are one stream in the order written, and programs line-buffer.

A command is sent as `eval '<command>' </dev/null` (stdin at EOF: nothing waits for
input), framed by markers carrying a random nonce and written to /dev/tty (so `exec
>file` cannot hide them): a start marker, then on the next line an end marker with `$?`
and `$PWD`. The next line survives an interrupt of the command's line in bash and ash;
dash drops input it had already read, so when the shell is back in the foreground with
no end marker, the end marker is sent again. Before each command the terminal's pending
input is one end-of-file, so a program reading /dev/tty itself (a password prompt) ends too.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import secrets
import signal
import struct
import termios
from collections.abc import Mapping
from dataclasses import dataclass

from ..identity import Identity
from ..linux import tree
from ..linux.children import Children
from ..linux.reaper import Child
from .output import Output

log = logging.getLogger("sandbox_api.sessions")

READ_SIZE = 65536
COLUMNS, ROWS = 200, 50
READY_TIMEOUT = 10.0
INTERRUPT_GRACE = 2.0  # seconds between SIGINT and SIGKILL of the foreground job
SETTLE = 0.3  # the shell back in the foreground this long without an end marker: send it again
KILL_WAIT = 2.0  # after SIGKILL of the job, how long the shell has to report
ENDED_DRAIN = 0.05  # the shell is gone: let its last output through

MARK = b"\x1e"  # ASCII record separator: frames the markers


@dataclass
class Finished:
    exit_code: int | None
    cwd: str | None
    timed_out: bool
    shell_ended: bool


class ShellEnded(Exception):
    """The shell is gone (or never answered); `reason` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def end_line(nonce: str) -> bytes:
    return f'printf \'\\036%sE%d\\036%s\\036%sZ\\036\' {nonce} "$?" "$PWD" {nonce} >/dev/tty\n'.encode()


def _init_line(program: str, nonce: str) -> bytes:
    base = os.path.basename(program)
    quiet = "PS1= PS2= PS4=; "
    if base == "bash":
        quiet += "PS0=; unset PROMPT_COMMAND MAILCHECK HISTFILE; set +H +o history; "
    elif base == "zsh":
        quiet += "RPROMPT=; unsetopt BANG_HIST; "
    return f"{quiet}printf '\\036%sR\\036' {nonce} >/dev/tty\n".encode()


def shell_argv(program: str) -> list[str]:
    base = os.path.basename(program)
    if base == "bash":
        return [program, "--norc", "--noprofile", "--noediting", "-i"]
    if base == "zsh":
        return [program, "-f", "-i"]
    return [program, "-i"]


class Run:
    """One command's markers and output, fed with what the pty gives."""

    def __init__(self, nonce: str, output: Output | None, loop: asyncio.AbstractEventLoop) -> None:
        self.start = MARK + nonce.encode() + b"S" + MARK
        self.ready = MARK + nonce.encode() + b"R" + MARK
        self.end = MARK + nonce.encode() + b"E"
        self.close = MARK + nonce.encode() + b"Z" + MARK
        self.output = output
        self.phase = "ready" if output is None else "start"
        self.buffer = bytearray()
        self.done: asyncio.Future[tuple[int, str]] = loop.create_future()
        self.last_output = loop.time()
        self.dropped = False  # interrupted before it started: the shell dropped the command
        self._loop = loop

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if self.phase == "start":
            # An interrupt that lands before the command starts makes the shell drop the
            # line it read: only the end marker sent again comes (no start marker, no output).
            at, end = self.buffer.find(self.start), self.buffer.find(self.end)
            if end >= 0 and (at < 0 or end < at):
                del self.buffer[: end + len(self.end)]
                self.phase = "trailer"
                self.dropped = True
        if self.phase in ("ready", "start"):
            marker = self.ready if self.phase == "ready" else self.start
            at = self.buffer.find(marker)
            if at < 0:
                del self.buffer[: max(0, len(self.buffer) - len(marker) + 1)]
                return
            del self.buffer[: at + len(marker)]
            if self.phase == "ready":
                self.phase = "done"
                if not self.done.done():
                    self.done.set_result((0, ""))
                return
            self.phase = "output"
        if self.phase == "output":
            at = self.buffer.find(self.end)
            if at < 0:
                # Hold back only what may be the start of the end marker.
                hold = self.buffer.rfind(MARK, max(0, len(self.buffer) - len(self.end) + 1))
                cut = hold if hold >= 0 else len(self.buffer)
                self._emit(self.buffer[:cut])
                del self.buffer[:cut]
                return
            self._emit(self.buffer[:at])
            del self.buffer[: at + len(self.end)]
            self.phase = "trailer"
        if self.phase == "trailer":
            at = self.buffer.find(self.close)
            if at < 0:
                return
            code, _, cwd = bytes(self.buffer[:at]).partition(MARK)
            self.phase = "done"
            self.buffer.clear()
            try:
                status = int(code)
            except ValueError:
                status = -1
            if not self.done.done():
                self.done.set_result((status, os.fsdecode(cwd)))

    def _emit(self, data: bytes | bytearray) -> None:
        if data and self.output is not None:
            self.output.write(bytes(data))
            self.last_output = self._loop.time()


class Shell:
    """A shell process on a pty, reading commands from a pipe."""

    def __init__(self, program: str, child: Child, master: int, writer: asyncio.WriteTransport, cookie: str) -> None:
        self.program = program
        self.cookie = cookie  # NAME=value in the environment of all it starts
        self.child = child
        self.master = master
        self._writer = writer
        self._run: Run | None = None
        self._closed = False
        self.end_reason: str | None = None  # set when the daemon itself ends the shell
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._on_readable)
        self._reading = True

    @property
    def pid(self) -> int:
        return self.child.pid

    @classmethod
    async def start(
        cls,
        children: Children,
        program: str,
        *,
        cwd: str,
        env: Mapping[bytes, bytes],
        identity: Identity | None,
        cookie: str,
    ) -> Shell:
        master, slave = os.openpty()
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            _configure(slave)
            if identity is not None:
                os.fchown(slave, identity.uid, identity.gid)
            child = children.spawn(
                shell_argv(program),
                cwd=cwd,
                env=env,
                identity=identity,
                stdin=read_end,
                stdout=slave,
                stderr=slave,
                close_fds=True,
                start_new_session=True,
                preexec_fn=_take_terminal,
            )
        except BaseException:
            for fd in (master, write_end):
                os.close(fd)
            raise
        finally:
            os.close(slave)
            os.close(read_end)
        os.set_blocking(master, False)
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(write_end, "wb", buffering=0)
        writer, _ = await loop.connect_write_pipe(asyncio.Protocol, pipe)
        shell = cls(program, child, master, writer, cookie)
        nonce = secrets.token_hex(8)
        run = Run(nonce, None, loop)
        shell._run = run
        writer.write(_init_line(program, nonce))
        try:
            await shell._until(run.done, READY_TIMEOUT)
        except ShellEnded:
            shell.close()
            raise
        finally:
            shell._run = None
        if not run.done.done():
            shell.close()
            raise ShellEnded(f"{program} did not answer within {READY_TIMEOUT:g} seconds (is it a POSIX shell?)")
        return shell

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: nothing holds the pty's other side any more
        if not data:
            self._stop_reading()
            return
        if self._run is not None:
            self._run.feed(data)
        # else: a background job writing between commands; read and dropped, as nobody looks

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            asyncio.get_running_loop().remove_reader(self.master)

    async def _until(self, future: asyncio.Future, timeout: float) -> None:
        """Wait for `future` at most `timeout` seconds; ShellEnded if the shell exits first."""
        exit_wait = asyncio.ensure_future(self.child.wait())
        try:
            done, _ = await asyncio.wait({future, exit_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exit_wait.cancel()
        if future in done:
            return
        if self.child.returncode is not None:
            await asyncio.sleep(ENDED_DRAIN)
            self._on_readable_all()
            if future.done():
                return
            raise ShellEnded(describe_exit(self.child.returncode))

    def _on_readable_all(self) -> None:
        for _ in range(64):
            if not self._reading:
                return
            try:
                data = os.read(self.master, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._stop_reading()
                return
            if self._run is not None:
                self._run.feed(data)

    async def run(self, command: str, output: Output, timeout: float | None, idle_timeout: float | None) -> Finished:
        """Run `command`; interrupt it past `timeout` or `idle_timeout` seconds of silence."""
        loop = asyncio.get_running_loop()
        nonce = secrets.token_hex(8)
        run = Run(nonce, output, loop)
        self._run = run
        started = loop.time()
        line = f"printf '\\036%sS\\036' {nonce} >/dev/tty; eval {_quote(command)} </dev/null\n".encode()
        self._end_of_input()
        try:
            self._writer.write(line + end_line(nonce))
            timed_out = False

            def deadline() -> float | None:  # the idle one moves with every output
                ends = [started + timeout] if timeout is not None else []
                if idle_timeout is not None:
                    ends.append(run.last_output + idle_timeout)
                return min(ends) if ends else None

            while not run.done.done():
                end = deadline()
                try:
                    await self._until(run.done, 3600.0 if end is None else max(0.0, end - loop.time()))
                except ShellEnded:
                    return self._ended(run, timed_out)
                end = deadline()
                if not run.done.done() and end is not None and loop.time() >= end:
                    timed_out = True
                    try:
                        await self._interrupt(run, nonce)
                    except ShellEnded:
                        return self._ended(run, timed_out)
                    break
            code, cwd = run.done.result()
            return Finished(130 if run.dropped else code, cwd, timed_out, False)  # `$?` is the previous one's
        finally:
            self._run = None
            output.finish()

    def _end_of_input(self) -> None:
        """One end-of-file (^D) as the terminal's only pending input: a program that reads the
        terminal itself (`sudo` or `ssh` asking for a password) gets EOF, not a wait."""
        try:
            termios.tcflush(self.master, termios.TCOFLUSH)  # on the master: the terminal's unread input
            os.write(self.master, b"\x04")
        except OSError:
            pass

    def _ended(self, run: Run, timed_out: bool) -> Finished:
        if run.done.done():
            code, cwd = run.done.result()
            return Finished(code, cwd, timed_out, False)
        if run.phase == "output":  # what was held back as a possible marker start is output after all
            run._emit(run.buffer)
        return Finished(self.child.returncode, None, timed_out, True)

    async def _interrupt(self, run: Run, nonce: str) -> None:
        """SIGINT to the foreground job; SIGKILL after a grace; if the shell itself is what
        runs (a builtin loop) and it does not stop, the shell is killed (ShellEnded)."""
        loop = asyncio.get_running_loop()
        self._signal_foreground(signal.SIGINT)
        if await self._settle(run, nonce, loop.time() + INTERRUPT_GRACE):
            return
        if self._foreground() != self.pid:
            self._signal_foreground(signal.SIGKILL)
            if await self._settle(run, nonce, loop.time() + KILL_WAIT):
                return
        self.end_reason = "killed after the timeout: the shell itself ran the command and did not stop on SIGINT"
        self.kill()
        await self._until(run.done, KILL_WAIT)
        raise ShellEnded(self.end_reason)

    async def _settle(self, run: Run, nonce: str, deadline: float) -> bool:
        """Wait until `deadline` for the end marker; send it again once the shell has been
        back in the foreground for SETTLE seconds without it."""
        loop = asyncio.get_running_loop()
        back_since: float | None = None
        resent = False
        while loop.time() < deadline:
            await self._until(run.done, 0.05)
            if run.done.done():
                return True
            if self._foreground() == self.pid:
                back_since = back_since or loop.time()
                if not resent and loop.time() - back_since >= SETTLE:
                    self._writer.write(end_line(nonce))
                    resent = True
            else:
                back_since = None
        return run.done.done()

    def _foreground(self) -> int:
        try:
            return os.tcgetpgrp(self.master)
        except OSError:
            return -1

    def _signal_foreground(self, sig: int) -> None:
        group = self._foreground()
        try:
            if group > 0 and group != self.pid:
                os.killpg(group, sig)
            elif sig == signal.SIGINT:
                os.kill(self.pid, sig)  # the shell runs the command itself: interrupt it
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """SIGKILL the shell, every process of its session, and those that left it (setsid)
        but carry its cookie."""
        tree.kill_session(self.pid)
        tree.signal_tree(None, self.cookie, signal.SIGKILL)
        if self.child.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Kill everything and release the pty and the pipe."""
        if self._closed:
            return
        self._closed = True
        self.kill()
        self._stop_reading()
        self._writer.close()
        try:
            os.close(self.master)
        except OSError:
            pass


def describe_exit(code: int | None) -> str:
    if code is None:
        return "the shell is gone"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the shell was killed by {name}"
    return f"the shell exited with code {code}"


def _configure(slave: int) -> None:
    """No echo (nothing types into it) and no output translation ("\\n", not "\\r\\n")."""
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST
    attrs[3] &= ~(termios.ECHO | termios.ECHONL)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))


def _take_terminal() -> None:
    # Runs in the child after setsid: the pty (its stdout) becomes its controlling terminal.
    fcntl.ioctl(1, termios.TIOCSCTTY, 0)
