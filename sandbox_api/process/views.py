"""The JSON shapes of a process (ProcessResponse, ProcessLogs), with every key present.

Output fields are read from the log files: the last 64 KiB per stream for GET, list
and stream results, up to 4 MiB for a completed wait. `logs` is stdout followed by
stderr (not interleaved), as in the original.
"""

from __future__ import annotations

import signal
from email.utils import formatdate
from typing import Any

from ..config import Settings
from .logstore import STDERR, STDOUT, inline_truncation_marker
from .managed import ManagedProcess
from .records import RUNNING, ProcessRecord


def http_date(ts: float | None) -> str:
    return formatdate(ts, usegmt=True) if ts else ""


def process_view(
    proc: ManagedProcess,
    tail_bytes: int,
    *,
    completed_null: bool = False,
    logs_null_when_empty: bool = False,
) -> dict[str, Any]:
    """ProcessResponse: `completed_null` gives `completedAt: null` while running (list);
    `logs_null_when_empty` gives `logs: null` before any output (POST without wait)."""
    record = proc.record
    marker = inline_truncation_marker(proc.record.name or proc.record.pid)
    stdout = proc.log.tail(STDOUT, tail_bytes, marker)
    stderr = proc.log.tail(STDERR, tail_bytes, marker)
    logs: str | None = stdout + stderr
    if logs_null_when_empty and not logs:
        logs = None
    completed: str | None = http_date(record.completed_at) if record.status != RUNNING else ""
    if completed_null and record.status == RUNNING:
        completed = None
    view = {
        "pid": record.pid,
        "name": record.name,
        "command": record.command,
        "status": record.status,
        "startedAt": http_date(record.started_at),
        "completedAt": completed,
        "exitCode": record.exit_code,
        "workingDir": record.working_dir,
        "logs": logs,
        "stdout": stdout,
        "stderr": stderr,
        "restartOnFailure": record.restart_on_failure,
        "maxRestarts": record.max_restarts,
        "restartCount": record.restart_count,
        "keepAlive": record.keep_alive,
        "stdin": record.stdin,
    }
    view.update(end_view(record))
    return view


def end_view(record: ProcessRecord) -> dict[str, Any]:
    """`endReason` (and `endSignal`) once the last run is over; nothing while it runs."""
    if record.completed_at is None or not record.end_reason:
        return {}
    view: dict[str, Any] = {"endReason": record.end_reason}
    if record.end_signal:
        view["endSignal"] = signal_name(record.end_signal)
    return view


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def summary_view(proc: ManagedProcess, settings: Settings, **kwargs: Any) -> dict[str, Any]:
    return process_view(proc, settings.max_inline_log_bytes, **kwargs)


def logs_view(proc: ManagedProcess, settings: Settings) -> dict[str, str]:
    marker = inline_truncation_marker(proc.record.name or proc.record.pid)
    stdout = proc.log.tail(STDOUT, settings.max_logs_response_bytes, marker)
    stderr = proc.log.tail(STDERR, settings.max_logs_response_bytes, marker)
    return {"stdout": stdout, "stderr": stderr, "logs": stdout + stderr}
