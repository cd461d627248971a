"""Exact edits: view, str_replace, create, insert, with the semantics of the public
`str_replace_based_edit_tool` contract. No HTTP here: routes and the MCP tool call these.

- Every change is written through the writer of `PUT /filesystem` (filesystem/atomic.py):
  an unnamed temp file renamed over the target, so the file keeps its mode and owner, a
  reader never sees half an edit and a failure leaves nothing behind.
- Line endings are kept (edits/text.py): old_str is matched against the text with CRLF
  read as LF, and only the changed lines are rewritten, with the file's usual ending.
- Every answer carries the file's sha256. An edit given `expectedSha256` is refused with
  409 (and the current hash) when the file is no longer that one: edits of one file through
  this daemon are serialised, and the file is checked again just before the rename, so two
  agents cannot both win against the same version.
- Only regular UTF-8 text files without NUL bytes are edited (422 otherwise), up to
  `max_edit_bytes` (413 past it: SANDBOX_MAX_EDIT_BYTES).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import (
    ApiError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    from_os_error,
)
from ..filesystem.atomic import AtomicFile
from ..filesystem.reading import node_kind, open_regular, read_at_most
from ..identity import Identity, run_as
from ..paths import ResolvedPath
from .text import (
    EditRefused,
    FileText,
    Occurrences,
    find_unique,
    lf,
    line_count,
    line_of,
    line_start,
    numbered,
    snippet,
)
from .text import view_range as checked_range

LIMIT_SETTING = "SANDBOX_MAX_EDIT_BYTES"
MAX_LISTED_ENTRIES = 2000  # a directory view lists at most this many entries
SKIPPED_DIRECTORIES = frozenset({"node_modules"})  # besides hidden entries, as the public tool
HEX = frozenset("0123456789abcdef")
_HASH_CHUNK = 1 << 20


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checked_sha256(value: str | None) -> str | None:
    """An expectedSha256 as given: 64 hex digits (any case), or None."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if len(lowered) != 64 or not set(lowered) <= HEX:
        raise Invalid(f"expectedSha256 must be 64 hexadecimal digits, got {value!r}")
    return lowered


class Edits:
    """The edit primitives on user paths, in worker threads acting as the workload user."""

    def __init__(self, identity: Identity | None = None, max_bytes: int = 10 * 1024 * 1024) -> None:
        self.identity = identity
        self.max_bytes = max_bytes
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def _serialised(self, path: str) -> AsyncIterator[None]:
        """One edit at a time per file; the lock is dropped with its last user (bounded)."""
        lock, users = self._locks.get(path, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[path] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[path]
            if users <= 1:
                del self._locks[path]
            else:
                self._locks[path] = (lock, users - 1)

    async def _run(self, p: ResolvedPath, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        try:
            async with self._serialised(p.absolute):
                result = await run_as(self.identity, fn, *args)
        except OSError as e:
            raise os_error(e, p.absolute) from None
        except Occurrences as e:
            raise Unprocessable(str(e), occurrences=e.count, lines=e.lines) from None
        except EditRefused as e:
            raise Invalid(str(e)) from None
        result["path"] = p.display
        return result

    # --- the four commands ---------------------------------------------------------------------

    async def view(self, p: ResolvedPath, view_range: list[int] | None = None) -> dict[str, Any]:
        """A file's lines, numbered (all, or [start, end] with end -1 = to the end), or a
        directory's entries two levels deep (hidden ones and node_modules left out)."""
        return await run_as(self.identity, self._view, p, view_range)

    def _view(self, p: ResolvedPath, wanted: list[int] | None) -> dict[str, Any]:
        try:
            st = os.stat(p.absolute)
            if stat.S_ISDIR(st.st_mode):
                if wanted is not None:
                    raise Invalid(f"view_range applies to a file, and {p.absolute} is a directory")
                return {"path": p.display, **_list_two_levels(p.absolute)}
            data, _ = self._read(p.absolute)
        except OSError as e:
            raise os_error(e, p.absolute) from None
        text = lf(_decode(data, p.absolute))
        total = line_count(text)
        try:
            start, end = checked_range(total, wanted)
        except EditRefused as e:
            raise Invalid(str(e)) from None
        return {
            "path": p.display,
            "type": "file",
            "content": numbered(text, start, end),
            "startLine": start,
            "endLine": end,
            "totalLines": total,
            "lineEnding": _ending(data),
            "size": len(data),
            "sha256": sha256_hex(data),
        }

    async def str_replace(
        self, p: ResolvedPath, old: str, new: str = "", expected_sha256: str | None = None
    ) -> dict[str, Any]:
        """Replace the one occurrence of `old` by `new`."""
        if not old:
            raise Invalid("old_str must not be empty: give the exact text to replace")
        old, new = lf(old), lf(new)
        if old == new:
            raise Invalid("old_str and new_str are the same: there is nothing to change")
        expected = checked_sha256(expected_sha256)

        def change(ft: FileText) -> tuple[str, int, int]:
            at = find_unique(ft.text, old, p.absolute)
            first = line_of(ft.text, at)
            return ft.splice(at, at + len(old), new), first, first + new[:-1].count("\n")  # its last line

        return await self._run(p, self._modify, p.absolute, expected, change)

    async def insert(
        self, p: ResolvedPath, insert_line: int, text: str, expected_sha256: str | None = None
    ) -> dict[str, Any]:
        """Insert `text` as whole lines after line `insert_line` (0: at the top)."""
        if not text:
            raise Invalid("insert_text must not be empty: give the lines to insert")
        if insert_line < 0:
            raise Invalid(f"insert_line must be 0 (the top of the file) or more, got {insert_line}")
        text = lf(text)
        expected = checked_sha256(expected_sha256)

        def change(ft: FileText) -> tuple[str, int, int]:
            total = line_count(ft.text)
            if insert_line > total:
                raise EditRefused(f"insert_line {insert_line} is past the end of {p.absolute}, which has {total} lines")
            piece = text if text.endswith("\n") else text + "\n"
            at = line_start(ft.text, insert_line + 1)
            if at == len(ft.text) and ft.text and not ft.text.endswith("\n"):
                piece = "\n" + piece[:-1]  # after a last line without its newline: the file stays without one
            added = text.count("\n") + (0 if text.endswith("\n") else 1)
            return ft.splice(at, at, piece), insert_line + 1, insert_line + added

        return await self._run(p, self._modify, p.absolute, expected, change)

    async def create(self, p: ResolvedPath, file_text: str, expected_sha256: str | None = None) -> dict[str, Any]:
        """Write a whole file, creating its parents. An existing file is replaced (as the
        public tool does), keeping its mode and owner; `expected_sha256` guards that."""
        data = _encode(file_text)
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(
                f"file_text is {len(data)} bytes, over the limit of {self.max_bytes} ({LIMIT_SETTING})"
            )
        return await self._run(p, self._create, p.absolute, data, checked_sha256(expected_sha256))

    # --- blocking parts (worker threads) -----------------------------------------------------------

    def _read(self, path: str) -> tuple[bytes, os.stat_result]:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise Unprocessable(f"{path} is a directory: only view works on a directory")
        if stat.S_ISREG(st.st_mode) and st.st_size > self.max_bytes:
            raise self._too_large(path, st.st_size)
        fd, st = open_regular(path)
        try:
            data = read_at_most(fd, self.max_bytes)
        finally:
            os.close(fd)
        if data is None:
            raise self._too_large(path, None)
        return bytes(data), st

    def _too_large(self, path: str, size: int | None) -> PayloadTooLarge:
        held = f"{size} bytes" if size is not None else f"more than {self.max_bytes} bytes"
        return PayloadTooLarge(
            f"{path} holds {held}, over the limit of {self.max_bytes} for edits ({LIMIT_SETTING}); "
            "edit it with a process (sed, a script) instead"
        )

    def _modify(
        self, path: str, expected: str | None, change: Callable[[FileText], tuple[str, int, int]]
    ) -> dict[str, Any]:
        data, st = self._read(path)
        current = sha256_hex(data)
        _check_expected(path, expected, current)
        ft = FileText.of(_decode(data, path))
        raw, first, last = change(ft)
        out = _encode(raw)
        if len(out) > self.max_bytes:
            raise PayloadTooLarge(f"the edit would make {path} {len(out)} bytes, over the limit of {self.max_bytes}")
        _write(path, out, st)
        text = lf(raw)
        shown, start, end = snippet(text, first, last)
        return {
            "sha256": sha256_hex(out),
            "size": len(out),
            "lineEnding": ft.line_ending,
            "snippet": shown,
            "snippetStartLine": start,
            "snippetEndLine": end,
        }

    def _create(self, path: str, data: bytes, expected: str | None) -> dict[str, Any]:
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise Unprocessable(f"{path} is a directory: create writes a file")
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise Unprocessable(f"{path} is not a regular file ({node_kind(st.st_mode)})")
        if expected is not None:
            if st is None:
                raise Conflict(
                    f"{path} does not exist any more, and expectedSha256 names a version of it: view it again",
                    currentSha256=None,
                )
            _check_expected(path, expected, _hash_file(path))
        _write(path, data, st)
        text = lf(data.decode())
        shown, start, end = snippet(text, 1, 1)
        return {
            "created": st is None,
            "sha256": sha256_hex(data),
            "size": len(data),
            "lineEnding": _ending(data),
            "snippet": shown,
            "snippetStartLine": start if shown else 0,
            "snippetEndLine": end,
        }


# --- helpers -----------------------------------------------------------------------------------------


def _ending(data: bytes) -> str:
    crlf = data.count(b"\r\n") if b"\r" in data else 0  # memchr first: most files hold no CR
    if not crlf:
        return "lf"
    return "crlf" if crlf == data.count(b"\n") else "mixed"


def _decode(data: bytes, path: str) -> str:
    nul = data.find(b"\0")
    if nul >= 0:
        raise Unprocessable(f"{path} is a binary file (a NUL byte at offset {nul}): only UTF-8 text is edited")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Unprocessable(
            f"{path} is not UTF-8 text (an invalid byte at offset {e.start}): only UTF-8 text is edited"
        ) from None


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("the text holds a lone surrogate, which is not UTF-8") from None


def _check_expected(path: str, expected: str | None, current: str) -> None:
    if expected is not None and expected != current:
        raise Conflict(
            f"{path} changed since it was read: its sha256 is now {current}, not {expected}; view it again",
            currentSha256=current,
        )


def _hash_file(path: str) -> str:
    fd, _ = open_regular(path)
    digest = hashlib.sha256()
    try:
        while chunk := os.read(fd, _HASH_CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns)


def _write(path: str, data: bytes, read: os.stat_result | None) -> None:
    """Atomically replace `path` by `data`; 409 if the file changed since `read` (a writer
    outside this daemon), checked after the new content is down, just before the rename."""
    out = AtomicFile(path, 0o644)
    try:
        out.open()
        out.write(data)
        if read is not None:
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
            if now is None or not _same_file(read, now):
                current = _hash_file(path) if now is not None and stat.S_ISREG(now.st_mode) else None
                raise Conflict(
                    f"{path} changed while it was being edited: nothing was written; view it again",
                    currentSha256=current,
                )
        out.commit()
    except BaseException:
        out.abort()
        raise


def _list_two_levels(root: str) -> dict[str, Any]:
    entries: list[dict[str, str]] = []
    truncated = False

    def children(directory: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as it:
                found = [e for e in it if not e.name.startswith(".") and e.name not in SKIPPED_DIRECTORIES]
        except OSError:
            return []  # unreadable: listed, not entered
        return sorted(found, key=lambda e: e.name)

    for entry in children(root):
        for item in [entry, *(children(entry.path) if entry.is_dir(follow_symlinks=False) else ())]:
            if len(entries) >= MAX_LISTED_ENTRIES:
                truncated = True
                break
            kind = "directory" if item.is_dir(follow_symlinks=False) else "file"
            entries.append({"path": item.path, "type": kind})
        if truncated:
            break
    lines = [root.rstrip("/") + "/"] + [e["path"] + ("/" if e["type"] == "directory" else "") for e in entries]
    if truncated:
        lines.append(f"... (more than {MAX_LISTED_ENTRIES} entries: view a subdirectory)")
    return {"type": "directory", "content": "\n".join(lines), "entries": entries, "truncated": truncated}


def os_error(e: OSError, path: str) -> ApiError:
    """An OSError of an edit as our error: 404 missing, 403 denied, 507 full disk, 422 else."""
    if isinstance(e, FileNotFoundError):
        return NotFound(f"{path}: no such file or directory")
    if e.errno == errno.EISDIR:
        return Unprocessable(f"{path} is a directory")
    denied = e.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    return from_os_error(e, cls=Forbidden if denied else Unprocessable, path=path)
