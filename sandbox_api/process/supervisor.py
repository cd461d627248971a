"""Spawns, watches, restarts, stops and kills the processes clients ask for.

Plain Python in and out: no HTTP here. Errors are raised as `sandbox_api.errors`
types carrying the contract's messages.

Each process runs `[SHELL, *SHELL_ARGS, command]` in its own process group, with its
stdout and stderr appended straight to files (see logstore.py), so it outlives the
daemon. Its record is saved on every change, and a restarted daemon adopts the
processes that are still alive.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import json
import logging
import os
import re
import signal
import stat
import string
import time
from functools import partial

from .. import config
from ..config import Settings
from ..errors import (
    ApiError,
    InsufficientStorage,
    Invalid,
    NotFound,
    Unprocessable,
    os_error_text,
)
from ..linux import tree
from ..linux.children import Children
from ..linux.syscalls import set_oom_score_adj
from . import adoption, stdin
from .following import OutputFollowing
from .keepalive import ScaleFile
from .logstore import OutputLog
from .managed import ManagedProcess, ProcessSpec
from .records import (
    COMPLETED,
    END_EXITED,
    END_KILLED,
    END_SIGNALED,
    END_STOPPED,
    END_TIMEOUT,
    END_UNKNOWN,
    FAILED,
    KILLED,
    RUNNING,
    STOPPED,
    ProcessRecord,
    RecordStore,
)
from .slots import SlotPool

log = logging.getLogger("sandbox_api.process")

RESTART_DELAY = 1.0
KEEPALIVE_DEFAULT_TIMEOUT = 600
STARTED_CHECK_DELAY = 0.05
KILL_WAIT = 2.0
# Below this much free space on the log disk a new process is refused (507): its output
# could not be written, and it would end `failed` with nothing to show why.
MIN_FREE_LOG_BYTES = 64 * 1024
_NAME_ALPHABET = string.ascii_lowercase + string.digits
_NAME_TABLE = bytes(ord(_NAME_ALPHABET[b % 36]) for b in range(256))  # a random byte -> its letter
_GO_INT = re.compile(r"^[+-]?\d+$")


class Supervisor:
    def __init__(self, settings: Settings, children: Children) -> None:
        self.settings = settings
        self.children = children
        self.store = RecordStore(settings.processes_dir)
        self.scale = ScaleFile(settings.scale_file)
        self.slots = SlotPool(self._slot_paths)
        self._processes: dict[str, ManagedProcess] = {}  # by key, in start order
        self._by_name: dict[str, list[ManagedProcess]] = {}
        self._by_pid: dict[str, list[ManagedProcess]] = {}
        self._logs_dir = settings.logs_dir
        self._devnull_fd = -1
        self.output = OutputFollowing(settings, self._processes)
        self.closing: asyncio.Future[None] | None = None

    # --- life cycle ---------------------------------------------------------------

    def _slot_paths(self, key: str) -> list[str]:
        return OutputLog.paths_to_create(self._logs_dir, key)

    def _reuse_empty_slots(self, known: set[str]) -> None:
        """Pre-created files of an earlier run that no process took."""
        suffix = ".stdout.log"
        for path in self._logs_dir.glob("*" + suffix):
            key = path.name[: -len(suffix)]
            if key in known:
                continue
            paths = self._slot_paths(key)
            if all(os.path.exists(p) and os.stat(p).st_size == 0 for p in paths):
                self.slots.add(key)

    def _save(self, record: ProcessRecord) -> None:
        self.store.save(record)
        if self.store.lost or self.store.needs_compaction():
            records = [p.record for p in self._processes.values()]
            if record.key not in self._processes:
                records.append(record)
            self.store.compact(records)

    def _recreate_dirs(self) -> None:
        """The state dir can be wiped while we run: make its directories again."""
        for directory in (self._logs_dir, self.settings.processes_dir):
            if not directory.is_dir():
                log.warning("%s is missing: creating it again", directory)
                directory.mkdir(parents=True, exist_ok=True)

    def _check_log_space(self) -> None:
        if self._log_disk_full():
            log.error("refusing a new process: the log disk %s is full", self._logs_dir)
            raise InsufficientStorage(
                f"failed to start process: no space left on device for its log files in {self._logs_dir}"
            )

    def _open_output(self, key: str) -> OutputLog:
        """The log files of a new process, opened; the state dir is recreated if it was removed."""
        output = OutputLog(self._logs_dir, key)
        try:
            try:
                output.open()
            except FileNotFoundError:
                self._recreate_dirs()
                output.open()
        except OSError as e:
            raise self._log_files_error(e, "open") from None
        return output

    def _take_key(self) -> str:
        try:
            return self.slots.take()
        except OSError as e:
            raise self._log_files_error(e, "create") from None

    def _log_files_error(self, e: OSError, verb: str) -> ApiError:
        if e.errno == errno.ENOSPC:
            return InsufficientStorage(
                f"failed to start process: no space left on device for its log files in {self._logs_dir}"
            )
        return Unprocessable(f"failed to start process: cannot {verb} log files: {os_error_text(e)}")

    async def open(self) -> None:
        self.closing = asyncio.get_running_loop().create_future()
        self.store.open()
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        self.scale.reset()
        records = self.store.load_all()
        self._reuse_empty_slots({r.key for r in records})
        self.output.open()
        for record in records:
            self._restore(record)
        if self.store.needs_compaction():
            self.store.compact([p.record for p in self._processes.values()])
        self.slots.refill()  # not awaited: the daemon serves meanwhile
        self._devnull()  # every child's stdin unless asked: held for life, opened now

    async def close(self) -> None:
        """Stop supervising. The processes themselves keep running."""
        if self.closing is not None and not self.closing.done():
            self.closing.set_result(None)
        await self.slots.close()
        await self.output.close()
        tasks = [p.task for p in self._processes.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for proc in self._processes.values():
            for timer in (proc.kill_timer, proc.escalation):
                if timer is not None:
                    timer.cancel()
            stdin.close(proc)
            proc.log.close()
        self.store.close()
        if self._devnull_fd >= 0:
            os.close(self._devnull_fd)
            self._devnull_fd = -1

    # --- lookup -------------------------------------------------------------------

    def list(self) -> builtins.list[ManagedProcess]:
        return list(self._processes.values())

    def find(self, identifier: str) -> ManagedProcess | None:
        """By pid when the identifier reads as an integer, else by name (latest start)."""
        index = self._by_pid if _GO_INT.match(identifier) else self._by_name
        matches = index.get(identifier)
        if not matches:
            return None
        return max(matches, key=lambda p: p.record.started_at)

    def _register(self, proc: ManagedProcess) -> None:
        self._processes[proc.record.key] = proc
        self._by_name.setdefault(proc.record.name, []).append(proc)
        self._by_pid.setdefault(proc.record.pid, []).append(proc)

    def get(self, identifier: str, message: str = "process not found") -> ManagedProcess:
        proc = self.find(identifier)
        if proc is None:
            raise NotFound(message)
        return proc

    # --- start --------------------------------------------------------------------

    def normalize_working_dir(self, working_dir: str) -> str:
        try:
            return config.expand_path(working_dir)
        except ValueError as e:
            raise Invalid(str(e)) from None

    async def start(self, spec: ProcessSpec) -> ManagedProcess:
        if not spec.command:
            raise Invalid("command is required")
        if spec.keep_alive and self.settings.disable_keepalive:
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
        working_dir = self.normalize_working_dir(spec.working_dir)
        name = spec.name or "proc-" + os.urandom(8).translate(_NAME_TABLE).decode()
        if spec.unique_name:
            existing = self.find(name)
            if existing is not None and existing.record.running:
                raise Invalid(f"process with name '{name}' already exists and is running")
        cwd = os.path.join(self.settings.workdir, working_dir) if working_dir else self.settings.workdir
        timeout = spec.timeout
        if spec.keep_alive and timeout is None:
            timeout = KEEPALIVE_DEFAULT_TIMEOUT
        self._check_log_space()
        record = ProcessRecord(
            key=self._take_key(),
            pid="",
            name=name,
            command=spec.command,
            working_dir=working_dir,
            cwd=cwd,
            env=dict(spec.env),
            restart_on_failure=spec.restart_on_failure,
            max_restarts=spec.max_restarts,
            keep_alive=spec.keep_alive,
            timeout=timeout or 0,
            stdin=spec.stdin,
        )
        proc = ManagedProcess(record, self._open_output(record.key))
        try:
            self._spawn_run(proc)
        except Unprocessable:
            proc.log.close()
            self.slots.add(record.key)  # its files are still empty: reuse them
            raise
        record.pid = str(record.os_pid)
        self._register(proc)
        self._save(record)
        if record.keep_alive:
            self.scale.hold()
            proc.holds_keepalive = True
        proc.task = asyncio.create_task(self._supervise(proc))
        return proc

    def _spawn_run(self, proc: ManagedProcess) -> None:
        """Start one run of the command; raise Unprocessable when it cannot start."""
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
            spawn = self.children.spawn_fast if identity is None else partial(self.children.spawn_as, identity)
            child = spawn(
                argv,
                env=env,
                cwd=record.cwd,
                stdin=stdin_read if record.stdin else self._devnull(),
                stdout=out_fd,
                stderr=err_fd,
            )
        except OSError as e:
            if proc.stdin_fd >= 0:
                os.close(proc.stdin_fd)
                proc.stdin_fd = -1
            raise Unprocessable(f"failed to start process: {os_error_text(e, 'fork/exec')}") from None
        finally:
            if stdin_read >= 0:
                os.close(stdin_read)
        proc.child = child
        record.os_pid = child.pid
        record.os_start_ticks = 0
        record.status = RUNNING
        record.started_at = time.time()
        record.completed_at = None
        record.exit_code = 0
        record.end_reason, record.end_signal = "", 0
        # /proc/<pid> of a child that is still exec-ing can block: look a bit later.
        asyncio.get_running_loop().call_later(STARTED_CHECK_DELAY, self._note_started, proc, child.pid)
        self.output.follow(proc)
        self._arm_kill_timer(proc, record.timeout)

    def _note_started(self, proc: ManagedProcess, pid: int) -> None:
        """Raise the child's OOM score and note its start time (to recognise it after
        a daemon restart), unless that run is already over."""
        if proc.child is None or proc.child.pid != pid:
            return
        set_oom_score_adj(pid, 500)
        proc.record.os_start_ticks = adoption.start_ticks(pid)
        if proc.record.os_start_ticks:
            self._save(proc.record)

    def _devnull(self) -> int:
        if self._devnull_fd < 0:
            self._devnull_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return self._devnull_fd

    def _arm_kill_timer(self, proc: ManagedProcess, timeout: float) -> None:
        """keepAlive processes are killed after `timeout` seconds (0 = never)."""
        if proc.kill_timer is not None:
            proc.kill_timer.cancel()
            proc.kill_timer = None
        if proc.record.keep_alive and timeout > 0:
            loop = asyncio.get_running_loop()
            proc.kill_timer = loop.call_later(timeout, self._keepalive_expired, proc)

    def _keepalive_expired(self, proc: ManagedProcess) -> None:
        proc.kill_timer = None
        if proc.record.running:
            log.info("keepAlive timeout: killing process %s", proc.record.name)
            self._signal(proc, signal.SIGKILL)
            self._ended_by_request(proc, KILLED, END_TIMEOUT)

    # --- the life of a process ------------------------------------------------------

    async def _supervise(self, proc: ManagedProcess) -> None:
        record = proc.record
        while True:
            code = await self._run_ended(proc)
            self._end_run(proc, code)
            if not self._should_restart(record, code is not None):
                break
            limit = "unlimited" if record.max_restarts < 0 else str(record.max_restarts)
            proc.log.append_notice(
                f"\n[Process failed with exit code {record.exit_code}. "
                f"Attempting restart {record.restart_count + 1}/{limit}...]\n"
            )
            record.restart_count += 1
            self._save(record)
            proc.restarting = True
            try:
                await asyncio.wait_for(proc.restart_cancelled.wait(), RESTART_DELAY)
            except TimeoutError:
                pass
            proc.restarting = False
            if proc.restart_cancelled.is_set():  # stopped or killed while waiting to restart
                break
            try:
                self._spawn_run(proc)
            except Unprocessable as e:
                proc.log.append_notice(f"\n[Failed to restart process: {e.message}]\n")
                break
            self._save(record)
        self._finalize(proc)

    async def _run_ended(self, proc: ManagedProcess) -> int | None:
        """Wait for the current run to end; its exit code, or None when unknowable."""
        if proc.child is not None:
            return await proc.child.wait()
        return await self._wait_adopted(proc.record.os_pid, proc.record.os_start_ticks)

    def _end_run(self, proc: ManagedProcess, code: int | None) -> None:
        record = proc.record
        self.output.catch_up()  # output events queued before the exit come first
        proc.log.end_run()
        stdin.close(proc)
        proc.child = None
        record.completed_at = time.time()
        _note_end(record, code)
        if code is None:
            proc.log.append_notice("\n[Exit status unknown: the process ended while sandbox-api was not running]\n")
            record.exit_code = -1
            if record.status == RUNNING:
                record.status = FAILED
            return
        record.exit_code = -1 if code < 0 else code
        if code == 0:
            record.status = COMPLETED
        elif record.status not in (STOPPED, KILLED):
            record.status = FAILED
            if self._log_disk_full():
                log.error(
                    "process %s (pid %s) failed with exit code %d while the log disk %s is full: "
                    "its output may be lost",
                    record.name,
                    record.pid,
                    record.exit_code,
                    self._logs_dir,
                )

    def _log_disk_full(self) -> bool:
        try:
            st = os.statvfs(self._logs_dir)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < MIN_FREE_LOG_BYTES

    @staticmethod
    def _should_restart(record: ProcessRecord, exit_known: bool) -> bool:
        if record.status != FAILED or not record.restart_on_failure or not exit_known:
            return False
        return record.max_restarts < 0 or record.restart_count < record.max_restarts

    def _finalize(self, proc: ManagedProcess) -> None:
        record = proc.record
        record.final = True
        if proc.kill_timer is not None:
            proc.kill_timer.cancel()
            proc.kill_timer = None
        self.output.stop(proc)
        proc.log.finish(self.output.file_cap())
        self._release_keepalive(proc)
        self._save(record)
        proc.final.set()

    def _release_keepalive(self, proc: ManagedProcess) -> None:
        if proc.holds_keepalive:
            proc.holds_keepalive = False
            self.scale.release()

    # --- stop, kill, stdin ----------------------------------------------------------

    def _signal(self, proc: ManagedProcess, sig: int) -> set[int]:
        root = proc.record.os_pid if proc.record.running else None
        reached = tree.signal_tree(root, proc.cookie, sig)
        if not reached and root is not None:
            try:
                os.killpg(root, sig)
                reached = {root}
            except OSError:
                pass
        return reached

    def _cancel_restart(self, proc: ManagedProcess, status: str) -> bool:
        """Between two runs there is nothing to signal: just call the restart off."""
        if not proc.restarting:
            return False
        proc.restart_cancelled.set()
        self._ended_by_request(proc, status)
        return True

    def _ended_by_request(self, proc: ManagedProcess, status: str, reason: str = "") -> None:
        """Stopped or killed through the API: that status stays, keepAlive is released."""
        if not proc.final.is_set():  # a run that already ended keeps how it ended
            proc.record.end_reason = reason or (END_STOPPED if status == STOPPED else END_KILLED)
        proc.record.status = status
        proc.record.keep_alive = False
        self._release_keepalive(proc)
        self._save(proc.record)

    def stop(self, identifier: str) -> None:
        proc = self.get(identifier, f"process with Identifier {identifier} not found")
        if self._cancel_restart(proc, STOPPED):
            return
        if not proc.record.running:
            raise NotFound(f"process with Identifier {identifier} is not running")
        proc.log.append_notice("\n[Process is being gracefully terminated]\n")
        if not self._signal(proc, signal.SIGTERM):
            raise NotFound(f"failed to send SIGTERM to process with Identifier {identifier}: no such process")
        self._ended_by_request(proc, STOPPED)
        if self.settings.stop_grace_seconds > 0:
            loop = asyncio.get_running_loop()
            if proc.escalation is not None:
                proc.escalation.cancel()
            proc.escalation = loop.call_later(self.settings.stop_grace_seconds, self._escalate, proc)

    def _escalate(self, proc: ManagedProcess) -> None:
        """A stopped tree still alive after the grace period is killed."""
        proc.escalation = None
        root = proc.record.os_pid if proc.record.running or proc.child is not None else None
        if tree.signal_tree(root, proc.cookie, signal.SIGKILL):
            log.info("process %s ignored SIGTERM: killed", proc.record.name)

    async def kill(self, identifier: str) -> None:
        """SIGKILL the whole tree; returns once its members are gone (so that, for
        instance, their ports are free), or after KILL_WAIT at most."""
        proc = self.get(identifier, f"process with Identifier {identifier} not found")
        if self._cancel_restart(proc, KILLED):
            return
        if proc.record.running:
            proc.log.append_notice("\n[Process is being forcefully killed]\n")
        reached = self._signal(proc, signal.SIGKILL)
        if not reached:
            raise NotFound(f"failed to kill process with Identifier {identifier}: no such process")
        self._ended_by_request(proc, KILLED)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KILL_WAIT
        while any(adoption.start_ticks(pid) for pid in reached) and loop.time() < deadline:
            await asyncio.sleep(0.005)

    def _stdin_target(self, identifier: str) -> ManagedProcess:
        return self.get(identifier, f"process with Identifier {identifier} not found")

    def stdin_ready(self, identifier: str) -> None:
        """Raise unless the process exists and has an open stdin pipe."""
        stdin.check_open(self._stdin_target(identifier), identifier)

    async def write_stdin(self, identifier: str, data: bytes) -> int:
        return await stdin.write(self._stdin_target(identifier), identifier, data)

    def close_stdin(self, identifier: str) -> None:
        stdin.close(self._stdin_target(identifier))

    # --- after a daemon restart -------------------------------------------------------

    def _restore(self, record: ProcessRecord) -> None:
        output = OutputLog(self._logs_dir, record.key)
        output.load(record.final)
        proc = ManagedProcess(record, output)
        self._register(proc)
        if record.final:
            output.mark_finished()
            proc.final.set()
            return
        alive = adoption.same_process(record, proc.cookie)
        try:
            output.open()
        except OSError as e:
            log.warning("logs of process %s unreadable: %s", record.name, e)
        if not alive:
            # It ended while we were away (or between runs): its exit status is lost.
            self._end_run(proc, None)
            self._finalize(proc)
            return
        log.info("adopting process %s (pid %s)", record.name, record.os_pid)
        if record.keep_alive and record.status == RUNNING:
            self.scale.hold()
            proc.holds_keepalive = True
        self.output.follow(proc)
        if record.timeout > 0:
            self._arm_kill_timer(proc, max(0.001, record.started_at + record.timeout - time.time()))
        proc.task = asyncio.create_task(self._supervise(proc))

    async def _wait_adopted(self, pid: int, ticks: int) -> int | None:
        return await adoption.wait_adopted(self.children, pid, ticks)


def _note_end(record: ProcessRecord, code: int | None) -> None:
    """How the run ended: a stop, kill or timeout asked for it (noted when asked) keeps that
    reason; else its own exit, a signal, or unknown when its exit status is lost."""
    if code is not None and code < 0:
        record.end_signal = -code
    if record.end_reason:
        return
    if code is None:
        record.end_reason = END_UNKNOWN
    else:
        record.end_reason = END_SIGNALED if code < 0 else END_EXITED
