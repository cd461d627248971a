"""Starting a managed process: the request checked, its record made, and each run of its
command started as `[SHELL, *SHELL_ARGS, command]` in its own process group, with its
stdout and stderr appended straight to its log files and its stdin a pipe or /dev/null."""

from __future__ import annotations

import json
import os
import stat
import string

from .. import config
from ..config import Settings
from ..errors import Invalid, Unprocessable, os_error_text
from ..linux.children import Children
from ..linux.reaper import Child
from .managed import ManagedProcess, ProcessSpec
from .records import ProcessRecord

KEEPALIVE_DEFAULT_TIMEOUT = 600
_NAME_ALPHABET = string.ascii_lowercase + string.digits
_NAME_TABLE = bytes(ord(_NAME_ALPHABET[b % 36]) for b in range(256))  # a random byte -> its letter


def checked_working_dir(spec: ProcessSpec, settings: Settings) -> str:
    """Raise Invalid when `spec` cannot be started; its working directory, normalised."""
    if not spec.command:
        raise Invalid("command is required")
    if spec.keep_alive and settings.disable_keepalive:
        raise Invalid("keepAlive is not available for this sandbox: it is not included in your current plan")
    if spec.timeout is not None and spec.timeout < 0:
        raise Invalid("timeout must be zero (no limit) or a positive number of seconds")
    if "\0" in spec.command or "\0" in spec.working_dir:
        raise Invalid("command and workingDir must not contain a NUL byte")
    for key, value in spec.env.items():
        if not config.valid_variable(key, value):
            raise Invalid(
                f"invalid environment variable {json.dumps(key, ensure_ascii=False)}: a name is not empty and holds no '=', "
                "and neither holds a NUL byte"
            )
    try:
        return config.expand_path(spec.working_dir)
    except ValueError as e:
        raise Invalid(str(e)) from None


def name_for(spec: ProcessSpec) -> str:
    """The name asked for, else a random one."""
    return spec.name or "proc-" + os.urandom(8).translate(_NAME_TABLE).decode()


def new_record(spec: ProcessSpec, settings: Settings, key: str, name: str, working_dir: str) -> ProcessRecord:
    timeout = spec.timeout
    if spec.keep_alive and timeout is None:
        timeout = KEEPALIVE_DEFAULT_TIMEOUT
    return ProcessRecord(
        key=key,
        pid="",
        name=name,
        command=spec.command,
        working_dir=working_dir,
        cwd=os.path.join(settings.workdir, working_dir) if working_dir else settings.workdir,
        env=dict(spec.env),
        restart_on_failure=spec.restart_on_failure,
        max_restarts=spec.max_restarts,
        keep_alive=spec.keep_alive,
        timeout=timeout or 0,
        stdin=spec.stdin,
    )


class Spawner:
    """Starts the runs of managed processes."""

    def __init__(self, settings: Settings, children: Children) -> None:
        self.settings = settings
        self.children = children
        self._devnull_fd = -1

    def devnull(self) -> int:
        """Every child's stdin unless it asked for a pipe: opened once, held for life."""
        if self._devnull_fd < 0:
            self._devnull_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return self._devnull_fd

    def close(self) -> None:
        if self._devnull_fd >= 0:
            os.close(self._devnull_fd)
            self._devnull_fd = -1

    async def spawn(self, proc: ManagedProcess) -> Child:
        """Start one run of the command (its stdin pipe in `proc.stdin_fd` when asked);
        raise Unprocessable when it cannot start."""
        record = proc.record
        shown_dir = record.working_dir or record.cwd
        try:
            st = os.stat(record.cwd)
        except FileNotFoundError:
            raise Unprocessable(
                f"failed to start process: could not execute command '{record.command}' "
                f"because folder '{shown_dir}' does not exist"
            ) from None
        except OSError as e:
            raise Unprocessable(
                f"failed to start process: could not access working directory '{shown_dir}': {os_error_text(e)}"
            ) from None
        if not stat.S_ISDIR(st.st_mode):
            raise Unprocessable(
                f"failed to start process: could not execute command '{record.command}' "
                f"because '{shown_dir}' is not a directory"
            )
        argv = [self.settings.shell_path, *self.settings.shell_args, record.command]
        identity = self.settings.identity
        env = config.child_environment({**record.env, config.PROCESS_COOKIE: record.key}, identity=identity)
        out_fd, err_fd = proc.log.child_fds()
        stdin_read = -1
        try:
            if record.stdin:
                stdin_read, proc.stdin_fd = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(proc.stdin_fd, False)
            stdin = stdin_read if record.stdin else self.devnull()
            if identity is not None:
                return self.children.spawn_as(
                    identity, argv, env=env, cwd=record.cwd, stdin=stdin, stdout=out_fd, stderr=err_fd
                )
            return await self.children.spawn_fast(
                argv, env=env, cwd=record.cwd, stdin=stdin, stdout=out_fd, stderr=err_fd
            )
        except OSError as e:
            if proc.stdin_fd >= 0:
                os.close(proc.stdin_fd)
                proc.stdin_fd = -1
            raise Unprocessable(f"failed to start process: {os_error_text(e, 'fork/exec')}") from None
        finally:
            if stdin_read >= 0:
                os.close(stdin_read)
