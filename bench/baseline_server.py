"""The baselines of the filesystem benchmarks: a minimal aiohttp server.

PUT /raw/<name>  streams the body to a file (plain blocking writes, no fsync)
PUT /atomic/<name> the same into a temp file, then fsync and rename
GET /file/<name> answers with aiohttp's FileResponse (sendfile)
Run: python baseline_server.py PORT DIR
"""

from __future__ import annotations

import os
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


app = web.Application(client_max_size=0)
app.router.add_put("/raw/{name}", put_raw)
app.router.add_put("/atomic/{name}", put_atomic)
app.router.add_get("/file/{name}", get_file)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
