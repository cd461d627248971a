"""Which sockets a process tree owns, read from /proc (no `ss` or `netstat` needed).

The socket tables (/proc/net/{tcp,tcp6,udp,udp6}) are parsed once per poll, and only
the sockets that could matter are mapped to pids through /proc/<pid>/fd, for the pids
of the tree only. So a poll for a port nobody listens on costs one read of the tables.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

_TCP_STATES = {
    "01": "ESTAB",
    "02": "SYN-SENT",
    "03": "SYN-RECV",
    "04": "FIN-WAIT-1",
    "05": "FIN-WAIT-2",
    "06": "TIME-WAIT",
    "07": "CLOSE",
    "08": "CLOSE-WAIT",
    "09": "LAST-ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}
_TABLES = (("tcp", "tcp", 4), ("tcp6", "tcp", 6), ("udp", "udp", 4), ("udp6", "udp", 6))


@dataclass(frozen=True)
class Socket:
    protocol: str  # "tcp" | "udp"
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    state: str  # ss spelling: LISTEN, ESTAB, UNCONN, ...
    inode: int

    @property
    def serving(self) -> bool:
        """A server socket: listening TCP, or unconnected UDP."""
        return self.state in ("LISTEN", "UNCONN", "")

    @property
    def routable(self) -> bool:
        """Reachable from outside the sandbox: any address but loopback."""
        try:
            return not ipaddress.ip_address(self.local_addr).is_loopback
        except ValueError:
            return True


def _decode_address(hex_addr: str, family: int) -> str:
    raw = bytes.fromhex(hex_addr)
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    # IPv6: four 32-bit words, each in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    addr = ipaddress.IPv6Address(words)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)


def read_sockets(proc_root: str = "/proc/net") -> list[Socket]:
    sockets: list[Socket] = []
    for table, protocol, family in _TABLES:
        try:
            with open(f"{proc_root}/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            local, remote, state_hex, inode = parts[1], parts[2], parts[3], parts[9]
            try:
                local_hex, local_port = local.split(":")
                remote_hex, remote_port = remote.split(":")
                if protocol == "udp":
                    state = "UNCONN" if state_hex == "07" else "ESTAB" if state_hex == "01" else _TCP_STATES.get(state_hex, "")
                else:
                    state = _TCP_STATES.get(state_hex, "")
                remote_port_n = int(remote_port, 16)
                remote_addr = _decode_address(remote_hex, family)
                if remote_port_n == 0 and state in ("LISTEN", "UNCONN"):
                    remote_addr = ""
                sockets.append(
                    Socket(
                        protocol=protocol,
                        local_addr=_decode_address(local_hex, family),
                        local_port=int(local_port, 16),
                        remote_addr=remote_addr,
                        remote_port=remote_port_n,
                        state=state,
                        inode=int(inode),
                    )
                )
            except (ValueError, OSError):
                continue
    return sockets


def socket_owners(pids: set[int], inodes: set[int]) -> dict[int, int]:
    """Map each wanted socket inode to the pid (among `pids`) that holds it."""
    owners: dict[int, int] = {}
    if not inodes:
        return owners
    for pid in sorted(pids):
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in inodes:
                    owners.setdefault(inode, pid)
        if len(owners) == len(inodes):
            break
    return owners


def serving_ports(pids: set[int], wanted: set[int]) -> set[int]:
    """The ports of `wanted` served by some pid of `pids` on a routable address."""
    candidates = [s for s in read_sockets() if s.local_port in wanted and s.serving and s.routable]
    if not candidates:
        return set()
    owners = socket_owners(pids, {s.inode for s in candidates})
    return {s.local_port for s in candidates if s.inode in owners}


def process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""
