"""What the daemon remembers of each process, saved so it survives a daemon restart."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

log = logging.getLogger("sandbox_api.records")

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
STOPPED = "stopped"
KILLED = "killed"
STATUSES = (RUNNING, COMPLETED, FAILED, STOPPED, KILLED)


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

    @property
    def running(self) -> bool:
        return self.status == RUNNING


class RecordStore:
    """One JSON file per process in a directory, each written atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def ensure(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def save(self, record: ProcessRecord) -> None:
        path = self.directory / f"{record.key}.json"
        tmp = path.with_suffix(".json.tmp")
        data = json.dumps(asdict(record), separators=(",", ":"))
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            log.exception("could not save process record %s", record.key)

    def load_all(self) -> list[ProcessRecord]:
        records: list[ProcessRecord] = []
        if not self.directory.is_dir():
            return records
        known = {f.name for f in fields(ProcessRecord)}
        for path in self.directory.glob("*.json"):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                records.append(ProcessRecord(**{k: v for k, v in raw.items() if k in known}))
            except (OSError, ValueError, TypeError):
                log.warning("skipping unreadable process record %s", path)
        for tmp in self.directory.glob("*.json.tmp"):
            tmp.unlink(missing_ok=True)
        records.sort(key=lambda r: (r.started_at, r.key))
        return records
