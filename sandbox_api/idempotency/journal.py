"""The journal of Idempotency-Keys, `idempotency.jsonl` in the state dir: every change is a
line appended (the last line of a key wins), so keys survive a daemon restart; it is
rewritten with one line per live key at start-up and when it grows well past its live
size."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..filesystem.atomic import write_atomic

log = logging.getLogger("sandbox_api.idempotency")

_COMPACT_MIN_BYTES = 1 * 1024 * 1024

PENDING = "pending"  # the first request is being served (by this daemon)
DONE = "done"  # its answer is kept
STREAMED = "streamed"  # it was answered with a stream, which cannot be replayed
DROPPED = "dropped"  # its answer is no longer kept (over the disk cap)
INTERRUPTED = "interrupted"  # it started a process, then stopped (or the daemon did) without an answer
GONE = "gone"  # journal only: the key was forgotten


@dataclass
class Entry:
    key: str
    scope: str  # "METHOD /path?query" of the first request
    created: float  # wall-clock time of the first request: the window counts from it
    state: str = PENDING
    fingerprint: str = ""
    status: int = 0
    content_type: str = ""
    body: bytes | None = None  # the answer, when it is kept inline
    file: str = ""  # the answer's file name, when it is kept in a file
    size: int = 0  # the answer's length
    pid: str = ""  # the process a POST /process started
    saved: bool = False  # has a line in the journal


class Journal:
    FILE = "idempotency.jsonl"

    def __init__(self, directory: Path) -> None:
        self.path = directory / self.FILE
        self._fd = -1
        self._bytes = 0
        self._live_bytes = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def save(self, entry: Entry) -> bool:
        """Append the entry's state; True when the journal should be rewritten (`rewrite`)."""
        entry.saved = True
        return self._append(_values(entry))

    def forget(self, key: str) -> bool:
        """Append that `key` is gone; True when the journal should be rewritten."""
        return self._append({"k": key, "st": GONE})

    def _append(self, values: dict[str, Any]) -> bool:
        if self._fd < 0:
            self._reopen()  # the journal is made on first use: a daemon never given a key has none
            if self._fd < 0:
                return False
        line = json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogateescape")
        try:
            os.write(self._fd, line + b"\n")
        except OSError:
            log.exception("could not journal an Idempotency-Key")
            return False
        self._bytes += len(line) + 1
        return self._bytes > max(_COMPACT_MIN_BYTES, 3 * self._live_bytes)

    def load(self) -> Iterator[Entry]:
        latest: dict[str, dict[str, Any]] = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as e:
            log.warning("cannot read %s: %s", self.path, e)
            return
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                values = json.loads(line)
                key = str(values["k"])
            except (ValueError, TypeError, KeyError):
                log.warning("skipping an unreadable line of %s", self.path)
                continue
            latest.pop(key, None)  # re-inserted: the order is that of the latest change
            if values.get("st") != GONE:
                latest[key] = values
        for values in sorted(latest.values(), key=lambda v: float(v.get("t", 0))):
            try:
                yield _entry(values)
            except (ValueError, TypeError, KeyError):
                log.warning("skipping an unreadable entry of %s", self.path)

    def rewrite(self, entries: Collection[Entry]) -> None:
        """The journal with one line per entry (atomically); none: no journal at all."""
        if not entries:  # nothing to keep: no journal (it is made again on first use)
            self.close()
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                log.exception("could not remove %s", self.path)
            self._bytes = self._live_bytes = 0
            return
        lines = [json.dumps(_values(e), separators=(",", ":"), ensure_ascii=False) for e in entries]
        data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
        try:
            write_atomic(str(self.path), data, 0o600)  # whole or not at all, no temp file left
        except OSError:
            log.exception("could not compact %s", self.path)
            if self._fd < 0:
                self._reopen()
            return
        self.close()
        self._reopen()
        self._bytes = self._live_bytes = len(data)

    def _reopen(self) -> None:
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._bytes = os.fstat(self._fd).st_size
        except OSError as e:
            log.warning("cannot open %s: keys will not survive a restart: %s", self.path, e)


def _values(entry: Entry) -> dict[str, Any]:
    values: dict[str, Any] = {"k": entry.key, "sc": entry.scope, "t": entry.created, "st": entry.state}
    if entry.fingerprint:
        values["f"] = entry.fingerprint
    if entry.pid:
        values["pid"] = entry.pid
    if entry.state in (DONE, DROPPED):
        values.update(s=entry.status, ct=entry.content_type, n=entry.size)
        if entry.file:
            values["file"] = entry.file
        elif entry.body is not None:
            try:
                values["b"] = entry.body.decode("utf-8")
            except UnicodeDecodeError:
                values["b64"] = base64.b64encode(entry.body).decode()
    return values


def _entry(values: dict[str, Any]) -> Entry:
    body: bytes | None = None
    if "b" in values:
        body = str(values["b"]).encode("utf-8")
    elif "b64" in values:
        body = base64.b64decode(values["b64"])
    return Entry(
        key=str(values["k"]),
        scope=str(values["sc"]),
        created=float(values["t"]),
        state=str(values["st"]),
        fingerprint=str(values.get("f", "")),
        status=int(values.get("s", 0)),
        content_type=str(values.get("ct", "")),
        body=body,
        file=str(values.get("file", "")),
        size=int(values.get("n", 0)),
        pid=str(values.get("pid", "")),
        saved=True,
    )
