"""Retry-safe requests: the first answer to each `Idempotency-Key`, kept for a window.

A client that did not get an answer (a timeout, a dropped connection, a daemon restart)
sends the same request again with the same key; the daemon answers with what the first
request was answered instead of running or writing twice. What is kept, per key:

- the request's *scope* (method, path and query) and *fingerprint* (sha256 of the scope,
  the content type and the body, hashed as the body streams by: nothing is buffered for
  it; a multipart body is hashed without its boundary, which a client draws anew for
  each attempt);
- the answer: its status, content type and bytes. Small answers live in memory and in
  the journal; larger ones in a file of their own; the files together are capped, and
  an answer pushed out by that cap (or over it alone) is no longer replayed, but its key
  still refuses to run the request again (409 with the process id, if any).

Every change is journaled (journal.py), so keys survive a daemon restart; expired keys
leave the journal at start-up and when it is rewritten. A key is kept for `window`
seconds from its first request, and at most `max_keys` keys are kept (the oldest finished
ones make room).

No aiohttp here: `http/idempotency.py` adapts this to requests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ApiError, Conflict, Invalid, Unprocessable
from .journal import DONE, DROPPED, INTERRUPTED, PENDING, STREAMED, Entry, Journal

log = logging.getLogger("sandbox_api.idempotency")

KIB = 1024
MIB = 1024 * KIB

KEY_MAX_CHARS = 255
INLINE_ANSWER_BYTES = 4 * KIB  # answers up to this stay in memory and in the journal
ANSWER_DISK_BYTES = 64 * MIB  # all larger answers together, in files


class TooManyPending(ApiError):
    status = 429


@dataclass(frozen=True)
class Replay:
    """What to answer a retry with: `body` inline, or the bytes of `path`."""

    status: int
    content_type: str
    body: bytes | None
    path: Path | None
    size: int


class BodyDigest:
    """The fingerprint of a request, fed with its body as it is read. `boundary` (a
    multipart body's `--boundary`) is left out of the hash wherever it occurs."""

    def __init__(self, scope: str, content_type: str, boundary: bytes = b"") -> None:
        self._hash = hashlib.sha256()
        self._hash.update(f"{scope}\0{content_type}\0".encode("utf-8", "surrogateescape"))
        self._boundary = boundary
        self._carry = b""

    def feed(self, data: bytes) -> None:
        if not self._boundary:
            self._hash.update(data)
            return
        data = self._carry + data if self._carry else data
        start = 0
        while (found := data.find(self._boundary, start)) >= 0:
            self._hash.update(data[start:found])
            start = found + len(self._boundary)
        # The last bytes may be the start of a boundary the next chunk completes.
        keep = max(start, len(data) - len(self._boundary) + 1)
        self._hash.update(data[start:keep])
        self._carry = data[keep:]

    def hexdigest(self) -> str:
        if self._carry:
            self._hash.update(self._carry)
            self._carry = b""
        return self._hash.hexdigest()


def check_key(key: str) -> str:
    """A key is 1 to 255 visible ASCII characters (a UUID is the usual choice)."""
    if not key or len(key) > KEY_MAX_CHARS or not all(33 <= ord(c) <= 126 for c in key):
        raise Invalid(f"invalid Idempotency-Key: use 1 to {KEY_MAX_CHARS} visible ASCII characters (a UUID, say)")
    return key


class Idempotency:
    ANSWERS = "idempotency"

    def __init__(self, directory: Path, window: float, max_keys: int) -> None:
        self.directory = directory
        self.journal = Journal(directory)
        self.answers_dir = directory / self.ANSWERS
        self.window = window
        self.max_keys = max(1, max_keys)
        self._entries: dict[str, Entry] = {}  # oldest first
        self._answer_bytes = 0  # of the answer files
        self._counter = 0

    @property
    def enabled(self) -> bool:
        return self.window > 0

    # --- life ---------------------------------------------------------------------------

    def open(self) -> None:
        if not self.enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for entry in self.journal.load():
            if entry.created + self.window <= now:
                continue
            if entry.state == PENDING:
                if not entry.pid:
                    continue  # nothing was started that a second run would repeat: forget it
                entry.state = INTERRUPTED
            self._entries[entry.key] = entry
        while len(self._entries) > self.max_keys:
            self._entries.pop(next(iter(self._entries)))
        self._answer_bytes = sum(e.size for e in self._entries.values() if e.file)
        self._compact()
        self._remove_orphan_files()

    def close(self) -> None:
        self.journal.close()

    # --- the requests' side ---------------------------------------------------------------

    def lookup(self, key: str, scope: str) -> Entry | None:
        """The live entry of `key`: None when there is none (the caller claims it). A
        key of another method or path is 422; a first request still in progress (or
        interrupted by a restart) is 409 at once, whatever the body."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.created + self.window <= time.time():
            self._forget(entry)
            return None
        if entry.scope != scope:
            raise Unprocessable(
                f"Idempotency-Key {key!r} was first used for {entry.scope}, not for {scope}: "
                "use a new key for a different request"
            )
        if entry.state == PENDING:
            raise _conflict(
                "a request with this Idempotency-Key is still in progress; retry once it has answered", entry
            )
        if entry.state == INTERRUPTED:
            raise _conflict(
                "the request with this Idempotency-Key was interrupted (by a daemon restart or an internal error) "
                "before it answered; its process is not started again",
                entry,
            )
        return entry

    def replay(self, entry: Entry, fingerprint: str) -> Replay:
        """The first answer, for a retry whose body hashed to `fingerprint`."""
        if fingerprint != entry.fingerprint:
            raise Unprocessable(
                f"Idempotency-Key {entry.key!r} was first used with another request body: "
                "use a new key for a different request"
            )
        if entry.state == STREAMED:
            raise _conflict(
                "the request with this Idempotency-Key was answered with a stream, which cannot be replayed; "
                "it is not run again",
                entry,
            )
        if entry.state == DROPPED:
            raise _conflict(
                f"the answer to this Idempotency-Key ({entry.size} bytes) is too large to be kept; "
                "the request is not run again",
                entry,
            )
        path = self.answers_dir / entry.file if entry.file else None
        return Replay(entry.status, entry.content_type, entry.body, path, entry.size)

    def claim(self, key: str, scope: str) -> Entry:
        """A new pending entry for a first request (after `lookup` found none)."""
        if len(self._entries) >= self.max_keys:
            self._make_room()
        entry = Entry(key, scope, time.time())
        self._entries[key] = entry  # not journaled yet: a claim that started nothing is forgotten by a restart
        return entry

    def note_process(self, entry: Entry, pid: str) -> None:
        """The pending request started process `pid`: if the daemon stops before it
        answers, a retry is refused (409 with this pid), never run again."""
        if self._entries.get(entry.key) is entry and entry.state == PENDING:
            entry.pid = pid
            self._save(entry)

    def release(self, entry: Entry) -> None:
        """The first request failed without effect (or beyond repair): forget the key,
        so a retry runs again."""
        if self._entries.get(entry.key) is entry:
            self._forget(entry)

    def abandon(self, entry: Entry) -> None:
        """The first request failed without an answer (an internal error, a shutdown): a
        process it started is never started again; otherwise the key is released."""
        if self._entries.get(entry.key) is not entry:
            return
        if entry.pid:
            entry.state = INTERRUPTED
            self._save(entry)
        else:
            self._forget(entry)

    def finish(self, entry: Entry, fingerprint: str, status: int, content_type: str, body: bytes) -> None:
        if self._entries.get(entry.key) is not entry:
            return  # forgotten meanwhile (its state dir wiped, evicted...)
        entry.fingerprint, entry.status, entry.content_type, entry.size = fingerprint, status, content_type, len(body)
        entry.state = DONE
        if len(body) <= INLINE_ANSWER_BYTES:
            entry.body = body
        elif len(body) > ANSWER_DISK_BYTES:
            entry.state = DROPPED
        else:
            self._store_file(entry, body)
        self._save(entry)

    def finish_stream(self, entry: Entry, fingerprint: str) -> None:
        if self._entries.get(entry.key) is entry:
            entry.fingerprint, entry.state = fingerprint, STREAMED
            self._save(entry)

    # --- keeping ------------------------------------------------------------------------

    def _make_room(self) -> None:
        now = time.time()
        for entry in list(self._entries.values()):
            if entry.created + self.window <= now:
                self._forget(entry)
        if len(self._entries) < self.max_keys:
            return
        for entry in self._entries.values():  # the oldest finished one
            if entry.state != PENDING:
                self._forget(entry)
                return
        raise TooManyPending(f"too many requests with an Idempotency-Key in progress (at most {self.max_keys})")

    def _forget(self, entry: Entry) -> None:
        self._entries.pop(entry.key, None)
        self._drop_file(entry)
        if entry.saved and self.journal.forget(entry.key):
            self._compact()

    def _store_file(self, entry: Entry, body: bytes) -> None:
        # The oldest answer files make room; their keys stay, refusing a second run.
        for other in list(self._entries.values()):
            if self._answer_bytes + len(body) <= ANSWER_DISK_BYTES:
                break
            if other.file:
                self._drop_file(other)
                other.state = DROPPED
                self._save(other)
        self._counter += 1
        name = f"{hashlib.sha256(entry.key.encode()).hexdigest()[:32]}-{os.getpid()}-{self._counter}.answer"
        try:
            self.answers_dir.mkdir(parents=True, exist_ok=True)
            with open(self.answers_dir / name, "wb") as f:
                f.write(body)
        except OSError as e:
            log.warning("cannot keep the answer to an Idempotency-Key: %s", e)
            entry.state = DROPPED
            return
        entry.file = name
        self._answer_bytes += len(body)

    def _drop_file(self, entry: Entry) -> None:
        if not entry.file:
            return
        try:
            os.unlink(self.answers_dir / entry.file)
        except OSError:
            pass
        self._answer_bytes -= entry.size
        entry.file = ""

    def _remove_orphan_files(self) -> None:
        kept = {e.file for e in self._entries.values() if e.file}
        try:
            names = os.listdir(self.answers_dir)
        except OSError:
            return
        for name in names:
            if name not in kept:
                try:
                    os.unlink(self.answers_dir / name)
                except OSError:
                    pass

    # --- the journal ----------------------------------------------------------------------

    def _save(self, entry: Entry) -> None:
        if self.journal.save(entry):
            self._compact()

    def _compact(self) -> None:
        """Forget the expired keys, then rewrite the journal with one line per live key."""
        now = time.time()
        for entry in [e for e in self._entries.values() if e.created + self.window <= now]:
            self._entries.pop(entry.key, None)
            self._drop_file(entry)
        self.journal.rewrite(list(self._entries.values()))


def _conflict(message: str, entry: Entry) -> Conflict:
    extra = {"pid": entry.pid} if entry.pid else {}
    return Conflict(message, headers={"Retry-After": "1"} if entry.state == PENDING else None, **extra)
