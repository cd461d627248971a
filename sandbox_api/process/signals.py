"""Signals to a managed process's whole tree: found by its cookie (members that left its
process group included), else its process group; a stop's escalation to SIGKILL; and
waiting until a killed tree is gone."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from ..linux import tree
from . import adoption
from .managed import ManagedProcess

log = logging.getLogger("sandbox_api.process")

KILL_WAIT = 2.0


def signal_tree(proc: ManagedProcess, sig: int) -> set[int]:
    """Send `sig` to the tree of the current run; the pids it reached."""
    root = proc.record.os_pid if proc.record.running else None
    reached = tree.signal_tree(root, proc.cookie, sig)
    if not reached and root is not None:
        try:
            os.killpg(root, sig)
            reached = {root}
        except OSError:
            pass
    return reached


def escalate(proc: ManagedProcess) -> None:
    """A stopped tree still alive after the grace period is killed."""
    proc.escalation = None
    root = proc.record.os_pid if proc.record.running or proc.child is not None else None
    if tree.signal_tree(root, proc.cookie, signal.SIGKILL):
        log.info("process %s ignored SIGTERM: killed", proc.record.name)


async def wait_gone(pids: set[int]) -> None:
    """Return once none of `pids` is alive (so that, for instance, their ports are free),
    or after KILL_WAIT at most."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KILL_WAIT
    while any(adoption.start_ticks(pid) for pid in pids) and loop.time() < deadline:
        await asyncio.sleep(0.005)
