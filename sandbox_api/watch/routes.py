"""HTTP adapter of the watch service: GET /watch/filesystem/{path}[/**]."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..http import operations, paths
from ..http.appkeys import SETTINGS
from ..http.operations import Failure, Media, Operation, Param
from ..http.paths import from_request
from ..http.prefix_routes import PrefixRouter
from ..http.responses import json_bytes, start_stream
from ..http.streams import serving
from ..process.route_common import SUPERVISOR
from .wire import WatchQuery

KEEPALIVE = b"[keepalive]\n"


async def watch_filesystem(request: web.Request) -> web.StreamResponse:
    from .watcher import Watch  # on the first watch: most sandboxes never watch

    settings = request.app[SETTINGS]
    target = from_request(request)
    display = target.display
    recursive = display.endswith("/**")
    if recursive:
        display = display[:-3] or "/"
        target = paths.from_value(display, settings.workdir)
    watch = Watch(target.absolute, recursive, operations.query(request, WatchQuery).ignore or ())
    await watch.start()  # errors here are plain JSON errors: nothing is sent yet
    try:
        response = await start_stream(request, "text/plain; charset=utf-8")
        await response.write(KEEPALIVE)  # armed: no later change can be missed
        closing = request.app[SUPERVISOR].closing
        waiting: asyncio.Future | None = None
        async with serving(request) as gone:
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
            finally:
                if waiting is not None:
                    waiting.cancel()
        return response
    finally:
        watch.close()


OPERATIONS = (
    Operation(
        "GET",
        "/watch/filesystem/{path}",
        watch_filesystem,
        "watch",
        "Watch a directory for changes",
        {
            200: Media(
                {"text/plain": {"type": "string"}},
                "A stream: `[keepalive]` once the watch is armed, then one JSON event per line, `[keepalive]` every "
                '30 s. An event is `{"op": "CREATE"|"WRITE"|"REMOVE", "name": <base name>, "path": <the directory '
                'holding it>, "error": null}`. It ends when the client leaves.',
            ),
            400: Failure("Invalid path."),
            404: Failure("No such directory."),
            422: Failure("The directory cannot be watched."),
        },
        description="End the path with `/**` to watch every level below it.",
        params=(
            Param(
                "path",
                "The directory: relative to WORKDIR, or absolute as `//tmp/x` or `%2Ftmp%2Fx`; `~` is $HOME. "
                "A trailing `/**` watches every level below it.",
            ),
        ),
        query=WatchQuery,
        prefix=True,
    ),
)


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    operations.register(app, OPERATIONS, prefixes)
