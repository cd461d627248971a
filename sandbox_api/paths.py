"""File paths as requests and tool calls give them: the one resolver (no HTTP here).

Responses echo a path as the client gave it (the *display* path), except that `.` and
`./` show as WORKDIR; the filesystem sees the *absolute* one (normalised, symlinks not
resolved). "Formatting", where a route applies it, is the original's FormatPath:
`~` -> $HOME, `//` -> `/`. How a URL's path becomes such a text (the `%2F` rule) is
HTTP's business: `http/paths.py`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import config
from .errors import Invalid


@dataclass(frozen=True)
class ResolvedPath:
    display: str  # what responses show
    absolute: str  # what the filesystem sees (normalised, symlinks not resolved)

    @property
    def name(self) -> str:
        """Basename of the display path (`/` for the root)."""
        trimmed = self.display.rstrip("/")
        return os.path.basename(trimmed) if trimmed else "/"


def format_path(path: str) -> str:
    """The original's FormatPath: "" -> ".", a leading `~` -> $HOME, `//` -> `/`."""
    try:
        return config.expand_path(path or ".")
    except ValueError as e:
        raise Invalid(str(e)) from None


def absolute(path: str, workdir: str) -> str:
    return os.path.normpath(path if path.startswith("/") else os.path.join(workdir, path))


def from_tree_tail(tail: str) -> ResolvedPath:
    """`/filesystem/tree/...`: always absolute (the rest of the URL), `//` collapsed."""
    value = checked(tail) or "/"
    if not value.startswith("/"):
        value = "/" + value
    value = format_path(value)  # starts with `/`: only the `//` rule applies
    return ResolvedPath(display=value, absolute=os.path.normpath(value))


def checked(value: str) -> str:
    """A path no OS call can take (a NUL byte in it) is refused here, as bad input."""
    if "\0" in value:
        raise Invalid("invalid path: it contains a NUL byte")
    return value


def from_value(value: str, workdir: str) -> ResolvedPath:
    """A path given as text (a request body, an MCP argument): relative to WORKDIR."""
    checked(value)
    display = workdir if value in (".", "./", "") else value
    return ResolvedPath(display=display, absolute=absolute(value or ".", workdir))


def from_body(value: str, workdir: str) -> ResolvedPath:
    """A path in a JSON body: formatted (`~`, `//`), then relative to WORKDIR."""
    return from_value(format_path(value), workdir)
