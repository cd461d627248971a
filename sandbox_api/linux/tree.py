"""Find and signal the whole tree of a managed process.

A process group alone misses members that called setsid/setpgid, and once the shell
dies its descendants are re-parented to us and the parent links are gone. So the
tree is the union of: the descendants of the current OS pid, the members of its
process group, and every process whose initial environment carries the cookie the
daemon gave the command (see `config.PROCESS_COOKIE`).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgrp: int
    state: str
    session: int


def stat_fields(pid: int | str) -> list[bytes]:
    """Fields of /proc/<pid>/stat after the command name (state is [0], ppid [1],
    start time [19]); [] if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return []


def snapshot() -> dict[int, ProcInfo]:
    """Every visible process, from /proc/<pid>/stat."""
    procs: dict[int, ProcInfo] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = stat_fields(name)
        try:
            procs[int(name)] = ProcInfo(int(name), int(fields[1]), int(fields[2]), fields[0].decode(), int(fields[3]))
        except (IndexError, ValueError):
            continue
    return procs


def descendants(root: int, procs: dict[int, ProcInfo] | None = None) -> set[int]:
    procs = procs if procs is not None else snapshot()
    children: dict[int, list[int]] = {}
    for info in procs.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def has_cookie(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data.startswith(needle) or (b"\0" + needle) in data


def tree_members(root: int | None, cookie: str | None, procs: dict[int, ProcInfo] | None = None) -> set[int]:
    """Live (non-zombie) pids that belong to the tree of `root`, excluding ourselves."""
    procs = procs if procs is not None else snapshot()
    members: set[int] = set()
    if root is not None and root in procs:
        members.add(root)
        members |= descendants(root, procs)
        group = procs[root].pgrp
        if group == root:
            members |= {p.pid for p in procs.values() if p.pgrp == group}
    if cookie:
        needle = cookie.encode() + b"\0"
        for pid in procs:
            if pid not in members and has_cookie(pid, needle):
                members.add(pid)
    me = os.getpid()
    members.discard(me)
    members.discard(1)
    return {pid for pid in members if pid in procs and procs[pid].state not in ("Z", "X")}


def kill_session(session: int) -> set[int]:
    """SIGKILL every live process of a session (a terminal's shell and all it started)."""
    members = {p.pid for p in snapshot().values() if p.session == session and p.state not in ("Z", "X")}
    members.discard(os.getpid())
    return _send(members, signal.SIGKILL)


def _send(pids: set[int], sig: int) -> set[int]:
    delivered: set[int] = set()
    for pid in pids:
        try:
            os.kill(pid, sig)
            delivered.add(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return delivered


def signal_tree(root: int | None, cookie: str | None, sig: int) -> set[int]:
    """Send `sig` to every member of the tree; return the pids it reached.

    For SIGKILL the tree is frozen first (SIGSTOP) and collected again until no new
    member appears, so a process that forks in a loop cannot outrun the kill.
    """
    if sig != signal.SIGKILL:
        return _send(tree_members(root, cookie), sig)
    stopped: set[int] = set()
    for _ in range(50):
        members = tree_members(root, cookie) - stopped
        if not members:
            break
        stopped |= _send(members, signal.SIGSTOP)
    return _send(stopped | tree_members(root, cookie), signal.SIGKILL)
