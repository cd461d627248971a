"""What the daemon remembers of each process, saved so it survives a daemon restart."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import msgspec

log = logging.getLogger("sandbox_api.records")

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
STOPPED = "stopped"
KILLED = "killed"

# How the last run ended (`endReason`): its own exit, a signal nobody here sent, the keepAlive
# timeout, a stop or kill through the API, or unknowable (it ended while no daemon ran).
END_EXITED = "exited"
END_SIGNALED = "signaled"
END_TIMEOUT = "timeout"
END_STOPPED = "stopped"
END_KILLED = "killed"
END_UNKNOWN = "unknown"


@dataclass
class ProcessRecord:
    key: str  # internal, unique forever: names its files
    pid: str  # what clients see: the first OS pid, stable across restarts
    name: str
    command: str
    working_dir: str  # as requested, normalised ("" = the daemon's cwd)
    cwd: str  # the directory the child actually runs in
    env: dict[str, str] = field(default_factory=dict)  # the request's own variables
    status: str = RUNNING
    started_at: float = 0.0
    completed_at: float | None = None
    exit_code: int = 0
    os_pid: int = 0  # the OS process of the current run
    os_start_ticks: int = 0  # its start time, to recognise it after a daemon restart
    restart_on_failure: bool = False
    max_restarts: int = 0
    restart_count: int = 0
    keep_alive: bool = False
    timeout: int = 0  # keepAlive kill timer, seconds (0 = none)
    stdin: bool = False
    final: bool = False  # no more runs will come (restarts exhausted, stopped, ...)
    # Why the current run ends: a request (stop, kill, timeout) is noted when made, the rest
    # when the run is over; "" while it runs unasked. `end_signal`: the signal that ended it.
    end_reason: str = ""
    end_signal: int = 0

    @property
    def running(self) -> bool:
        return self.status == RUNNING


_FIELD_NAMES = tuple(f.name for f in fields(ProcessRecord))
_COMPACT_MIN_BYTES = 4 * 1024 * 1024


class RecordStore:
    """Every record in one append-only journal, `processes.jsonl`: a line per change.

    Appending one line is a single write, never half-done when the daemon is killed,
    and it creates no file (file creation is the costly part on some disks). The
    last line of a key wins. The journal is rewritten without its stale lines
    (temp file + rename) at start-up and whenever it grows well past its live size.
    """

    FILE = "processes.jsonl"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / self.FILE
        self._fd = -1
        self._bytes = 0
        self._live: dict[str, int] = {}  # key -> size of its latest line
        self._live_bytes = 0
        self.lost = False  # the journal file was removed while open: rewrite every record

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._bytes = os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @staticmethod
    def _line(record: ProcessRecord) -> bytes:
        values = {name: getattr(record, name) for name in _FIELD_NAMES}  # asdict deep-copies: slow
        try:
            return msgspec.json.encode(values) + b"\n"  # a tenth of json.dumps' cost
        except UnicodeEncodeError:  # a lone surrogate (a name that is not UTF-8): json escapes it
            return json.dumps(values, separators=(",", ":")).encode() + b"\n"

    def _check_present(self) -> None:
        """A journal deleted while open (its state dir wiped) would swallow every later
        line: open a new one, and flag that the caller must rewrite every record."""
        try:
            if os.fstat(self._fd).st_nlink > 0:
                return
        except OSError:
            pass
        log.warning("%s was removed: writing a new one", self.path)
        self.close()
        self.open()
        self._bytes, self._live, self._live_bytes = 0, {}, 0
        self.lost = True

    def save(self, record: ProcessRecord) -> None:
        line = self._line(record)
        try:
            self._check_present()
            os.write(self._fd, line)
        except OSError:
            log.exception("could not save process record %s", record.key)
            return
        self._bytes += len(line)
        self._live_bytes += len(line) - self._live.get(record.key, 0)
        self._live[record.key] = len(line)

    def needs_compaction(self) -> bool:
        return self._bytes > max(_COMPACT_MIN_BYTES, 3 * self._live_bytes)

    def compact(self, records: list[ProcessRecord]) -> None:
        """Rewrite the journal with one line per record."""
        tmp = self.path.with_suffix(".tmp")
        lines = [self._line(r) for r in records]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.writelines(lines)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError:
            log.exception("could not compact %s", self.path)
            return
        self.close()
        self.open()
        self.lost = False
        self._live = {r.key: len(line) for r, line in zip(records, lines)}
        self._live_bytes = sum(self._live.values())

    def load_all(self) -> list[ProcessRecord]:
        """Every saved record, oldest first."""
        latest: dict[str, ProcessRecord] = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        known = set(_FIELD_NAMES)
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                values = json.loads(line)
                record = ProcessRecord(**{k: v for k, v in values.items() if k in known})
            except (ValueError, TypeError):
                log.warning("skipping an unreadable line of %s", self.path)
                continue
            latest[record.key] = record
            self._live_bytes += len(line) + 1 - self._live.get(record.key, 0)
            self._live[record.key] = len(line) + 1
        return sorted(latest.values(), key=lambda r: (r.started_at, r.key))
