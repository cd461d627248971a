"""S3-style multipart uploads: initiate, upload parts (any order, in parallel), complete.

A session is a directory under the state dir: `session.json` (destination, mode, start
time), written once, and one file per part named `part-<N>.<md5>`. The part's etag and
size live in its name and its stat, so parallel parts never rewrite shared metadata,
and sessions survive a daemon restart as they are. A part is staged under a temporary
name while its MD5 is computed, then renamed into place (replacing an earlier upload
of the same number). Completion checks every listed etag, concatenates the listed parts
into the destination atomically (see atomic.py), and removes the session. Sessions
idle for longer than the configured TTL are removed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Internal, Invalid, NotFound, from_os_error
from ..identity import Identity, call_as
from .atomic import AtomicFile, NotRegularFile
from .copying import copy_data
from .entries import rfc3339_nano
from .pipeline import write_all

log = logging.getLogger("sandbox_api.uploads")

MAX_PART_NUMBER = 10_000
SWEEP_INTERVAL = 600.0


@dataclass(frozen=True)
class Part:
    number: int
    etag: str
    size: int
    uploaded_ns: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "partNumber": self.number,
            "etag": self.etag,
            "size": self.size,
            "uploadedAt": rfc3339_nano(self.uploaded_ns),
        }


class Uploads:
    def __init__(self, directory: Path, ttl_seconds: float, identity: Identity | None = None) -> None:
        self.directory = directory
        self.ttl = ttl_seconds
        self.identity = identity  # owns the final file; the staged parts stay the daemon's
        self._sweeper: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(self.expire)
        await asyncio.to_thread(self.remove_staged_leftovers)
        if self.ttl > 0:
            self._sweeper = asyncio.create_task(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    # --- sessions ------------------------------------------------------------------

    def _session_dir(self, upload_id: str) -> Path:
        if not upload_id or "/" in upload_id or upload_id.startswith("."):
            raise NotFound(f"upload not found: {upload_id}")
        return self.directory / upload_id

    def _session(self, upload_id: str) -> dict[str, Any]:
        try:
            return json.loads((self._session_dir(upload_id) / "session.json").read_text())
        except (OSError, ValueError):
            raise NotFound(f"upload not found: {upload_id}") from None

    async def initiate(self, destination: str, mode: int) -> dict[str, str]:
        upload_id = str(uuid.uuid4())
        session = {"uploadId": upload_id, "path": destination, "permissions": mode, "initiatedAt": time.time_ns()}

        def create() -> None:
            directory = self.directory / upload_id
            self.directory.mkdir(parents=True, exist_ok=True)  # the state dir may have been wiped
            directory.mkdir(mode=0o700)
            (directory / "session.json").write_text(json.dumps(session))

        try:
            await asyncio.to_thread(create)
        except OSError as e:
            raise from_os_error(e, "failed to initiate upload: ", cls=Internal) from None
        return {"uploadId": upload_id, "path": destination}

    def _parts(self, directory: Path) -> dict[int, Part]:
        parts: dict[int, Part] = {}
        for entry in os.scandir(directory):
            if not entry.name.startswith("part-") or entry.name.endswith(".tmp"):
                continue
            try:
                number_text, etag = entry.name[5:].split(".", 1)
                st = entry.stat()
            except (ValueError, OSError):
                continue
            parts[int(number_text)] = Part(int(number_text), etag, st.st_size, st.st_mtime_ns)
        return parts

    async def list_parts(self, upload_id: str) -> dict[str, Any]:
        directory = self._session_dir(upload_id)
        await asyncio.to_thread(self._session, upload_id)
        parts = await asyncio.to_thread(self._parts, directory)
        return {"uploadId": upload_id, "parts": [parts[n].to_dict() for n in sorted(parts)]}

    async def list_sessions(self) -> dict[str, Any]:
        def collect() -> list[dict[str, Any]]:
            sessions: list[dict[str, Any]] = []
            try:
                entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
            except FileNotFoundError:  # removed with the state dir: no session left
                return sessions
            for entry in entries:
                try:
                    session = json.loads((Path(entry.path) / "session.json").read_text())
                    parts = self._parts(Path(entry.path))
                except (OSError, ValueError):
                    continue
                sessions.append(
                    {
                        "uploadId": session["uploadId"],
                        "path": session["path"],
                        "permissions": session["permissions"],
                        "initiatedAt": rfc3339_nano(session["initiatedAt"]),
                        "parts": {str(n): parts[n].to_dict() for n in sorted(parts)},
                    }
                )
            return sessions

        return {"uploads": await asyncio.to_thread(collect)}

    async def abort(self, upload_id: str) -> None:
        directory = self._session_dir(upload_id)
        await asyncio.to_thread(self._session, upload_id)
        await asyncio.to_thread(shutil.rmtree, directory, True)

    # --- parts ---------------------------------------------------------------------

    def check_part_number(self, part_number: int) -> None:
        if not 1 <= part_number <= MAX_PART_NUMBER:
            raise Invalid(f"part number must be between 1 and {MAX_PART_NUMBER}")

    async def part_writer(self, upload_id: str, part_number: int) -> PartWriter:
        self.check_part_number(part_number)
        directory = self._session_dir(upload_id)
        await asyncio.to_thread(self._session, upload_id)
        writer = PartWriter(directory, part_number)
        try:
            await asyncio.to_thread(writer.open)
        except OSError as e:
            raise from_os_error(e, "failed to upload part: ", cls=Internal) from None
        return writer

    # --- completion ----------------------------------------------------------------

    async def complete(self, upload_id: str, listed: list[tuple[int, str]]) -> str:
        if not listed:
            raise Invalid("at least one part is required")
        seen: set[int] = set()
        for number, _ in listed:
            if number in seen:  # it would be written twice
                raise Invalid(f"failed to complete upload: part {number} is listed more than once")
            seen.add(number)
        directory = self._session_dir(upload_id)
        session = await asyncio.to_thread(self._session, upload_id)
        parts = await asyncio.to_thread(self._parts, directory)
        for number, etag in listed:
            part = parts.get(number)
            if part is None:
                raise Invalid(f"failed to complete upload: part {number} not found")
            if part.etag != etag.strip('"'):
                raise Invalid(f"failed to complete upload: etag mismatch for part {number}")
        ordered = sorted(listed, key=lambda item: item[0])
        destination = session["path"]

        def assemble() -> None:
            out = AtomicFile(destination, int(session["permissions"]))
            try:
                call_as(self.identity, out.open)
                for number, _ in ordered:
                    with open(directory / f"part-{number}.{parts[number].etag}", "rb") as src:
                        copy_data(src.fileno(), out.fd)
                call_as(self.identity, out.commit)
            except BaseException:
                out.abort()
                raise

        try:
            await asyncio.to_thread(assemble)
        except (IsADirectoryError, NotRegularFile) as e:
            # The destination is a directory, device, FIFO or socket: not ours to replace.
            raise from_os_error(e, "failed to complete upload: ", op="open") from None
        except OSError as e:
            raise from_os_error(e, "failed to complete upload: failed to create final file: ", cls=Internal) from None
        await asyncio.to_thread(shutil.rmtree, directory, True)
        return destination

    # --- expiry --------------------------------------------------------------------

    def expire(self) -> int:
        """Remove sessions idle for longer than the TTL; how many went."""
        if self.ttl <= 0:
            return 0
        removed = 0
        cutoff = time.time() - self.ttl
        if not self.directory.is_dir():
            return 0
        for entry in os.scandir(self.directory):
            try:
                latest = max([entry.stat().st_mtime] + [e.stat().st_mtime for e in os.scandir(entry.path)])
            except OSError:
                continue
            if latest < cutoff:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        return removed

    def remove_staged_leftovers(self) -> None:
        """Parts being written when an earlier daemon was killed: no upload is in
        flight before we serve, so every staged temp file is debris (maybe large)."""
        for entry in os.scandir(self.directory):
            try:
                staged = [
                    e.path for e in os.scandir(entry.path) if e.name.startswith("part-") and e.name.endswith(".tmp")
                ]
            except OSError:
                continue
            for path in staged:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(SWEEP_INTERVAL, self.ttl))
            try:
                removed = await asyncio.to_thread(self.expire)
            except OSError:
                log.exception("expiring upload sessions failed")
                continue
            if removed:
                log.info("expired %d abandoned upload session(s)", removed)


class PartWriter:
    """Stages one part: written in a thread, hashed as it goes, renamed at the end."""

    def __init__(self, directory: Path, number: int) -> None:
        self.directory = directory
        self.number = number
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._temp = directory / f"part-{number}.{uuid.uuid4().hex}.tmp"
        self._fd = -1

    def open(self) -> None:
        self._fd = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)

    def write_all(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self._md5.update(piece)
        self.size += write_all(self._fd, pieces)

    def finish(self) -> Part:
        etag = self._md5.hexdigest()
        os.close(self._fd)
        self._fd = -1
        final = self.directory / f"part-{self.number}.{etag}"
        os.replace(self._temp, final)
        for entry in os.scandir(self.directory):
            if (
                entry.name.startswith(f"part-{self.number}.")
                and not entry.name.endswith(".tmp")
                and entry.path != str(final)
            ):
                os.unlink(entry.path)  # an earlier upload of the same number
        return Part(self.number, etag, self.size, time.time_ns())

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.unlink(self._temp)
        except OSError:
            pass
