"""The WireGuard egress tunnel: configure it, bring it up, take it down.

The original runs a userspace WireGuard inside the daemon. Here the kernel's WireGuard
does the work, driven by `wg` and `ip`; a sandbox without them answers 501. The keys
never leave this module: no log line or error message shows one (helper output is
redacted too), and they reach `wg` only through a 0600 file removed right after.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import json
import logging
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field
from typing import Any

from .. import config
from ..contract import convert, decode_json
from ..errors import ApiError, Internal, Invalid, NotSupported, Unprocessable
from ..linux.children import Children
from .wire import TunnelSettings

log = logging.getLogger("sandbox_api.tunnel")

DEFAULT_MTU = 1420
DEFAULT_LISTEN_PORT = 51820
DEFAULT_INTERFACE = "wg0"
DEFAULT_ALLOWED_IPS = ("0.0.0.0/0",)
DEFAULT_KEEPALIVE = 25
HELPER_TIMEOUT = 10.0
ENVIRONMENT_VARIABLE = "BL_NETWORKING_CONFIG"

_INTERFACE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # IFNAMSIZ is 16, NUL included
# Halves of each address space: together they route everything through the tunnel
# without replacing the default route (which the tunnel's own packets still use).
_SPLIT_DEFAULT = {4: ("0.0.0.0/1", "128.0.0.0/1"), 6: ("::/1", "8000::/1")}


@dataclass(frozen=True)
class TunnelConfig:
    local_ip: str
    peer_endpoint: str
    peer_public_key: str
    private_key: str = field(repr=False)
    mtu: int = DEFAULT_MTU
    listen_port: int = DEFAULT_LISTEN_PORT
    interface_name: str = DEFAULT_INTERFACE
    allowed_ips: tuple[str, ...] = DEFAULT_ALLOWED_IPS
    persistent_keepalive: int = DEFAULT_KEEPALIVE  # 0: off
    route_all: bool = False

    def wg_config(self) -> str:
        """The `wg setconf` file (secret: it holds the private key)."""
        lines = [
            "[Interface]",
            f"PrivateKey = {self.private_key}",
            f"ListenPort = {self.listen_port}",
            "",
            "[Peer]",
            f"PublicKey = {self.peer_public_key}",
            f"Endpoint = {self.peer_endpoint}",
            f"AllowedIPs = {', '.join(self.allowed_ips)}",
        ]
        if self.persistent_keepalive:
            lines.append(f"PersistentKeepalive = {self.persistent_keepalive}")
        return "\n".join(lines) + "\n"

    def routes(self) -> list[str]:
        """Destinations routed into the tunnel: every allowed range but the default
        ones, which only `route_all` asks for (as two halves of the address space)."""
        networks = [ipaddress.ip_interface(cidr).network for cidr in self.allowed_ips]
        routes = [str(n) for n in networks if n.prefixlen > 0]
        if self.route_all:
            families = sorted({n.version for n in networks if n.prefixlen == 0}) or [4]
            routes += [half for version in families for half in _SPLIT_DEFAULT[version]]
        return routes


def _invalid(reason: str) -> Unprocessable:
    return Unprocessable(f"invalid tunnel config: {reason}")


def parse_config(encoded: str) -> TunnelConfig:
    """The base64 JSON config, decoded, defaulted and validated. Raises `Unprocessable`
    (422, `invalid tunnel config: ...`) whose message never holds a key."""
    try:
        raw = base64.b64decode(encoded.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError) as e:
        raise _invalid(f"failed to decode base64 configuration: {e}") from None
    try:
        data = decode_json(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"failed to parse JSON configuration: {e}") from None
    # The original's words for these two (the shape's would name `allowed_ips[0]`).
    if not isinstance(data, dict):
        raise _invalid("failed to parse JSON configuration: expected a JSON object")
    ips = data.get("allowed_ips")
    if isinstance(ips, list) and not all(isinstance(ip, str) for ip in ips):
        raise _invalid("failed to parse JSON configuration: field allowed_ips must be an array of strings")
    try:
        settings = convert(data, TunnelSettings, "failed to parse JSON configuration")
    except Invalid as e:  # names the field, never its value
        raise _invalid(e.message) from None
    values: dict[str, Any] = {
        "local_ip": settings.local_ip or "",
        "peer_endpoint": settings.peer_endpoint or "",
        "peer_public_key": settings.peer_public_key or "",
        "private_key": settings.private_key or "",
        "mtu": settings.mtu or DEFAULT_MTU,
        "listen_port": settings.listen_port or DEFAULT_LISTEN_PORT,
        "interface_name": settings.interface_name or DEFAULT_INTERFACE,
        "allowed_ips": tuple(settings.allowed_ips or DEFAULT_ALLOWED_IPS),
        "persistent_keepalive": (
            DEFAULT_KEEPALIVE if settings.persistent_keepalive is None else settings.persistent_keepalive
        ),
        "route_all": bool(settings.route_all),
    }
    try:
        _validate(values)
    except ValueError as e:
        raise _invalid(f"invalid configuration: {e}") from None
    return TunnelConfig(**values)


def _validate(c: dict[str, Any]) -> None:
    """The original's checks, in its order (plus range checks on ports, keepalive and
    the interface name, which `ip` and `wg` would reject later less clearly)."""
    if not c["local_ip"]:
        raise ValueError("local_ip is required")
    if not _is_cidr(c["local_ip"]):
        raise ValueError(
            f"local_ip must be in CIDR notation (e.g., 10.0.0.1/32): invalid CIDR address: {c['local_ip']}"
        )
    if not c["peer_endpoint"]:
        raise ValueError("peer_endpoint is required")
    problem = _endpoint_problem(c["peer_endpoint"])
    if problem:
        raise ValueError(f"peer_endpoint must be in host:port format (e.g., 1.2.3.4:51820): {problem}")
    for key in ("peer_public_key", "private_key"):
        if not c[key]:
            raise ValueError(f"{key} is required")
        problem = _key_problem(c[key])
        if problem:
            raise ValueError(f"invalid {key}: {problem}")
    for cidr in c["allowed_ips"]:
        if not _is_cidr(cidr):
            raise ValueError(f"invalid allowed_ip {json.dumps(cidr)}: invalid CIDR address")
    if not 68 <= c["mtu"] <= 65535:
        raise ValueError(f"mtu must be between 68 and 65535, got {c['mtu']}")
    if not 0 < c["listen_port"] <= 65535:
        raise ValueError(f"listen_port must be between 1 and 65535, got {c['listen_port']}")
    if not 0 <= c["persistent_keepalive"] <= 65535:
        raise ValueError(f"persistent_keepalive must be between 0 and 65535, got {c['persistent_keepalive']}")
    name = c["interface_name"]
    if not _INTERFACE_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError("interface_name must be 1 to 15 letters, digits, '.', '-' or '_'")


def _is_cidr(value: str) -> bool:
    address, sep, prefix = value.partition("/")
    if not sep or not (prefix.isascii() and prefix.isdigit()):
        return False
    try:
        ipaddress.ip_interface(f"{address}/{int(prefix)}")
    except ValueError:
        return False
    return True


def split_host_port(endpoint: str) -> tuple[str, str]:
    """Go's net.SplitHostPort: `host:port` or `[v6]:port`. Raises ValueError."""
    if endpoint.startswith("["):
        end = endpoint.find("]")
        if end < 0:
            raise ValueError("missing ']' in address")
        if not endpoint[end + 1 :].startswith(":"):
            raise ValueError("missing port in address")
        return endpoint[1:end], endpoint[end + 2 :]
    host, sep, port = endpoint.rpartition(":")
    if not sep:
        raise ValueError("missing port in address")
    if ":" in host:
        raise ValueError("too many colons in address")
    return host, port


def _endpoint_problem(endpoint: str) -> str | None:
    try:
        host, port = split_host_port(endpoint)
    except ValueError as e:
        return f"address {endpoint}: {e}"
    if not host:
        return f"address {endpoint}: missing host"
    if not (port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
        return f"address {endpoint}: invalid port"
    return None


def _key_problem(key: str) -> str | None:
    """A WireGuard key is the canonical base64 of 32 bytes (what `wg` accepts)."""
    try:
        decoded = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return "not valid base64"
    if len(decoded) != 32:
        return f"expected 32 bytes, got {len(decoded)}"
    if base64.b64encode(decoded).decode() != key:
        return "not valid base64"
    return None


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
