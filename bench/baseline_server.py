"""The baselines of the filesystem benchmarks: a minimal aiohttp server.

PUT /raw/<name>  streams the body to a file (plain blocking writes, no fsync)
PUT /atomic/<name> the same into a temp file, then fsync and rename
GET /file/<name> answers with aiohttp's FileResponse (sendfile)
GET /pty         the barest websocket-to-pty bridge: text frames in, raw output out
GET /hello       aiohttp's hello world, as JSON like /health
PUT, GET, DELETE /small/<name>  a small file as JSON {"content"}: written to a temp file,
                 fsynced and renamed (as the daemon does), read, removed
Run: python baseline_server.py PORT DIR
"""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys

from aiohttp import web

DIR = sys.argv[2]


async def put_raw(request: web.Request) -> web.Response:
    with open(os.path.join(DIR, request.match_info["name"]), "wb") as f:
        async for chunk in request.content.iter_chunked(1 << 20):
            f.write(chunk)
    return web.json_response({"ok": True})


async def put_atomic(request: web.Request) -> web.Response:
    """The same, made durable and atomic: temp file, fsync, rename (what the daemon does)."""
    target = os.path.join(DIR, request.match_info["name"])
    tmp = target + ".tmp"
    with open(tmp, "wb") as f:
        async for chunk in request.content.iter_chunked(1 << 20):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return web.json_response({"ok": True})


async def get_file(request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(DIR, request.match_info["name"]))


async def pty_bridge(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    master, slave = pty.openpty()
    shell = subprocess.Popen(["/bin/sh"], stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()
    sends: set[asyncio.Future[None]] = set()  # held until sent

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:
            data = b""
        if data:
            sends.add(task := asyncio.ensure_future(ws.send_str(data.decode("utf-8", "replace"))))
            task.add_done_callback(sends.discard)
        else:
            loop.remove_reader(master)

    loop.add_reader(master, readable)
    async for message in ws:
        os.write(master, message.data.encode())
    loop.remove_reader(master)
    shell.kill()
    shell.wait()
    os.close(master)
    return ws


async def small_put(request: web.Request) -> web.Response:
    content = (await request.json())["content"].encode()
    target = os.path.join(DIR, request.match_info["name"])
    tmp = target + ".tmp"
    with open(tmp, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return web.json_response({"path": target, "message": "File created successfully"})


async def small_get(request: web.Request) -> web.Response:
    with open(os.path.join(DIR, request.match_info["name"]), "rb") as f:
        return web.json_response({"content": f.read().decode()})


async def small_delete(request: web.Request) -> web.Response:
    os.unlink(os.path.join(DIR, request.match_info["name"]))
    return web.json_response({"message": "File deleted successfully"})


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


app = web.Application(client_max_size=0)
app.router.add_put("/raw/{name}", put_raw)
app.router.add_put("/atomic/{name}", put_atomic)
app.router.add_get("/file/{name}", get_file)
app.router.add_get("/pty", pty_bridge)
app.router.add_get("/hello", hello)
app.router.add_put("/small/{name}", small_put)
app.router.add_get("/small/{name}", small_get)
app.router.add_delete("/small/{name}", small_delete)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
