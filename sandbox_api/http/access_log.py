"""One JSON access-log line per request, with secret-looking query values redacted."""

from __future__ import annotations

import logging
import math
import re
import time
from urllib.parse import parse_qsl, quote

from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger("sandbox_api.access")

SECRET_PARAMS = frozenset(
    """api_key apikey api-key token access_token refresh_token auth_token bearer password
    passwd pwd secret client_secret api_secret key private_key encryption_key authorization
    auth credential credentials session session_id sessionid jwt""".split()
)
_FALLBACK = re.compile(r"(?i)(^|&)(" + "|".join(re.escape(p) for p in sorted(SECRET_PARAMS)) + r")=([^&]*)")


def redact_query(query: str) -> str:
    """The query with secret values replaced; re-encoded with sorted keys when changed."""
    if not query:
        return query
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return _FALLBACK.sub(lambda m: f"{m.group(1)}{m.group(2)}=[REDACTED]", query)
    if not any(k.lower() in SECRET_PARAMS for k, _ in pairs):
        return query
    redacted = [(k, "[REDACTED]" if k.lower() in SECRET_PARAMS else v) for k, v in pairs]
    redacted.sort(key=lambda kv: kv[0])
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in redacted)


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    elapsed_ms = math.ceil((time.perf_counter() - started) * 1000)
    target = request.path
    query = request.query_string
    if query:
        target += "?" + redact_query(query)
    size = response.body_length if response.prepared else (response.content_length or 0)
    # A client's mistake (4xx) is not the daemon's error: polling for a missing file must not fill the log with errors.
    level = logging.ERROR if response.status >= 500 else logging.WARNING if response.status >= 400 else logging.INFO
    log.log(
        level,
        "%s %s %d %d %dms",
        request.method,
        target,
        response.status,
        size,
        elapsed_ms,
        extra={"source": "access"},
    )
    return response
