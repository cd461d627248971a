"""Ports of a process tree, and port monitors calling back."""

from __future__ import annotations

import asyncio
import os
import socket
import time

from aiohttp import web

from sandbox_api.linux import sock_diag
from sandbox_api.network import ports
from tests.helpers import run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(port: int, host: str = "0.0.0.0", delay: float = 0) -> str:
    return (
        f'sleep {delay}; python3 -c "import socket,time;s=socket.socket();'
        f"s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('{host}',{port}));s.listen();time.sleep(60)\"; exit 0"
    )  # the trailing `exit` keeps the shell from exec-ing python: the listener is a child


async def test_ports_of_a_process_tree(client):
    port = free_port()
    started = await run(client, server_command(port), name="portsrv", waitForPorts=[port], timeout=10)
    resp = await client.get(f"/network/process/{started['pid']}/ports")
    body = await resp.json()
    assert resp.status == 200
    assert body["pid"] == int(started["pid"])
    mine = [p for p in body["ports"] if p["localPort"] == port]
    assert len(mine) == 1
    info = mine[0]
    assert list(info) == [
        "pid",
        "protocol",
        "localAddr",
        "localPort",
        "remoteAddr",
        "remotePort",
        "state",
        "processName",
    ]
    assert info["protocol"] == "tcp" and info["state"] == "LISTEN" and info["localAddr"] == "0.0.0.0"
    assert info["remoteAddr"] == "" and info["remotePort"] == 0
    assert info["pid"] != int(started["pid"]) and info["processName"].startswith("python")  # a descendant
    await client.delete("/process/portsrv/kill")


async def test_bad_and_unknown_pids(client):
    resp = await client.get("/network/process/abc/ports")
    assert resp.status == 400 and await resp.json() == {"error": "invalid PID"}
    resp = await client.get("/network/process/999999999/ports")  # no such process: none, as the original
    assert resp.status == 200 and await resp.json() == {"pid": 999999999, "ports": []}
    resp = await client.post("/network/process/abc/monitor", json={"callback": "http://x"})
    assert resp.status == 400
    resp = await client.post(f"/network/process/{os.getpid()}/monitor", data=b"{bad")
    assert resp.status == 400
    resp = await client.post(f"/network/process/{os.getpid()}/monitor", json={"callback": "ftp://x"})
    assert resp.status == 400
    resp = await client.delete("/network/process/12345/monitor")
    assert resp.status == 200 and "stopped" in (await resp.json())["message"]


async def test_monitor_calls_back_for_new_ports(client):
    received: list[dict] = []
    got = asyncio.Event()

    async def callback(request: web.Request) -> web.Response:
        received.append(await request.json())
        got.set()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = site._server.sockets[0].getsockname()[1]
    try:
        port = free_port()
        started = await run(client, server_command(port, delay=0.8), name="monitored")
        pid = int(started["pid"])
        resp = await client.post(
            f"/network/process/{pid}/monitor", json={"callback": f"http://127.0.0.1:{hook_port}/hook"}
        )
        assert await resp.json() == {"path": "", "message": "Port monitoring started"}
        deadline = time.monotonic() + 10
        while not any(r["port"] == port for r in received) and time.monotonic() < deadline:
            got.clear()
            await asyncio.wait_for(got.wait(), max(0.1, deadline - time.monotonic()))
        assert {"pid": pid, "port": port} in received
        resp = await client.delete(f"/network/process/{pid}/monitor")
        assert await resp.json() == {"path": "", "message": "Port monitoring stopped"}
        await client.delete("/process/monitored/kill")
    finally:
        await runner.cleanup()


def test_sock_diag_sees_tcp_and_udp_listeners():
    tcp = socket.socket()
    tcp.bind(("0.0.0.0", 0))
    tcp.listen()
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.bind(("::", 0))
    try:
        found = sock_diag.listeners()
        assert found is not None
        by_inode = {s.inode: s for s in found}
        t = by_inode[os.fstat(tcp.fileno()).st_ino]
        assert (t.protocol, t.address, t.port) == ("tcp", "0.0.0.0", tcp.getsockname()[1])
        u = by_inode[os.fstat(udp.fileno()).st_ino]
        assert (u.protocol, u.address, u.port) == ("udp", "::", udp.getsockname()[1])
        assert ports.serving_ports({os.getpid()}, {tcp.getsockname()[1], udp.getsockname()[1]}) == {
            tcp.getsockname()[1],
            udp.getsockname()[1],
        }
    finally:
        tcp.close()
        udp.close()
