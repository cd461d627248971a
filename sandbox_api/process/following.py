"""Keeping each process's output index current: woken by inotify when a log file grows
(polled without inotify), and the log files held to their size caps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..config import Settings
from ..linux.inotify import Inotify
from .logstore import STDERR, STDOUT
from .managed import ManagedProcess

log = logging.getLogger("sandbox_api.process")

POLL_INTERVAL = 0.05  # log tailing when inotify is unavailable
CAP_SWEEP_INTERVAL = 5.0
EVENTS_PER_CAP_CHECK = 256


class OutputFollowing:
    def __init__(self, settings: Settings, processes: dict[str, ManagedProcess]) -> None:
        self.settings = settings
        self._processes = processes  # the supervisor's, by key
        self._inotify: Inotify | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def open(self) -> None:
        self._inotify = Inotify.open(on_overflow=self.scan_running)
        if self._inotify is None:
            log.warning("inotify unavailable: following process output by polling")
            self._tasks.append(asyncio.create_task(self._poll_running()))
        self._tasks.append(asyncio.create_task(self._sweep_caps()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def follow(self, proc: ManagedProcess) -> None:
        if self._inotify is not None and not proc.watches:
            for stream in (STDOUT, STDERR):
                wd = self._inotify.add(proc.log.paths[stream], self._on_output(proc, stream))
                if wd is not None:
                    proc.watches.append(wd)
        proc.log.scan_all()

    def stop(self, proc: ManagedProcess) -> None:
        if self._inotify is not None:
            for wd in proc.watches:
                self._inotify.remove(wd)
        proc.watches.clear()

    def catch_up(self) -> None:
        """Take the output events queued now (before a run's end is handled)."""
        if self._inotify is not None:
            self._inotify.pump()

    def _on_output(self, proc: ManagedProcess, stream: int) -> Callable[[], None]:
        def handler() -> None:
            proc.log.scan(stream)
            proc.events_since_cap += 1
            if proc.events_since_cap >= EVENTS_PER_CAP_CHECK:
                proc.events_since_cap = 0
                proc.log.enforce_cap(self.file_cap())

        return handler

    def file_cap(self) -> int:
        """Bytes a log file may keep: SANDBOX_MAX_LOG_FILE_BYTES, less when the total budget
        shared by every process requires it (never under 256 KiB)."""
        max_file = self.settings.max_log_file_bytes
        if max_file <= 0:
            return 0
        budget = self.settings.max_log_bytes_total
        if budget <= 0:
            return max_file
        count = max(1, len(self._processes))
        return min(max_file, max(256 * 1024, budget // (3 * count)))

    async def _sweep_caps(self) -> None:
        while True:
            await asyncio.sleep(CAP_SWEEP_INTERVAL)
            cap = self.file_cap()
            for proc in list(self._processes.values()):
                try:
                    proc.log.enforce_cap(cap)
                except OSError:
                    log.exception("capping the logs of %s failed", proc.record.name)

    def scan_running(self) -> None:
        for proc in self._processes.values():
            if not proc.final.is_set():
                proc.log.scan_all()

    async def _poll_running(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            self.scan_running()
