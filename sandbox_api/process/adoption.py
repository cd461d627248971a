"""Processes started by an earlier daemon (a crash, `kill -9`, an upgrade's exec): is
the pid still the process we started, and how to learn its exit code."""

from __future__ import annotations

import asyncio
import os

from ..linux import tree
from ..linux.children import Children
from ..linux.reaper import zombie_exit_code
from .managed import settle
from .records import ProcessRecord

ADOPTED_POLL_INTERVAL = 0.5


def start_ticks(pid: int) -> int:
    """Start time of `pid` in clock ticks since boot (0 if gone or a zombie)."""
    fields = tree.stat_fields(pid)
    if not fields or fields[0] in (b"Z", b"X"):
        return 0
    return int(fields[19])


def same_process(record: ProcessRecord, cookie: str) -> bool:
    """Is `record.os_pid` still the process we started (pids get reused)?"""
    if record.os_pid <= 0:
        return False
    ticks = start_ticks(record.os_pid)
    if not ticks:
        return False
    if record.os_start_ticks:
        return ticks == record.os_start_ticks
    # Killed before the start time was noted: look for our cookie in its environment.
    return tree.has_cookie(record.os_pid, cookie.encode() + b"\0")


async def wait_adopted(children: Children, pid: int, ticks: int) -> int | None:
    """Wait for a process started by an earlier daemon: its exit code when we can learn it.

    After an in-place re-exec it is still our child; otherwise its exit code can be
    read while it is a zombie of another parent; else it is unknowable.
    """
    child = children.adopt(pid)
    if child is not None:
        return await child.wait()
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    if pidfd >= 0:
        exited = loop.create_future()
        loop.add_reader(pidfd, settle, exited)
        try:
            await exited
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        return zombie_exit_code(pid)
    while start_ticks(pid) == ticks:
        await asyncio.sleep(ADOPTED_POLL_INTERVAL)
    return None
