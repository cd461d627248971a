"""Spawns, watches, restarts, stops and kills the processes clients ask for.

Plain Python in and out: no HTTP here. Errors are raised as `sandbox_api.errors`
types carrying the contract's messages.

Each process runs in its own process group (spawning.py), with its stdout and stderr
appended straight to files (logfiles.py, logstore.py), so it outlives the daemon. Its
record is saved on every change, and a restarted daemon adopts the processes that are
still alive (adoption.py). Stops and kills reach the whole tree (signals.py).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import re
import signal
import time
from collections import Counter

from ..config import Settings
from ..errors import Invalid, NotFound, Unprocessable
from ..linux.children import Children
from ..linux.syscalls import set_oom_score_adj
from . import adoption, signals, spawning, stdin
from .following import OutputFollowing
from .keepalive import ScaleFile
from .logfiles import LogFiles
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

log = logging.getLogger("sandbox_api.process")

RESTART_DELAY = 1.0
STARTED_CHECK_DELAY = 0.05
_GO_INT = re.compile(r"^[+-]?\d+$")


class _RunCalledOff(Exception):
    """A restart was stopped or killed while its child was starting (that child is killed)."""


class Supervisor:
    def __init__(self, settings: Settings, children: Children) -> None:
        self.settings = settings
        self.children = children
        self.store = RecordStore(settings.processes_dir)
        self.scale = ScaleFile(settings.scale_file)
        self.logfiles = LogFiles(settings.logs_dir, settings.processes_dir)
        self.spawner = spawning.Spawner(settings, children)
        self._processes: dict[str, ManagedProcess] = {}  # by key, in start order
        self._by_name: dict[str, list[ManagedProcess]] = {}
        self._by_pid: dict[str, list[ManagedProcess]] = {}
        self._starting: Counter[str] = Counter()  # names whose first run is exec-ing
        self.output = OutputFollowing(settings, self._processes)
        self.closing: asyncio.Future[None] | None = None

    # --- life cycle ---------------------------------------------------------------

    def _save(self, record: ProcessRecord) -> None:
        self.store.save(record)
        if self.store.lost or self.store.needs_compaction():
            records = [p.record for p in self._processes.values()]
            if record.key not in self._processes:
                records.append(record)
            self.store.compact(records)

    async def open(self) -> None:
        self.closing = asyncio.get_running_loop().create_future()
        self.store.open()
        self.logfiles.dir.mkdir(parents=True, exist_ok=True)
        self.scale.reset()
        records = self.store.load_all()
        self.logfiles.reuse_empty_slots({r.key for r in records})
        self.output.open()
        for record in records:
            self._restore(record)
        if self.store.needs_compaction():
            self.store.compact([p.record for p in self._processes.values()])
        self.logfiles.slots.refill()  # not awaited: the daemon serves meanwhile
        self.spawner.devnull()  # held for life: opened now

    async def close(self) -> None:
        """Stop supervising. The processes themselves keep running."""
        if self.closing is not None and not self.closing.done():
            self.closing.set_result(None)
        await self.logfiles.slots.close()
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
        self.spawner.close()

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

    async def start(self, spec: ProcessSpec) -> ManagedProcess:
        working_dir = spawning.checked_working_dir(spec, self.settings)
        name = spawning.name_for(spec)
        if spec.unique_name:
            existing = self.find(name)
            if (existing is not None and existing.record.running) or self._starting[name]:
                raise Invalid(f"process with name '{name}' already exists and is running")
        self.logfiles.check_space()
        record = spawning.new_record(spec, self.settings, self.logfiles.take_key(), name, working_dir)
        proc = ManagedProcess(record, self.logfiles.open(record.key))
        self._starting[name] += 1
        try:
            await self._spawn_run(proc)
        except Unprocessable:
            proc.log.close()
            self.logfiles.slots.add(record.key)  # its files are still empty: reuse them
            raise
        finally:
            self._starting[name] -= 1
            if not self._starting[name]:
                del self._starting[name]
        record.pid = str(record.os_pid)
        self._register(proc)
        self._save(record)
        if record.keep_alive:
            self.scale.hold()
            proc.holds_keepalive = True
        proc.task = asyncio.create_task(self._supervise(proc))
        return proc

    async def _spawn_run(self, proc: ManagedProcess) -> None:
        """Start one run of the command; raise Unprocessable when it cannot start."""
        child = await self.spawner.spawn(proc)
        if proc.restart_cancelled.is_set():  # a restart stopped or killed while it was exec-ing
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            raise _RunCalledOff
        record = proc.record
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
            signals.signal_tree(proc, signal.SIGKILL)
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
            try:
                if proc.restart_cancelled.is_set():  # stopped or killed while waiting to restart
                    break
                await self._spawn_run(proc)  # still `restarting` while it execs: a stop calls it off
            except Unprocessable as e:
                proc.log.append_notice(f"\n[Failed to restart process: {e.message}]\n")
                break
            except _RunCalledOff:
                break
            finally:
                proc.restarting = False
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
            if self.logfiles.disk_full():
                log.error(
                    "process %s (pid %s) failed with exit code %d while the log disk %s is full: "
                    "its output may be lost",
                    record.name,
                    record.pid,
                    record.exit_code,
                    self.logfiles.dir,
                )

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
        if not signals.signal_tree(proc, signal.SIGTERM):
            raise NotFound(f"failed to send SIGTERM to process with Identifier {identifier}: no such process")
        self._ended_by_request(proc, STOPPED)
        if self.settings.stop_grace_seconds > 0:
            loop = asyncio.get_running_loop()
            if proc.escalation is not None:
                proc.escalation.cancel()
            proc.escalation = loop.call_later(self.settings.stop_grace_seconds, signals.escalate, proc)

    async def kill(self, identifier: str) -> None:
        """SIGKILL the whole tree; returns once its members are gone (so that, for
        instance, their ports are free), or after signals.KILL_WAIT at most."""
        proc = self.get(identifier, f"process with Identifier {identifier} not found")
        if self._cancel_restart(proc, KILLED):
            return
        if proc.record.running:
            proc.log.append_notice("\n[Process is being forcefully killed]\n")
        reached = signals.signal_tree(proc, signal.SIGKILL)
        if not reached:
            raise NotFound(f"failed to kill process with Identifier {identifier}: no such process")
        self._ended_by_request(proc, KILLED)
        await signals.wait_gone(reached)

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
        output = OutputLog(self.logfiles.dir, record.key)
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
