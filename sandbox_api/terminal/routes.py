"""HTTP adapter of the terminal: the page (`/terminal`) and its WebSocket (`/terminal/ws`).

Frames are JSON text: the client sends `{"type":"input","data":...}` and
`{"type":"resize","cols":C,"rows":R}`; the server sends `{"type":"output","data":...}`
and `{"type":"error","data":...}`. When the shell ends, the server sends
`{"type":"exit","code":N}` (N is the exit status, `-signal` when a signal ended it; left out
when unknown), then closes with 1000 "session ended": the next connection with that id starts
a new shell. A close without that frame is a lost connection, not an ended session. A resize out of range (cols and rows are 1 to 65535;
0 leaves the size as it is) gets an error frame and the socket stays. A frame over 4 MiB
gets an error frame, then a close with code 1009 and the same reason: the page splits
its pastes into smaller frames, so only other clients meet it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.http import WSCloseCode, WSMsgType

from ..contract import decode_query
from ..http import operations
from ..http.operations import Empty, Failure, Media, Operation, Param
from ..lazy import OnFirstUse
from .wire import MAX_DIMENSION, TerminalQuery

if TYPE_CHECKING:
    from .sessions import Terminals

log = logging.getLogger("sandbox_api.terminal")

TERMINALS: web.AppKey[OnFirstUse[Terminals]] = web.AppKey("terminals")  # built on the first socket
STATIC_TYPES = {".js": "application/javascript", ".css": "text/css"}
QUEUE_LIMIT = 1024  # output frames a slow client may fall behind by before it is dropped
MAX_FRAME_BYTES = 4 * 1024 * 1024  # one client frame (aiohttp's default, stated)
EXIT_STATUS_WAIT = 2.0  # seconds to wait for the shell to be reaped once its pty closed
ENDED = "ended"  # outbox marker: the shell is gone (None: close, the client fell behind)


def _error_frame(text: str) -> str:
    return json.dumps({"type": "error", "data": text})


class TerminalSocket(web.WebSocketResponse):
    """Says why when aiohttp closes the socket for a frame over the size limit (it
    would otherwise close with a bare 1009)."""

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not message and not self.closed:
            text = f"input frame over {MAX_FRAME_BYTES // (1024 * 1024)} MiB: send input in smaller frames"
            try:
                await self.send_str(_error_frame(text))
            except (ConnectionError, RuntimeError):
                pass
            message = text.encode()
        return await super().close(code=code, message=message, drain=drain)


def _static(name: str) -> bytes:
    path = resources.files("sandbox_api.terminal") / "static"
    for part in name.split("/"):
        path = path / part
    return path.read_bytes()


async def page(request: web.Request) -> web.Response:
    return web.Response(body=_static("index.html"), content_type="text/html", charset="utf-8")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    kind = next((t for ext, t in STATIC_TYPES.items() if name.endswith(ext)), None)
    if kind is None or "/" in name:
        raise web.HTTPNotFound()
    try:
        body = _static(f"vendor/{name}")
    except FileNotFoundError:
        raise web.HTTPNotFound() from None
    return web.Response(body=body, content_type=kind, headers={"Cache-Control": "public, max-age=86400"})


def _socket_query(request: web.Request) -> TerminalQuery:
    """The socket's query as its shape, except that a bad `cols` or `rows` is ignored (the
    default size) rather than refused, as the original: a page must get its terminal."""
    query = {name: request.query[name] for name in request.query}
    for name in ("cols", "rows"):
        raw = query.get(name, "")
        if not (raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_DIMENSION):
            query.pop(name, None)
    return decode_query(query, TerminalQuery)


def _resize_size(frame: dict) -> tuple[int, int] | str:
    """(cols, rows) from a resize frame, or why it cannot be applied."""
    size = []
    for name in ("cols", "rows"):
        value = frame.get(name) or 0
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return f"resize: {name} must be an integer from 1 to {MAX_DIMENSION}"
        try:
            number = int(value)
        except (ValueError, OverflowError):
            return f"resize: {name} must be an integer from 1 to {MAX_DIMENSION}"
        if not 0 <= number <= MAX_DIMENSION:
            return f"resize: {name} {number} is out of range (1 to {MAX_DIMENSION})"
        size.append(number)
    return size[0], size[1]


async def websocket(request: web.Request) -> web.WebSocketResponse:
    terminals = request.app[TERMINALS]()
    query = _socket_query(request)
    ws = TerminalSocket(heartbeat=30.0, max_msg_size=MAX_FRAME_BYTES)
    await ws.prepare(request)
    outbox: asyncio.Queue[str | None] = asyncio.Queue()  # frames, ENDED, or None
    ended = False

    def listener(text: str | None) -> None:
        nonlocal ended
        if ended:
            return
        if text is None:
            ended = True
            outbox.put_nowait(ENDED)
        elif outbox.qsize() >= QUEUE_LIMIT:
            # This client fell behind: closed without an exit frame, it reconnects and replays.
            ended = True
            outbox.put_nowait(None)
        else:
            outbox.put_nowait(json.dumps({"type": "output", "data": text}))

    try:
        session = terminals.attach(
            query.session_id or "default", query.cols, query.rows, query.shell, query.working_dir, listener
        )
    except OSError as e:
        await ws.send_json({"type": "error", "data": f"cannot start a terminal: {e}"})
        await ws.close()
        return ws
    log.info("terminal connect", extra={"source": "audit", "action": "terminal_connect", "session": session.id})

    async def pump() -> None:
        await ws.send_str(json.dumps({"type": "output", "data": session.replay_text()}))
        while True:
            frame = await outbox.get()
            if frame is None:
                await ws.close()
                return
            if frame is ENDED:
                code = await session.exit_status(EXIT_STATUS_WAIT)
                await ws.send_json({"type": "exit"} if code is None else {"type": "exit", "code": code})
                await ws.close(code=WSCloseCode.OK, message=b"session ended")
                return
            await ws.send_str(frame)

    sender = asyncio.create_task(pump())
    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                frame = json.loads(message.data)
            except ValueError:
                continue
            kind = frame.get("type") if isinstance(frame, dict) else None
            if kind == "input" and isinstance(frame.get("data"), str):
                session.write(frame["data"].encode("utf-8", "replace"))
                await session.input_room()  # the socket waits while the shell is behind
            elif kind == "resize":
                size = _resize_size(frame)
                if isinstance(size, str):
                    if outbox.qsize() < QUEUE_LIMIT:  # a client flooding bad frames gets no more answers
                        outbox.put_nowait(_error_frame(size))
                else:
                    session.resize(*size)
    finally:
        terminals.detach(session, listener)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        log.info(
            "terminal disconnect", extra={"source": "audit", "action": "terminal_disconnect", "session": session.id}
        )
    return ws


OPERATIONS = (
    Operation(
        "GET",
        "/terminal",
        page,
        "terminal",
        "The web terminal page (works offline)",
        {200: Media({"text/html": {"type": "string"}})},
        head="ok",
    ),
    Operation(
        "GET",
        "/terminal/ws",
        websocket,
        "terminal",
        "The terminal's WebSocket",
        {
            101: Empty(
                'The WebSocket. Client frames: `{"type":"input","data"}`, `{"type":"resize","cols","rows"}`; server '
                'frames: `{"type":"output","data"}`, `{"type":"error","data"}`. A frame over 4 MiB closes it (1009).'
            ),
            400: Failure("Not a WebSocket upgrade."),
        },
        description="A session outlives its socket: reconnecting with the same `sessionId` replays the last "
        "100 KiB of output.",
        query=TerminalQuery,
        head="ok",
    ),
    Operation(
        "GET",
        "/terminal/static/{name}",
        asset,
        "terminal",
        "The terminal page's scripts and styles",
        {
            200: Media({"application/javascript": {"type": "string"}, "text/css": {"type": "string"}}),
            404: Failure("No such asset."),
        },
        params=(Param("name", "An asset name (`xterm.js`)."),),
        head="same",
    ),
)


def add_routes(app: web.Application) -> None:
    operations.register(app, OPERATIONS)
