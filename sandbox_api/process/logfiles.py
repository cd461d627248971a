"""The log files of new processes: their keys taken from the pool of files created ahead
of time (slots.py), opened for the child, and refused while the log disk is full."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from ..errors import ApiError, InsufficientStorage, Unprocessable, os_error_text
from .logstore import OutputLog
from .slots import SlotPool

log = logging.getLogger("sandbox_api.process")

# Below this much free space on the log disk a new process is refused (507): its output
# could not be written, and it would end `failed` with nothing to show why.
MIN_FREE_LOG_BYTES = 64 * 1024


class LogFiles:
    def __init__(self, logs_dir: Path, processes_dir: Path) -> None:
        self.dir = logs_dir
        self._processes_dir = processes_dir
        self.slots = SlotPool(self._slot_paths)

    def _slot_paths(self, key: str) -> list[str]:
        return OutputLog.paths_to_create(self.dir, key)

    def reuse_empty_slots(self, known: set[str]) -> None:
        """Pre-created files of an earlier run that no process took."""
        suffix = ".stdout.log"
        for path in self.dir.glob("*" + suffix):
            key = path.name[: -len(suffix)]
            if key in known:
                continue
            paths = self._slot_paths(key)
            if all(os.path.exists(p) and os.stat(p).st_size == 0 for p in paths):
                self.slots.add(key)

    def _recreate_dirs(self) -> None:
        """The state dir can be wiped while we run: make its directories again."""
        for directory in (self.dir, self._processes_dir):
            if not directory.is_dir():
                log.warning("%s is missing: creating it again", directory)
                directory.mkdir(parents=True, exist_ok=True)

    def check_space(self) -> None:
        if self.disk_full():
            log.error("refusing a new process: the log disk %s is full", self.dir)
            raise self._no_space()

    def disk_full(self) -> bool:
        try:
            st = os.statvfs(self.dir)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < MIN_FREE_LOG_BYTES

    def take_key(self) -> str:
        try:
            return self.slots.take()
        except OSError as e:
            raise self._error(e, "create") from None

    def open(self, key: str) -> OutputLog:
        """The log files of a new process, opened; the state dir is recreated if it was removed."""
        output = OutputLog(self.dir, key)
        try:
            try:
                output.open()
            except FileNotFoundError:
                self._recreate_dirs()
                output.open()
        except OSError as e:
            raise self._error(e, "open") from None
        return output

    def _error(self, e: OSError, verb: str) -> ApiError:
        if e.errno == errno.ENOSPC:
            return self._no_space()
        return Unprocessable(f"failed to start process: cannot {verb} log files: {os_error_text(e)}")

    def _no_space(self) -> InsufficientStorage:
        return InsufficientStorage(f"failed to start process: no space left on device for its log files in {self.dir}")
