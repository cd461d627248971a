"""Find files or directories by glob patterns on their names."""

from __future__ import annotations

import asyncio
from typing import Any

from .globs import compile_glob
from .walk import walk


def _find(
    root: str, kind: str, patterns: tuple[str, ...], exclude_dirs: frozenset[str], exclude_hidden: bool, limit: int
) -> list[dict[str, str]]:
    compiled = [compile_glob(p) for p in patterns]
    matches: list[dict[str, str]] = []
    want_dirs = kind == "directory"
    for relative, is_dir in walk(root, exclude_dirs, exclude_hidden):
        if is_dir != want_dirs:
            continue
        if compiled and not is_dir:
            name = relative.rsplit("/", 1)[-1] if relative != "." else root.rstrip("/").rsplit("/", 1)[-1]
            if not any(p.match(name) for p in compiled):
                continue
        matches.append({"path": relative, "type": "directory" if is_dir else "file"})
        if limit and len(matches) >= limit:
            break
    return matches


async def find(
    root: str,
    *,
    kind: str = "file",
    patterns: tuple[str, ...] = (),
    exclude_dirs: frozenset[str],
    exclude_hidden: bool = True,
    limit: int = 20,
) -> dict[str, Any]:
    """Entries under `root` (paths relative to it, walk order), at most `limit` (0 = all)."""
    matches = await asyncio.to_thread(_find, root, kind, patterns, exclude_dirs, exclude_hidden, limit)
    return {"matches": matches, "total": len(matches)}
