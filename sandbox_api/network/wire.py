"""The network endpoints' wire shapes (see contract.py): ports, port monitors, the tunnel."""

from __future__ import annotations

from typing import Annotated

from ..contract import Shape, doc

ENVIRONMENT_VARIABLE = "BL_NETWORKING_CONFIG"  # a tunnel's configuration at start, as the body's `config`


class Port(Shape, omit_defaults=False):
    """A socket of the process tree."""

    pid: Annotated[int, doc("The process holding the socket.")]
    protocol: Annotated[str, doc("`tcp`, `tcp6`, `udp` or `udp6`.")]
    local_addr: str
    local_port: int
    remote_addr: Annotated[str, doc('`""` for a listening socket.')]
    remote_port: int
    state: Annotated[str, doc("ss names: LISTEN, ESTAB, UNCONN...")]
    process_name: str


class PortsResponse(Shape, omit_defaults=False):
    pid: int
    ports: list[Port]


class PortMonitorRequest(Shape):
    callback: Annotated[
        str | None, doc('An http(s) URL: `POST callback {"pid", "port"}` for each new local port of the tree.')
    ] = None


class TunnelConfigRequest(Shape):
    # Required, but an explicit null or "" is refused with the original's `config is required`.
    config: Annotated[
        str | None,
        doc(
            "Base64 of a JSON object (`TunnelSettings`): local_ip (CIDR), peer_endpoint (host:port), "
            "peer_public_key, private_key, and optionally mtu, listen_port, interface_name, allowed_ips, "
            "persistent_keepalive, route_all. Required: null or empty is refused."
        ),
    ]


class TunnelSettings(Shape, rename=None):
    """The decoded `config` of the tunnel (snake_case keys, as the original's): null or
    absent fields take their defaults."""

    local_ip: Annotated[str | None, doc("This end's address, in CIDR notation (`10.0.0.2/32`).")] = None
    peer_endpoint: Annotated[str | None, doc("The peer, `host:port` (`[v6]:port`).")] = None
    peer_public_key: Annotated[str | None, doc("Base64 of 32 bytes.")] = None
    private_key: Annotated[str | None, doc("Base64 of 32 bytes; never logged nor repeated in errors.")] = None
    mtu: Annotated[int | None, doc("68 to 65535 (0: 1420).")] = None
    listen_port: Annotated[int | None, doc("1 to 65535 (0: 51820).")] = None
    interface_name: Annotated[str | None, doc("Default `wg0`.")] = None
    allowed_ips: Annotated[list[str] | None, doc("CIDR ranges sent into the tunnel (default 0.0.0.0/0).")] = None
    persistent_keepalive: Annotated[int | None, doc("Seconds, 0 to 65535 (0: off; default 25).")] = None
    route_all: Annotated[bool | None, doc("Route the default ranges through the tunnel too.")] = None
