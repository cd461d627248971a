"""The WireGuard egress tunnel's life cycle: bring it up, replace it, take it down
(its configuration is parsed and checked in tunnel_config.py).

The original runs a userspace WireGuard inside the daemon. Here the kernel's WireGuard
does the work, driven by `wg` and `ip`; a sandbox without them answers 501. The keys
never leave this module: no log line or error message shows one (helper output is
redacted too), and they reach `wg` only through a 0600 file removed right after.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import tempfile
from dataclasses import dataclass

from .. import config
from ..errors import ApiError, Internal, Invalid, NotSupported
from ..linux.children import Children
from .tunnel_config import HELPER_TIMEOUT, TunnelConfig, parse_config, split_host_port
from .wire import ENVIRONMENT_VARIABLE

log = logging.getLogger("sandbox_api.tunnel")


@dataclass
class _Active:
    config: TunnelConfig
    pinned: str | None  # the host route that keeps the peer off the tunnel (route_all)


class Tunnel:
    """The one tunnel of this sandbox; every change under one lock."""

    def __init__(self, children: Children, timeout: float = HELPER_TIMEOUT) -> None:
        self.children = children
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._active: _Active | None = None
        self._startup: asyncio.Task[None] | None = None

    def start_from_environment(self) -> None:
        """Bring the tunnel up from BL_NETWORKING_CONFIG in the background, if set;
        a failure is only a warning (the daemon serves without egress)."""
        encoded = config.get_variable(ENVIRONMENT_VARIABLE)
        if encoded:
            self._startup = asyncio.get_running_loop().create_task(self._start(encoded))

    async def _start(self, encoded: str) -> None:
        try:
            await self.configure(parse_config(encoded))
        except ApiError as e:
            log.warning("WireGuard tunnel from %s not started: %s", ENVIRONMENT_VARIABLE, e.message)

    async def close(self) -> None:
        """Stop a start-up still in progress. A tunnel that is up stays up: it is the
        kernel's, and the sandbox's egress outlives a restart or an upgrade."""
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._startup

    async def configure(self, tunnel: TunnelConfig) -> None:
        """Replace the running tunnel (if any) by one with this configuration."""
        wg, ip = config.find_program("wg"), config.find_program("ip")
        missing = [name for name, path in (("wg", wg), ("ip", ip)) if path is None]
        if wg is None or ip is None:
            raise NotSupported(
                f"WireGuard tunnels need the wg and ip programs; not installed in this sandbox: {', '.join(missing)}"
            )
        async with self._lock:
            if self._active is not None:
                try:
                    await self._teardown(ip, self._active)
                except Internal as e:
                    message = f"failed to apply tunnel config: failed to stop existing WireGuard client: {e.message}"
                    raise Internal(message) from None
                self._active = None
            try:
                pinned = await self._bring_up(wg, ip, tunnel)
            except Internal as e:
                raise Internal(f"failed to apply tunnel config: {e.message}") from None
            self._active = _Active(tunnel, pinned)
        log.info(
            "WireGuard tunnel %s up: address %s, peer %s", tunnel.interface_name, tunnel.local_ip, tunnel.peer_endpoint
        )

    async def stop(self) -> None:
        async with self._lock:
            if self._active is None:
                raise Invalid("no WireGuard client is running")
            ip = config.find_program("ip")
            if ip is None:
                raise NotSupported(
                    "stopping the WireGuard tunnel needs the ip program, which is not installed in this sandbox"
                )
            try:
                await self._teardown(ip, self._active)
            except Internal as e:
                raise Internal(f"failed to stop WireGuard client: {e.message}") from None
            self._active = None
        log.warning("WireGuard tunnel disconnected: the sandbox has no egress through it any more")

    # --- the steps ------------------------------------------------------------------

    async def _bring_up(self, wg: str, ip: str, tunnel: TunnelConfig) -> str | None:
        name = tunnel.interface_name
        secret = tunnel.private_key
        if await asyncio.to_thread(_is_wireguard, name):
            # Left by an earlier life of the daemon: "replace the tunnel" includes it.
            await self._helper(ip, "link", "del", "dev", name, secret=secret)
        await self._helper(ip, "link", "add", "dev", name, "type", "wireguard", secret=secret)
        pinned = None
        try:
            path = await asyncio.to_thread(_write_secret_file, tunnel.wg_config())
            try:
                await self._helper(wg, "setconf", name, path, secret=secret)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            await self._helper(ip, "address", "add", tunnel.local_ip, "dev", name, secret=secret)
            await self._helper(ip, "link", "set", "dev", name, "mtu", str(tunnel.mtu), "up", secret=secret)
            if tunnel.route_all:
                pinned = await self._pin_peer(ip, tunnel)
            for destination in tunnel.routes():
                await self._helper(ip, "route", "replace", destination, "dev", name, secret=secret)
        except OSError as e:  # the configuration file could not be written
            await self._teardown(ip, _Active(tunnel, pinned), check=False)
            raise Internal(f"writing the wg configuration: {e}") from None
        except Internal:
            # Only what this call created is removed (never a link it did not add).
            await self._teardown(ip, _Active(tunnel, pinned), check=False)
            raise
        return pinned

    async def _pin_peer(self, ip: str, tunnel: TunnelConfig) -> str:
        """Route the peer through the current gateway, so that the tunnel's own packets
        do not enter the tunnel once everything else does."""
        host, port = split_host_port(tunnel.peer_endpoint)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)
            except OSError as e:
                raise Internal(f"cannot resolve peer endpoint {host}: {e}") from None
            address = ipaddress.ip_address(infos[0][4][0])
        route = await self._helper(ip, "route", "get", str(address), secret=tunnel.private_key)
        words = route.split()
        target = f"{address}/{address.max_prefixlen}"
        argv = ["route", "replace", target]
        for keyword in ("via", "dev"):
            if keyword in words[:-1]:
                argv += [keyword, words[words.index(keyword) + 1]]
        await self._helper(ip, *argv, secret=tunnel.private_key)
        return target

    async def _teardown(self, ip: str, active: _Active, *, check: bool = True) -> None:
        # Deleting the link takes its addresses and routes with it.
        secret = active.config.private_key
        await self._helper(ip, "link", "del", "dev", active.config.interface_name, secret=secret, check=check)
        if active.pinned:
            await self._helper(ip, "route", "del", active.pinned, secret=secret, check=False)

    async def _helper(self, program: str, *args: str, secret: str, check: bool = True) -> str:
        """Run a helper; its stdout, or `Internal` naming the step (keys redacted)."""
        argv = [program, *args]
        step = " ".join([os.path.basename(program), *args[:2]])
        try:
            done = await self.children.run(argv, timeout=self.timeout, env=config.child_environment())
        except OSError as e:
            if check:
                raise Internal(f"{step}: {e}") from None
            return ""
        except TimeoutError:
            if check:
                raise Internal(f"{step}: timed out after {self.timeout:g}s") from None
            return ""
        if done.returncode != 0 and check:
            raise Internal(f"{step}: {done.output().replace(secret, '[REDACTED]')}")
        return done.stdout.decode("utf-8", "replace")


def _is_wireguard(interface: str) -> bool:
    try:
        with open(f"/sys/class/net/{interface}/uevent", encoding="utf-8", errors="replace") as f:
            return "DEVTYPE=wireguard" in f.read().split()
    except OSError:
        return False


def _write_secret_file(content: str) -> str:
    """A new file only we can read (mkstemp creates it 0600) holding `content`."""
    fd, path = tempfile.mkstemp(prefix="sandbox-api-wg-", suffix=".conf")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
    except OSError:
        os.unlink(path)
        raise
    return path
