"""The path at the end of a URL (filesystem, search, watch routes) as a resolved path.

Clients spell the same absolute file three ways: `/filesystem//tmp/x` (Python SDK),
`/filesystem/%2Ftmp%2Fx` (TS SDK) and `/filesystem%2Ftmp/x` (the original's tests).
aiohttp decodes the path, so the rule that tells them apart must look at the raw path:

- the raw path contains `%2F` (uppercase) -> the decoded tail is used as is (absolute);
- otherwise the tail loses one leading `/` (`/src/a` -> `src/a`, relative to WORKDIR;
  `//tmp/x` -> `/tmp/x`), and a bare `/` means WORKDIR itself.

Then `sandbox_api/paths.py` resolves it (formatting, WORKDIR).
"""

from __future__ import annotations

from aiohttp import web

from ..paths import ResolvedPath, format_path, from_value
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
