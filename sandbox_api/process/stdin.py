"""A managed process's stdin pipe: written without blocking the loop (a full pipe waits
until the child reads), closed once, and every waiting writer woken when it goes away."""

from __future__ import annotations

import asyncio
import os

from ..errors import Conflict
from .managed import ManagedProcess, settle


def check_open(proc: ManagedProcess, identifier: str) -> None:
    """Raise unless the process has an open stdin pipe."""
    if proc.stdin_fd < 0:
        raise Conflict(
            f"process with Identifier {identifier} has no open stdin "
            "(not started with stdin: true, already closed, or it has ended)"
        )


async def write(proc: ManagedProcess, identifier: str, data: bytes) -> int:
    check_open(proc, identifier)
    view = memoryview(data)
    loop = asyncio.get_running_loop()
    while view:
        fd = proc.stdin_fd
        if fd < 0:
            raise Conflict(f"stdin of process with Identifier {identifier} was closed")
        try:
            view = view[os.write(fd, view) :]
            continue
        except BlockingIOError:
            pass
        except BrokenPipeError:
            raise Conflict(f"process with Identifier {identifier} no longer reads its stdin") from None
        # The pipe is full: wait until the child reads, or the pipe goes away.
        writable = loop.create_future()
        loop.add_writer(fd, settle, writable)
        proc.stdin_waiters.add(writable)
        try:
            await writable
        finally:
            proc.stdin_waiters.discard(writable)
            if proc.stdin_fd == fd:
                loop.remove_writer(fd)
    return len(data)


def close(proc: ManagedProcess) -> None:
    if proc.stdin_fd >= 0:
        asyncio.get_running_loop().remove_writer(proc.stdin_fd)
        os.close(proc.stdin_fd)
        proc.stdin_fd = -1
    for waiter in proc.stdin_waiters:
        if not waiter.done():
            waiter.set_result(None)
