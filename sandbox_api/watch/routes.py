"""HTTP adapter of the watch service: GET /watch/filesystem/{path}[/**]."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..http import paths
from ..http.appkeys import SETTINGS
from ..http.prefix_routes import PrefixRouter
from ..http.responses import json_bytes, start_stream
from ..http.streams import disconnected
from ..process.routes import SUPERVISOR
from .watcher import Watch

KEEPALIVE = b"[keepalive]\n"


async def watch_filesystem(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    target = paths.from_request(request)
    display = target.display
    recursive = display.endswith("/**")
    if recursive:
        display = display[:-3] or "/"
        target = paths.from_value(display, settings.workdir)
    ignore = [item.strip() for item in request.query.get("ignore", "").split(",")]
    watch = Watch(target.absolute, recursive, ignore)
    await watch.start()  # errors here are plain JSON errors: nothing is sent yet
    try:
        response = await start_stream(request, "text/plain; charset=utf-8")
        await response.write(KEEPALIVE)  # armed: no later change can be missed
        closing = request.app[SUPERVISOR].closing
        gone = disconnected(request)
        waiting: asyncio.Future | None = None
        try:
            while True:
                if waiting is None:
                    waiting = asyncio.ensure_future(watch.next_events())
                stops = {f for f in (gone, closing) if f is not None}
                done, _ = await asyncio.wait(
                    {waiting, *stops}, timeout=settings.log_stream_keepalive, return_when=asyncio.FIRST_COMPLETED
                )
                if waiting in done:
                    events = waiting.result()
                    waiting = None
                    if events:
                        # Compact, as Go sends it; a name that is not UTF-8 shows U+FFFD (names.py).
                        await response.write(b"".join(json_bytes(e.to_dict()) + b"\n" for e in events))
                elif done:
                    break  # the client left, or the daemon is shutting down
                else:
                    await response.write(KEEPALIVE)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            gone.cancel()
            if waiting is not None:
                waiting.cancel()
        return response
    finally:
        watch.close()


def add_routes(prefixes: PrefixRouter) -> None:
    prefixes.add("GET", "/watch/filesystem", watch_filesystem)
