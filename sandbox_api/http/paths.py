"""The one path resolver for every route with a path in its URL (filesystem, search, watch).

Clients spell the same absolute file three ways: `/filesystem//tmp/x` (Python SDK),
`/filesystem/%2Ftmp%2Fx` (TS SDK) and `/filesystem%2Ftmp/x` (the original's tests).
aiohttp decodes the path, so the rule that tells them apart must look at the raw path:

- the raw path contains `%2F` (uppercase) -> the decoded tail is used as is (absolute);
- otherwise the tail loses one leading `/` (`/src/a` -> `src/a`, relative to WORKDIR;
  `//tmp/x` -> `/tmp/x`), and a bare `/` means WORKDIR itself.

Then, for most routes, "format": `~` -> $HOME, `//` -> `/`. Responses echo the path as
the client gave it (the *display* path), except that `.` and `./` show as WORKDIR.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from aiohttp import web

from .. import config
from ..errors import Invalid
from .appkeys import SETTINGS
from .operations import Param
from .prefix_routes import TAIL

# The path parameter of every route whose URL ends with a file path, as the document shows it.
FILE_PATH = Param(
    "path",
    "A file path. Without a leading `/` it is relative to WORKDIR (`src/a.py`); an absolute path is spelled "
    "`/filesystem//tmp/x` (Python SDK) or `/filesystem/%2Ftmp%2Fx` (TS SDK): when the raw URL holds `%2F`, the "
    "decoded rest of the path is taken as is. `~` is $HOME.",
)


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


def from_tail(tail: str, raw_path: str, workdir: str, *, formatted: bool = True) -> ResolvedPath:
    """Resolve the path part of a URL (`tail`: decoded, starting with `/`)."""
    if "%2F" in raw_path:
        value = tail
    elif tail in ("", "/"):
        value = "."
    else:
        value = tail[1:]
    if formatted:
        value = format_path(value)
    return from_value(value, workdir)


def from_request(request: web.Request, *, formatted: bool = True) -> ResolvedPath:
    """The path at the end of a prefix route's URL (`/filesystem/...`, `/watch/filesystem/...`)."""
    return from_tail(request[TAIL], request.rel_url.raw_path, request.app[SETTINGS].workdir, formatted=formatted)


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
