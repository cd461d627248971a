"""Content search, backed by ripgrep (`rg --json`), with a clean early stop.

rg does the walk (.gitignore honoured even outside a git repo, binary files skipped,
symlinks not followed, dotfiles searched) and the matching; we read its JSON lines as
they come, keep one result per matching line, add the context lines asked for, and
kill rg as soon as `limit` matches are complete. The run is bounded by a timeout, so
the request can neither hang nor run away, whatever the number of hits.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..errors import Internal, Invalid, NotSupported, Unprocessable
from ..process.children import Children

log = logging.getLogger("sandbox_api.search")

MAX_CONTEXT_LINES = 20


def find_rg() -> str | None:
    """The `rg` shipped with us: in a bundle, beside our interpreter (the ripgrep wheel
    installs it into the venv's bin), or on PATH."""
    explicit = os.environ.get("SANDBOX_RG_PATH")
    candidates = [explicit] if explicit else []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(os.path.join(bundle, "bin", "rg"))
    candidates.append(os.path.join(os.path.dirname(sys.executable), "rg"))
    candidates.append(os.path.join(sys.prefix, "bin", "rg"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("rg")


@dataclass
class _Pending:
    result: dict[str, Any]
    line: int
    before: list[str]
    after: list[str] = field(default_factory=list)


def _text(value: dict[str, Any]) -> str:
    if "text" in value:
        return value["text"]
    return base64.b64decode(value.get("bytes", "")).decode("utf-8", "replace")


class ContentSearch:
    def __init__(self, children: Children, timeout: float = 30.0) -> None:
        self.children = children
        self.timeout = timeout
        self.rg = find_rg()
        if self.rg is None:
            log.warning("ripgrep (rg) not found: content search is unavailable")

    def _argv(self, query: str, case_sensitive: bool, regex: bool, context: int, file_pattern: str | None, exclude_dirs: frozenset[str]) -> list[str]:
        assert self.rg is not None
        argv = [self.rg, "--json", "--hidden", "--no-config", "--no-require-git", "--no-messages"]
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
        argv += ["--regexp", query, "--", "."]
        return argv

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
        if not os.path.isdir(root):
            raise Invalid(f"specified directory does not exist: {root}")
        if not os.access(root, os.R_OK | os.X_OK):
            raise Unprocessable(f"open {root}: permission denied")
        argv = self._argv(query, case_sensitive, regex, context, file_pattern, exclude_dirs)
        piped = await self.children.spawn_reading(argv, cwd=root)
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
                if message:
                    raise Internal(f"content search failed: {message}")
        except OSError as e:
            raise Internal(f"content search failed: {e}") from None
        response: dict[str, Any] = {"query": query, "matches": matches, "total": len(matches)}
        if timed_out:
            response["timedOut"] = True
        return response


async def _collect(stream: asyncio.StreamReader, matches: list[dict[str, Any]], context: int, limit: int, timeout: float) -> bool:
    """Read rg's JSON lines into `matches`; False if the time ran out first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    recent: deque[tuple[int, str]] = deque(maxlen=context or 1)
    pending: list[_Pending] = []
    full = False

    def settle(upto: int | None) -> None:
        """Close the context of pending matches complete up to line `upto` (None: all)."""
        nonlocal pending
        keep = []
        for item in pending:
            if upto is None or upto >= item.line + context:
                lines = [*item.before, item.result["text"], *item.after]
                item.result["context"] = "\n".join(lines)
            else:
                keep.append(item)
        pending = keep

    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            settle(None)
            return False
        try:
            raw = await asyncio.wait_for(stream.readline(), remaining)
        except asyncio.TimeoutError:
            settle(None)
            return False
        if not raw:
            settle(None)
            return True
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        kind = message.get("type")
        data = message.get("data", {})
        if kind == "begin":
            recent.clear()
        elif kind in ("match", "context"):
            number = data.get("line_number") or 0
            text = _text(data.get("lines", {})).rstrip("\n").removesuffix("\r")
            for item in pending:
                if item.line < number <= item.line + context:
                    item.after.append(text)
            settle(number)
            if kind == "match" and not full:
                submatches = data.get("submatches") or [{}]
                result = {
                    "path": _text(data.get("path", {})).removeprefix("./"),
                    "line": number,
                    "column": (submatches[0].get("start") or 0) + 1,
                    "text": text,
                }
                matches.append(result)
                if context:
                    before = [t for n, t in recent if number - context <= n < number]
                    pending.append(_Pending(result, number, before))
                if limit and len(matches) >= limit:
                    full = True
            if context:
                recent.append((number, text))
            if full and not pending:
                return True
        elif kind == "end":
            settle(None)
            if full:
                return True
