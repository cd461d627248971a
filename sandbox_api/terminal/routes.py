"""HTTP adapter of the terminal: the page (`/terminal`) and its WebSocket (`/terminal/ws`).

Frames are JSON text: the client sends `{"type":"input","data":...}` and
`{"type":"resize","cols":C,"rows":R}`; the server sends `{"type":"output","data":...}`
and `{"type":"error","data":...}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources

from aiohttp import web
from aiohttp.http import WSMsgType

from ..http.responses import head_ok
from .sessions import Terminals

log = logging.getLogger("sandbox_api.terminal")

TERMINALS = web.AppKey("terminals", Terminals)
STATIC_TYPES = {".js": "application/javascript", ".css": "text/css"}
QUEUE_LIMIT = 1024  # output frames a slow client may fall behind by before it is dropped


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


def _dimension(request: web.Request, name: str, default: int) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        return default
    return value if 0 < value < 65536 else default


async def websocket(request: web.Request) -> web.WebSocketResponse:
    terminals = request.app[TERMINALS]
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    outbox: asyncio.Queue[str | None] = asyncio.Queue()
    ended = False

    def listener(text: str | None) -> None:
        nonlocal ended
        if ended:
            return
        if text is None or outbox.qsize() >= QUEUE_LIMIT:
            # The shell is gone, or this client fell behind (it reattaches and replays).
            ended = True
            outbox.put_nowait(None)
        else:
            outbox.put_nowait(json.dumps({"type": "output", "data": text}))

    try:
        session = terminals.attach(
            request.query.get("sessionId") or "default",
            _dimension(request, "cols", 80),
            _dimension(request, "rows", 24),
            request.query.get("shell"),
            request.query.get("workingDir"),
            listener,
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
            elif kind == "resize":
                try:
                    session.resize(int(frame.get("cols") or 0), int(frame.get("rows") or 0))
                except (TypeError, ValueError):
                    pass
    finally:
        terminals.detach(session, listener)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        log.info("terminal disconnect", extra={"source": "audit", "action": "terminal_disconnect", "session": session.id})
    return ws


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/terminal", page, allow_head=False)
    r.add_route("HEAD", "/terminal", head_ok)
    r.add_get("/terminal/ws", websocket, allow_head=False)
    r.add_route("HEAD", "/terminal/ws", head_ok)
    r.add_get("/terminal/static/{name}", asset)
