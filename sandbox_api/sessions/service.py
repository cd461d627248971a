"""Shell sessions: create, list, run commands in, restart, delete; reaped when idle.

Plain values in and out, typed errors (`sandbox_api.errors`); no HTTP here. Each session
is one shell (shell.py); the outputs of its last few commands are kept (output.py) so
that a long one can be read back by offset.

Sessions do not survive the daemon. Each shell carries `SANDBOX_API_SESSION=<tag>:<id>`
in its environment (the tag names this state dir) and each live session has a directory
under `<state>/sessions`. A daemon that ends cleanly kills every session and removes that
directory; one that was killed leaves it behind, and the next daemon on the same state
dir then kills whatever still carries its tag (shells normally die with the daemon
already: their pty hangs up).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
import shutil
import signal
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config
from ..config import Settings
from ..errors import ApiError, Conflict, Invalid, NotFound, os_error_text
from ..linux.children import Children
from . import DIRECTORY
from .output import Output
from .shell import Finished, Shell, ShellEnded, describe_exit
from .wire import DEFAULT_READ_BYTES, DEFAULT_TIMEOUT, MAX_READ_BYTES, MAX_TIMEOUT, OUTPUTS_KEPT

log = logging.getLogger("sandbox_api.sessions")

COOKIE = "SANDBOX_API_SESSION"
SHELLS = ("bash", "sh", "dash", "ash", "zsh", "ksh", "mksh")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REAPED_REMEMBERED = 64
MAX_COMMAND_BYTES = 1024 * 1024
# Set for every command: output is read by a program, not a person at a terminal.
QUIET_ENVIRONMENT = {"TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat", "MANPAGER": "cat"}

STARTING, IDLE, RUNNING, ENDED = "starting", "idle", "running", "ended"


class TooManySessions(ApiError):
    status = 429


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Session:
    id: str
    program: str
    working_dir: str
    env: dict[str, str]
    created_at: str = field(default_factory=_now)
    last_used_at: str = field(default_factory=_now)
    last_used: float = field(default_factory=time.monotonic)
    cwd: str = ""
    shell: Shell | None = None
    state: str = STARTING
    end_reason: str = ""
    exec_count: int = 0
    outputs: OrderedDict[int, Output] = field(default_factory=OrderedDict)
    watcher: asyncio.Task[None] | None = None  # held: the loop keeps only weak references to tasks

    def touch(self) -> None:
        self.last_used = time.monotonic()
        self.last_used_at = _now()

    def view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "shell": self.program,
            "cwd": self.cwd or self.working_dir,
            "workingDir": self.working_dir,
            "pid": self.shell.pid if self.shell is not None and self.state != ENDED else None,
            "createdAt": self.created_at,
            "lastUsedAt": self.last_used_at,
            "execCount": self.exec_count,
        }
        if self.state == ENDED:
            view["endReason"] = self.end_reason
        return view


class Sessions:
    def __init__(self, settings: Settings, children: Children) -> None:
        self.settings = settings
        self.children = children
        self.directory = settings.state_dir / DIRECTORY
        # The state dir's tag, then this daemon's: leftovers carry the first and not the second.
        self._tag = hashlib.sha256(os.fsencode(settings.state_dir)).hexdigest()[:12]
        self._life = secrets.token_hex(4)
        self._sessions: dict[str, Session] = {}
        self._reaped: OrderedDict[str, None] = OrderedDict()  # the last ids reaped, to say so when reused
        self._reaper: asyncio.Task[None] | None = None
        self._cleanup: asyncio.Task[None] | None = None

    # --- life of the service -------------------------------------------------------------------

    def open(self) -> None:
        """Start reaping; kill what a daemon that was killed left behind (off the loop)."""
        loop = asyncio.get_running_loop()
        self._reaper = loop.create_task(self._reap_loop())
        if self.directory.exists():
            trash = self.directory.with_name(f"sessions.old-{self._life}")
            try:
                self.directory.rename(trash)
            except OSError as e:
                log.warning("cannot set aside %s: %s", self.directory, e)
                return
            self._cleanup = loop.create_task(asyncio.to_thread(self._remove_leftovers, trash))

    async def close(self) -> None:
        for task in (self._reaper, self._cleanup):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for session in list(self._sessions.values()):
            self._end(session, "the daemon shut down")
        self._sessions.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _remove_leftovers(self, trash: Path) -> None:
        needle, ours = f"{COOKIE}={self._tag}:".encode(), f"{COOKIE}={self._tag}:{self._life}:".encode()
        killed = 0
        for name in os.listdir("/proc"):
            if name.isdigit() and _environment_has(int(name), needle) and not _environment_has(int(name), ours):
                try:
                    os.kill(int(name), signal.SIGKILL)
                    killed += 1
                except (ProcessLookupError, PermissionError):
                    pass
        if killed:
            log.info("killed %d processes of shell sessions left by a previous daemon", killed)
        shutil.rmtree(trash, ignore_errors=True)

    async def _reap_loop(self) -> None:
        idle = self.settings.session_idle_seconds
        while True:
            await asyncio.sleep(max(0.5, min(30.0, idle / 4)))
            self.reap()

    def reap(self) -> int:
        """Delete the sessions unused for `session_idle_seconds` (not one running a command)."""
        limit = time.monotonic() - self.settings.session_idle_seconds
        reaped = 0
        for session in list(self._sessions.values()):
            if session.state in (IDLE, ENDED) and session.last_used < limit:
                log.info("session %s reaped after %g idle seconds", session.id, self.settings.session_idle_seconds)
                self._remove(session, "reaped: unused too long")
                self._reaped[session.id] = None
                while len(self._reaped) > REAPED_REMEMBERED:
                    self._reaped.popitem(last=False)
                reaped += 1
        return reaped

    # --- the calls -------------------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        return [s.view() for s in self._sessions.values()]

    def get(self, session_id: str) -> dict[str, Any]:
        return self._find(session_id).view()

    async def create(
        self,
        name: str = "",
        working_dir: str = "",
        env: dict[str, str] | None = None,
        shell: str = "",
    ) -> dict[str, Any]:
        if name and not NAME.fullmatch(name):
            raise Invalid(
                f"invalid session name {name!r}: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
                "or digit"
            )
        if name in self._sessions:
            raise Conflict(f"a session named {name} already exists")
        env = dict(env or {})
        for key, value in env.items():
            if not config.valid_variable(key, value):
                raise Invalid(f"invalid environment variable {key!r}: a name without '=' and no NUL byte")
        program = self._program(shell)
        directory = self._working_dir(working_dir)
        limit = self.settings.session_max
        if len(self._sessions) >= limit:
            raise TooManySessions(
                f"too many sessions: {len(self._sessions)} exist and the limit is {limit} (SANDBOX_SESSION_MAX); "
                "delete one first",
                limit=limit,
            )
        session_id = name or f"session-{secrets.token_hex(4)}"
        session = Session(session_id, program, directory, env)
        self._sessions[session_id] = session  # held now: concurrent creations count against the limit
        try:
            await self._start(session)
        except BaseException:
            self._remove(session, "could not start")
            raise
        return session.view()

    async def ensure(self, session_id: str) -> str:
        """The session `session_id` (MCP's default one), created with defaults if missing;
        a note when it replaces one that was reaped (its state is gone)."""
        if session_id in self._sessions:
            return ""
        await self.create(name=session_id)
        if session_id in self._reaped:
            del self._reaped[session_id]
            idle = self.settings.session_idle_seconds
            return f"a new shell: the previous one was deleted after {idle:g} idle seconds, with its state"
        return ""

    async def delete(self, session_id: str) -> None:
        self._remove(self._find(session_id), "deleted")

    async def restart(self, session_id: str) -> dict[str, Any]:
        session = self._find(session_id)
        if session.state == STARTING:
            raise Conflict(f"session {session_id} is starting")
        self._end(session, "restarted")
        session.state = STARTING
        session.end_reason = ""
        session.cwd = ""
        session.touch()
        try:
            await self._start(session)
        except ApiError as e:
            session.state, session.end_reason = ENDED, f"could not restart: {e.message}"
            raise
        return session.view()

    async def exec(
        self, session_id: str, command: str, timeout: float | None = None, idle_timeout: float | None = None
    ) -> dict[str, Any]:
        if not command:
            raise Invalid("command is required")
        if "\0" in command:
            raise Invalid("command holds a NUL byte: no shell can take it")
        if len(command.encode()) > MAX_COMMAND_BYTES:
            raise Invalid(f"command is over {MAX_COMMAND_BYTES // 1024} KiB: write it to a file and run the file")
        timeout = _seconds("timeout", DEFAULT_TIMEOUT if timeout is None else timeout)
        idle_timeout = _seconds("idleTimeout", idle_timeout)
        session = self._find(session_id)
        if session.state == ENDED:
            raise Conflict(
                f"session {session_id} has ended ({session.end_reason}): restart it or delete it",
                endReason=session.end_reason,
            )
        if session.state != IDLE or session.shell is None:
            raise Conflict(f"session {session_id} is {session.state}: one command at a time")
        shell = session.shell
        session.state = RUNNING
        session.exec_count += 1
        exec_id = session.exec_count
        session.touch()
        output = Output(
            exec_id,
            self.directory / session.id / f"{exec_id}.out",
            self.settings.session_inline_bytes,
            self.settings.session_max_output_bytes,
        )
        self._keep(session, output)
        # A task of its own: if this request is cancelled, the command still runs to its
        # end or its timeout, and the session's state follows it.
        task = asyncio.ensure_future(shell.run(command, output, timeout, idle_timeout))
        task.add_done_callback(lambda done: self._after_run(session, shell, done))
        finished = await asyncio.shield(task)
        result: dict[str, Any] = {
            "sessionId": session.id,
            "execId": exec_id,
            "output": output.text(),
            "exitCode": finished.exit_code,
            "timedOut": finished.timed_out,
            "cwd": session.cwd or session.working_dir,
            "outputBytes": output.total,
            "truncated": output.truncated,
            "sessionEnded": finished.shell_ended,
        }
        if output.truncated:
            result.update(omittedFrom=output.head_end, omittedTo=output.tail_offset)
        if finished.shell_ended:
            code = finished.exit_code
            result["exitCode"] = 128 - code if code is not None and code < 0 else code
            result["endReason"] = session.end_reason or shell.end_reason or describe_exit(shell.child.returncode)
        return result

    def _after_run(self, session: Session, shell: Shell, task: asyncio.Future[Finished]) -> None:
        session.touch()
        if session.shell is not shell:  # restarted meanwhile
            return
        finished = None if task.cancelled() or task.exception() is not None else task.result()
        if finished is not None and finished.cwd is not None:
            session.cwd = finished.cwd
        if finished is None or finished.shell_ended:
            if session.state != ENDED:
                self._end(session, shell.end_reason or describe_exit(shell.child.returncode))
        elif session.state == RUNNING:
            session.state = IDLE

    def read_output(self, session_id: str, exec_id: int, offset: int = 0, max_bytes: int | None = None) -> dict:
        session = self._find(session_id)
        max_bytes = DEFAULT_READ_BYTES if max_bytes is None else max_bytes
        if not 0 < max_bytes <= MAX_READ_BYTES:
            raise Invalid(f"maxBytes must be from 1 to {MAX_READ_BYTES}, got {max_bytes}")
        output = session.outputs.get(exec_id)
        if output is None:
            raise NotFound(
                f"output {exec_id} of session {session_id} is not kept: only the last {OUTPUTS_KEPT} commands' are"
            )
        data, next_offset = output.read(offset, max_bytes)
        running = session.state == RUNNING and exec_id == session.exec_count
        return {
            "sessionId": session.id,
            "execId": exec_id,
            "offset": offset,
            "nextOffset": next_offset,
            "data": data.decode("utf-8", "replace"),
            "outputBytes": output.total,
            "storedBytes": output.stored if output.spilled else output.total,
            "complete": not running,
            "eof": not running and next_offset >= output.total,
        }

    # --- inside ----------------------------------------------------------------------------------

    def _find(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise NotFound(f"session {session_id} not found")
        return session

    def _program(self, shell: str) -> str:
        if not shell:
            return config.find_program("bash") or "/bin/sh"
        if os.path.basename(shell) not in SHELLS:
            raise Invalid(f"invalid shell {shell!r}: one of {', '.join(SHELLS)} (a name or a path)")
        path = config.resolve_command(shell)
        if not (os.sep in path and os.path.isfile(path) and os.access(path, os.X_OK)):
            raise Invalid(f"shell {shell} is not installed")
        return path

    def _working_dir(self, value: str) -> str:
        try:
            path = config.expand_path(value) if value else self.settings.workdir
        except ValueError as e:
            raise Invalid(f"invalid workingDir {value!r}: {e}") from None
        path = os.path.normpath(os.path.join(self.settings.workdir, path))
        if "\0" in path or not os.path.isdir(path):
            raise Invalid(f"working directory {value or path} does not exist or is not a directory")
        return path

    async def _start(self, session: Session) -> None:
        identity = self.settings.identity
        cookie = f"{self._tag}:{self._life}:{session.id}"
        extra = {**QUIET_ENVIRONMENT, **session.env, COOKIE: cookie}
        env = config.child_environment(extra, identity=identity)
        (self.directory / session.id).mkdir(parents=True, exist_ok=True)
        try:
            shell = await Shell.start(
                self.children,
                session.program,
                cwd=session.working_dir,
                env=env,
                identity=identity,
                cookie=f"{COOKIE}={cookie}",
            )
        except ShellEnded as e:
            raise Invalid(f"shell {session.program} could not start: {e.reason}") from None
        except OSError as e:
            raise Invalid(f"shell {session.program} could not start: {os_error_text(e)}") from None
        if session.id not in self._sessions:  # deleted while it started
            shell.close()
            raise NotFound(f"session {session.id} was deleted while it started")
        session.shell = shell
        session.state = IDLE
        session.cwd = session.working_dir
        session.watcher = asyncio.get_running_loop().create_task(self._watch(session, shell))
        log.info("session %s: %s in %s (pid %d)", session.id, session.program, session.working_dir, shell.pid)

    async def _watch(self, session: Session, shell: Shell) -> None:
        """An idle shell that dies (killed from outside) ends its session at once."""
        await shell.child.wait()
        if session.shell is shell and session.state == IDLE:
            self._end(session, shell.end_reason or describe_exit(shell.child.returncode))

    def _keep(self, session: Session, output: Output) -> None:
        session.outputs[output.exec_id] = output
        while len(session.outputs) > OUTPUTS_KEPT:
            _, old = session.outputs.popitem(last=False)
            old.discard()

    def _end(self, session: Session, reason: str) -> None:
        """The shell is gone or must go: kill what it started, keep the session as ended."""
        shell = session.shell
        if shell is not None:
            if shell.end_reason is None:
                shell.end_reason = reason if shell.child.returncode is None else describe_exit(shell.child.returncode)
            session.end_reason = shell.end_reason
            shell.close()
        else:
            session.end_reason = reason
        session.state = ENDED

    def _remove(self, session: Session, reason: str) -> None:
        self._end(session, reason)
        for output in session.outputs.values():
            output.discard()
        session.outputs.clear()
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        shutil.rmtree(self.directory / session.id, ignore_errors=True)


def _seconds(name: str, value: float | None) -> float | None:
    """A timeout as given: None or 0 for none, else positive seconds."""
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT:
        raise Invalid(f"{name} must be a number of seconds from 0 (none) to {MAX_TIMEOUT:g}, got {value!r}")
    return float(value)


def _environment_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data.startswith(needle) or (b"\0" + needle) in data
