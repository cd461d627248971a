"""Port monitors: call a URL back whenever a process tree opens a new local port.

One poller serves every monitored pid (one socket scan per tick, every 500 ms) and runs
only while some pid is monitored. A callback is `POST <url>` with `{"pid", "port"}`;
its failures are logged and never retried (as the original). A monitor ends with its
process: a pidfd tells when it exits (and a reused pid never inherits the callbacks).
"""

from __future__ import annotations

import asyncio
import logging
import os

import aiohttp

from .. import outbound
from ..errors import Invalid, NotFound
from ..linux import tree
from . import ports

log = logging.getLogger("sandbox_api.monitors")

TICK = 0.5
CALLBACK_TIMEOUT = 10.0


def _local_ports(pids: list[int]) -> dict[int, set[int]]:
    """The local ports of each pid's tree: one socket scan and one process scan for all."""
    connections = ports.all_connections()
    procs = tree.snapshot()
    found = {}
    for pid in pids:
        members = ports.tree_pids(pid, procs)
        found[pid] = {c.laddr.port for c in connections if c.pid in members and c.laddr}
    return found


class Monitors:
    def __init__(self) -> None:
        self._callbacks: dict[int, list[str]] = {}
        self._seen: dict[int, set[int]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._pidfds: dict[int, int] = {}  # pid -> its pidfd, readable once it has exited

    async def add(self, pid: int, callback: str) -> None:
        if not callback.startswith(("http://", "https://")):
            raise Invalid(f"invalid callback URL {callback!r}: expected http:// or https://")
        if not await asyncio.to_thread(ports.tree_pids, pid):
            raise NotFound(f"process {pid} not found")
        if pid not in self._pidfds:
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                raise NotFound(f"process {pid} not found") from None
            except OSError:
                pidfd = -1  # no pidfd (old kernel): the tick notices the exit instead
            self._pidfds[pid] = pidfd
            if pidfd >= 0:
                asyncio.get_running_loop().add_reader(pidfd, self._exited, pid)
        self._callbacks.setdefault(pid, []).append(callback)
        self._seen.setdefault(pid, set())
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())

    def _exited(self, pid: int) -> None:
        log.debug("process %d exited: its port monitor ends", pid)
        self.remove(pid)

    def _close_pidfd(self, pid: int) -> None:
        pidfd = self._pidfds.pop(pid, -1)
        if pidfd >= 0:
            asyncio.get_running_loop().remove_reader(pidfd)
            os.close(pidfd)

    @property
    def monitored(self) -> list[int]:
        return list(self._callbacks)

    def remove(self, pid: int) -> None:
        self._close_pidfd(pid)
        self._callbacks.pop(pid, None)
        self._seen.pop(pid, None)
        if not self._callbacks and self._poller is not None:
            self._poller.cancel()
            self._poller = None

    async def close(self) -> None:
        for pid in list(self._pidfds):
            self._close_pidfd(pid)
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _poll(self) -> None:
        while self._callbacks:
            try:
                await self.tick()
            except Exception:  # the poller must outlive a bad tick
                log.exception("port monitor tick failed")
            await asyncio.sleep(TICK)

    async def tick(self) -> None:
        local_ports = await asyncio.to_thread(_local_ports, list(self._callbacks))
        for pid, current in local_ports.items():
            if self._pidfds.get(pid) == -1 and not await asyncio.to_thread(ports.tree_pids, pid):
                self.remove(pid)  # gone, seen without a pidfd
                continue
            new = current - self._seen.get(pid, set())
            if pid in self._seen:
                self._seen[pid] = current
            for port in sorted(new):
                for url in list(self._callbacks.get(pid, [])):
                    task = asyncio.create_task(self._call(url, pid, port))
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)

    async def _call(self, url: str, pid: int, port: int) -> None:
        if self._session is None:
            self._session = await outbound.session(timeout=aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT))
        try:
            async with self._session.post(url, json={"pid": pid, "port": port}) as resp:
                await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            log.debug("port callback %s failed: %s", url, e)
