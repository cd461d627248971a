"""Content search, backed by ripgrep, with a clean early stop.

rg does the walk (.gitignore honoured even outside a git repo, binary files skipped,
symlinks not followed, dotfiles searched) and the matching; we read its lines as
they come, keep one result per matching line, add the context lines asked for, and
kill rg as soon as `limit` matches are complete. The run is bounded by a timeout, so
the request can neither hang nor run away, whatever the number of hits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .. import bundle, config
from ..errors import Internal, Invalid, NotSupported, Unprocessable
from ..identity import Identity
from ..linux.children import Children

log = logging.getLogger("sandbox_api.search")

BUNDLED_RG = "(bundled)"


def find_rg() -> str | None:
    """The `rg` shipped with us: inside the one-file binary (BUNDLED_RG), beside our
    interpreter (the ripgrep wheel installs it into the venv's bin), or on PATH."""
    explicit = config.get_variable("SANDBOX_RG_PATH")
    if bundle.FROZEN and not explicit:
        return BUNDLED_RG
    candidates = [explicit] if explicit else []
    candidates.append(os.path.join(os.path.dirname(sys.executable), "rg"))
    candidates.append(os.path.join(sys.prefix, "bin", "rg"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("rg")


RAW_JSON_LIMIT = 1000  # matches, for the MCP grep tool


def rg_argv(
    rg: str,
    query: str,
    *,
    case_sensitive: bool = False,
    regex: bool = False,
    context: int = 0,
    file_pattern: str | None = None,
    exclude_dirs: frozenset[str] = frozenset(),
) -> list[str]:
    """rg's plain output, NUL after the path: `path\\0LINE:COL:text` for a match and
    `path\\0LINE-text` for context (cheaper to produce and to parse than --json). No
    `--` between context groups: a line without a NUL is then the start of a path that
    holds a newline (see _whole_lines)."""
    argv = [rg, "--null", "--line-number", "--column", "--no-heading", "--with-filename", "--color=never"]
    argv.append("--no-context-separator")
    argv += ["--hidden", "--no-config", "--no-require-git", "--no-messages"]
    if not regex:
        argv.append("--fixed-strings")
    if not case_sensitive:
        argv.append("--ignore-case")
    if context:
        argv += ["--context", str(context)]
    if file_pattern:
        argv += ["--glob", file_pattern]
    for name in sorted(exclude_dirs):
        argv += ["--glob", f"!{name}/"]
    return argv + ["--regexp", query, "--", "."]


@dataclass
class _Pending:
    result: dict[str, Any]
    line: int
    before: list[str]
    after: list[str] = field(default_factory=list)


class ContentSearch:
    def __init__(self, children: Children, timeout: float = 30.0, identity: Identity | None = None) -> None:
        self.children = children
        self.timeout = timeout
        self.identity = identity  # rg reads files as the workload user
        self.rg = find_rg()
        if self.rg is None:
            log.warning("ripgrep (rg) not found: content search is unavailable")

    async def _program(self) -> tuple[str, tuple[int, ...]]:
        """The path to run rg by, and the fds the child needs for it."""
        assert self.rg is not None
        if self.rg != BUNDLED_RG:
            return self.rg, ()
        fd = await asyncio.to_thread(bundle.ripgrep)  # the first time, it inflates ~5 MB
        assert fd is not None
        return f"/proc/self/fd/{fd}", (fd,)

    async def search(
        self,
        root: str,
        query: str,
        *,
        case_sensitive: bool = False,
        regex: bool = False,
        context: int = 0,
        limit: int = 100,
        file_pattern: str | None = None,
        exclude_dirs: frozenset[str],
    ) -> dict[str, Any]:
        if self.rg is None:
            raise NotSupported("content search needs ripgrep (rg), which was not found; install the ripgrep wheel")
        if not query:
            raise Invalid("query parameter is required")
        _refuse_nul("query, filePattern and excludeDirs", query, file_pattern or "", *exclude_dirs)
        if not os.path.isdir(root):
            raise Invalid(f"specified directory does not exist: {root}")
        if not os.access(root, os.R_OK | os.X_OK):
            raise Unprocessable(f"open {root}: permission denied")
        rg, pass_fds = await self._program()
        argv = rg_argv(
            rg,
            query,
            case_sensitive=case_sensitive,
            regex=regex,
            context=context,
            file_pattern=file_pattern,
            exclude_dirs=exclude_dirs,
        )
        piped = await self.children.spawn_reading(argv, cwd=root, identity=self.identity, pass_fds=pass_fds)
        matches: list[dict[str, Any]] = []
        try:
            try:
                timed_out = not await _collect(piped.stdout, matches, context, limit, self.timeout)
            finally:
                await piped.close()
            if piped.child.returncode == 2 and not matches:
                message = (await piped.stderr.read()).decode("utf-8", "replace").strip()
                if "regex" in message:
                    raise Invalid(f"invalid regular expression: {message}")
                if "error parsing glob" in message:  # filePattern, or a name in excludeDirs
                    raise Invalid(f"invalid glob: {message}")
                if message:
                    raise Internal(f"content search failed: {message}")
        except OSError as e:
            raise Internal(f"content search failed: {e}") from None
        response: dict[str, Any] = {"query": query, "matches": matches, "total": len(matches)}
        if timed_out:
            response["timedOut"] = True
        return response

    async def raw_json(
        self, root: str, query: str, *, case_sensitive: bool, include: str = "", exclude: str = ""
    ) -> list[str]:
        """rg's own JSON lines for a regex search (the MCP grep tool returns them as is)."""
        if self.rg is None:
            raise NotSupported("content search needs ripgrep (rg), which was not found; install the ripgrep wheel")
        _refuse_nul("query, include and exclude", query, include, exclude)
        rg, pass_fds = await self._program()
        argv = [rg, "--json", "--no-config"]
        if not case_sensitive:
            argv.append("--ignore-case")
        if include:
            argv += ["--glob", include]
        if exclude:
            argv += ["--glob", f"!{exclude}"]
        argv += ["--regexp", query, "--", "."]
        piped = await self.children.spawn_reading(argv, cwd=root, identity=self.identity, pass_fds=pass_fds)
        try:
            lines = await _raw_lines(piped.stdout, RAW_JSON_LIMIT, self.timeout)
            if not lines:  # rg printed nothing, not even its summary: it failed, and says why on stderr
                # read before close(), which kills a child not yet reaped and drops its pipes
                async with asyncio.timeout(self.timeout):
                    errors = b""
                    while len(errors) < 64 * 1024 and (chunk := await piped.stderr.read(64 * 1024)):
                        errors += chunk
                    await piped.child.wait()
                message = errors[: 64 * 1024].decode("utf-8", "replace").strip()
                raise Invalid(f"grep failed: {message or f'rg exited with status {piped.child.returncode}'}")
        finally:
            await piped.close()
        return lines


def _refuse_nul(names: str, *texts: str) -> None:
    """No argument of a process can hold a NUL byte: bad input, said as such."""
    if any("\0" in text for text in texts):
        raise Invalid(f"{names} must not contain a NUL byte")


async def _raw_lines(stream: asyncio.StreamReader, limit: int, timeout: float) -> list[str]:
    lines: list[str] = []
    matches = 0
    try:
        async with asyncio.timeout(timeout):  # one deadline for the whole read, not a task per line
            while matches < limit and (raw := await stream.readline()):
                lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                matches += raw.startswith(b'{"type":"match"')
    except TimeoutError:
        pass  # what was read by then is the answer
    return lines


_LINE = re.compile(rb"(\d+)([:-])(?:(\d+):)?")


async def _collect(
    stream: asyncio.StreamReader, matches: list[dict[str, Any]], context: int, limit: int, timeout: float
) -> bool:
    """Read rg's output into `matches`; False if the time ran out first.

    Output is read in large blocks and split into lines in one go: per-line awaits
    would cost more than rg's own work on a search with many hits.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    parser = _Parser(matches, context, limit)
    tail = b""
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            parser.settle(None)
            return False
        try:
            block = await asyncio.wait_for(stream.read(256 * 1024), remaining)
        except TimeoutError:
            parser.settle(None)
            return False
        if not block:
            if tail:
                parser.feed([tail])
            parser.settle(None)
            return True
        lines = (tail + block).split(b"\n")
        lines, tail = _whole_lines(lines, lines.pop())
        if parser.feed(lines):
            return True


def _whole_lines(pieces: list[bytes], tail: bytes) -> tuple[list[bytes], bytes]:
    """rg's lines out of `pieces` (the output split at newlines), and what is left unfinished.

    A file name may hold a newline, and a line's text holds none: a piece without the NUL
    that ends a path is the start of the next piece's path."""
    if all(b"\0" in piece for piece in pieces):
        return pieces, tail  # no name with a newline: the usual case
    lines: list[bytes] = []
    start: bytes | None = None
    for piece in pieces:
        if start is not None:
            piece = start + b"\n" + piece
            start = None
        if b"\0" in piece:
            lines.append(piece)
        else:
            start = piece
    if start is not None:
        tail = start + b"\n" + tail
    return lines, tail


class _Parser:
    """Turns rg's lines (`path\\0LINE:COL:text`, context `path\\0LINE-text`) into matches."""

    def __init__(self, matches: list[dict[str, Any]], context: int, limit: int) -> None:
        self.matches = matches
        self.context = context
        self.limit = limit
        self.recent: deque[tuple[int, str]] = deque(maxlen=context or 1)
        self.pending: list[_Pending] = []
        self.path = b""
        self.full = False

    def settle(self, upto: int | None) -> None:
        """Close the context of pending matches complete up to line `upto` (None: all)."""
        keep = []
        for item in self.pending:
            if upto is None or upto >= item.line + self.context:
                item.result["context"] = "\n".join([*item.before, item.result["text"], *item.after])
            else:
                keep.append(item)
        self.pending = keep

    def feed(self, lines: list[bytes]) -> bool:
        """Take complete lines; True once `limit` matches (with their context) are in."""
        if not self.context:
            return self._feed_plain(lines)
        for raw in lines:
            path, nul, rest = raw.partition(b"\0")
            head = _LINE.match(rest) if nul else None
            if head is None:
                continue  # a "--" separator between context groups
            if path != self.path:
                self.settle(None)
                if self.full and not self.pending:
                    return True
                self.path = path
                self.recent.clear()
            number = int(head.group(1))
            text = rest[head.end() :].removesuffix(b"\r").decode("utf-8", "replace")
            for item in self.pending:
                if item.line < number <= item.line + self.context:
                    item.after.append(text)
            self.settle(number)
            if head.group(2) == b":" and not self.full:
                result = self._result(path, number, int(head.group(3) or 1), text)
                before = [t for n, t in self.recent if number - self.context <= n < number]
                self.pending.append(_Pending(result, number, before))
            self.recent.append((number, text))
            if self.full and not self.pending:
                return True
        return False

    def _feed_plain(self, lines: list[bytes]) -> bool:
        """Without context every line is a match: the fast path."""
        for raw in lines:
            path, nul, rest = raw.partition(b"\0")
            if not nul:
                continue
            first = rest.find(b":")
            second = rest.find(b":", first + 1)
            if first < 0 or second < 0:
                continue
            text = rest[second + 1 :].removesuffix(b"\r").decode("utf-8", "replace")
            self._result(path, int(rest[:first]), int(rest[first + 1 : second]), text)
            if self.full:
                return True
        return False

    def _result(self, path: bytes, line: int, column: int, text: str) -> dict[str, Any]:
        # The name as os.fsdecode holds it: bytes that are not UTF-8 show as U+FFFD on the wire (names.py).
        result = {"path": os.fsdecode(path).removeprefix("./"), "line": line, "column": column, "text": text}
        self.matches.append(result)
        if self.limit and len(self.matches) >= self.limit:
            self.full = True
        return result
