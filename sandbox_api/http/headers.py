"""Headers set on every response just before it is sent (streams included)."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler

from .cors import add_cors_headers
from .origins import CROSS_SITE_UNREADABLE

NO_CACHE_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "0",
    "X-Content-Type-Options": "nosniff",
}
STARTED_AT = web.RequestKey("started_at", float)
# Set when the response is relayed from another server (the port proxy): its headers
# are that server's, so none of ours (CORS, no-cache, timing) are added.
RELAYED = web.RequestKey("relayed", bool)


def make_on_prepare(processing_time: bool):
    async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
        if request.get(RELAYED):
            return
        if not request.get(CROSS_SITE_UNREADABLE):
            add_cors_headers(response)
        if request.method == "OPTIONS":
            return
        for name, value in NO_CACHE_HEADERS.items():
            # A stream sets its own Cache-Control: keep it.
            response.headers.setdefault(name, value)
        if processing_time:
            started = request.get(STARTED_AT)
            if started is not None:
                ms = (time.perf_counter() - started) * 1000
                response.headers["Server-Timing"] = (
                    f'total;dur={ms:.2f};desc="Processing time of the Sandbox API request"'
                )

    return on_response_prepare


@web.middleware
async def timing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[STARTED_AT] = time.perf_counter()
    return await handler(request)
