"""The WireGuard tunnel's configuration: the JSON the API takes (base64 or plain), checked
field by field with the original's messages, and what it renders to (`wg` config, routes).
Keys are never shown: no message quotes one."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..contract import convert, decode_json
from ..errors import Invalid, Unprocessable
from .wire import TunnelSettings

DEFAULT_MTU = 1420
DEFAULT_LISTEN_PORT = 51820
DEFAULT_INTERFACE = "wg0"
DEFAULT_ALLOWED_IPS = ("0.0.0.0/0",)
DEFAULT_KEEPALIVE = 25
HELPER_TIMEOUT = 10.0

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
