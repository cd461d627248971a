"""Which sockets a process tree owns: the one detection module, shared by the ports
endpoint, the port monitors and `waitForPorts`.

- Full listings (every state, with peers) come from psutil, which reads the socket
  tables and maps each socket to its process; about 10 ms on this kind of machine,
  fine for a request or a 500 ms monitor tick.
- "Is anyone serving port N?", which `waitForPorts` asks ten times a second, asks the
  kernel's sock_diag for listening sockets only (half a millisecond), and maps just
  the candidate sockets to pids through /proc/<pid>/fd of the tree. Idle cost stays
  negligible. Without netlink, psutil answers instead.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any

from ..linux import sock_diag, tree

_SS_STATES = {
    "ESTABLISHED": "ESTAB",
    "SYN_SENT": "SYN-SENT",
    "SYN_RECV": "SYN-RECV",
    "FIN_WAIT1": "FIN-WAIT-1",
    "FIN_WAIT2": "FIN-WAIT-2",
    "TIME_WAIT": "TIME-WAIT",
    "CLOSE": "CLOSE",
    "CLOSE_WAIT": "CLOSE-WAIT",
    "LAST_ACK": "LAST-ACK",
    "LISTEN": "LISTEN",
    "CLOSING": "CLOSING",
}


def routable(address: str) -> bool:
    """Reachable from outside the sandbox: any address but loopback."""
    try:
        return not ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return True


@dataclass(frozen=True)
class PortInfo:
    pid: int
    protocol: str
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    state: str
    process_name: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "protocol": self.protocol,
            "localAddr": self.local_addr,
            "localPort": self.local_port,
            "remoteAddr": self.remote_addr,
            "remotePort": self.remote_port,
            "state": self.state,
            "processName": self.process_name,
        }


def tree_pids(root: int, procs: dict[int, tree.ProcInfo] | None = None) -> set[int]:
    """`root` and all its descendants (empty if `root` does not exist); `procs` is a
    `tree.snapshot()` to reuse."""
    procs = tree.snapshot() if procs is None else procs
    return {root} | tree.descendants(root, procs) if root in procs else set()


def process_name(pid: int) -> str:
    import psutil

    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return ""


def _state(connection: Any) -> str:
    if connection.type == 2:  # SOCK_DGRAM
        return "ESTAB" if connection.raddr else "UNCONN"
    return _SS_STATES.get(connection.status, connection.status)


def all_connections() -> list[Any]:
    """Every inet socket with its owning pid (one scan for all callers of a tick)."""
    import psutil

    try:
        return psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return []


def ports_of(pids: set[int], connections: list[Any] | None = None) -> list[PortInfo]:
    """Sockets owned by `pids`, one per local port (listeners first), sorted by port."""
    connections = all_connections() if connections is None else connections
    by_port: dict[int, PortInfo] = {}
    names: dict[int, str] = {}
    for c in connections:
        if c.pid not in pids or not c.laddr:
            continue
        info = PortInfo(
            pid=c.pid,
            protocol="udp" if c.type == 2 else "tcp",
            local_addr=c.laddr.ip,
            local_port=c.laddr.port,
            remote_addr=c.raddr.ip if c.raddr else "",
            remote_port=c.raddr.port if c.raddr else 0,
            state=_state(c),
            process_name=names.setdefault(c.pid, process_name(c.pid)),
        )
        known = by_port.get(info.local_port)
        if known is None or (known.state not in ("LISTEN", "UNCONN") and info.state in ("LISTEN", "UNCONN")):
            by_port[info.local_port] = info
    return [by_port[port] for port in sorted(by_port)]


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
    """The ports of `wanted` served on a routable address by some pid of `pids`."""
    found = sock_diag.listeners()
    if found is None:
        return {
            p.local_port
            for p in ports_of(pids)
            if p.state in ("LISTEN", "UNCONN") and p.local_port in wanted and routable(p.local_addr)
        }
    candidates = [s for s in found if s.port in wanted and routable(s.address)]
    if not candidates:
        return set()
    owners = socket_owners(pids, {s.inode for s in candidates})
    return {s.port for s in candidates if s.inode in owners}
