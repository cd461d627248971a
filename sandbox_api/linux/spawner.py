"""posix_spawn off the event loop's thread.

posix_spawn is vfork + exec: the caller is held until the child has exec'd (~0.5 ms for
`/bin/sh` on this kind of machine), and `os.posix_spawn` keeps the GIL meanwhile. At 32
concurrent execs the loop stood still for more than half of its time. `_native` runs
each posix_spawn on a thread of its own that never takes the GIL and reports
`{id, pid, errno}` on a pipe the loop reads, so the loop serves other requests while a
child execs.

Hand-written because nothing on offer spawns without holding its caller: asyncio's
subprocess transport and `os.posix_spawn` both block the loop for the exec, and a
Python thread pool would hand the GIL back and forth (a worker waits up to the 5 ms
switch interval for it while the loop is busy).

The thread is one per process. The first event loop that asks owns it (tests run one
loop after another); while it runs, another loop gets False from `claim` and spawns
with `os.posix_spawn`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import struct
from collections.abc import Sequence

from . import _native

log = logging.getLogger("sandbox_api.spawner")

_RESULT = struct.Struct("=Qii")  # spawner_main's spawn_result: id, pid, errno
_READ_SIZE = _RESULT.size * 256


class Spawner:
    def __init__(self) -> None:
        self._read = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._ids = itertools.count(1)
        self._unavailable = False  # the thread could not start: spawn as before, warn once

    def claim(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Read the thread's answers on `loop`; False when another running loop does."""
        if self._loop is loop:
            return True
        if self._unavailable or (self._loop is not None and not self._loop.is_closed()):
            return False
        if self._read < 0:
            read, write = os.pipe2(os.O_CLOEXEC)
            try:
                _native.spawner_start(write)
            except (OSError, RuntimeError, AttributeError) as e:  # AttributeError: an older _native build
                os.close(read)
                os.close(write)
                log.warning("no spawner thread (%s): execs hold the event loop while they start", e)
                self._unavailable = True
                return False
            os.set_blocking(read, False)
            self._read = read
        self._loop = loop
        self._pending.clear()  # a closed loop's: their children are reaped by the sweep
        loop.add_reader(self._read, self._answers)
        return True

    def release(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:
            return
        if not loop.is_closed():
            loop.remove_reader(self._read)
        self._loop = None

    async def spawn(
        self,
        argv: Sequence[str],
        env: Sequence[bytes],
        dup2s: Sequence[tuple[int, int]],
        cwd: str | None,
        *,
        setsid: bool,
        setpgroup: int,
        sigdef: Sequence[int],
    ) -> int:
        """The child's pid once it has exec'd. Raises OSError as os.posix_spawn does."""
        assert self._loop is not None
        job = next(self._ids)
        answer = self._loop.create_future()
        self._pending[job] = answer
        try:
            _native.spawn_submit(job, argv[0], argv, env, dup2s, cwd, setsid, setpgroup, sigdef)
        except BaseException:
            del self._pending[job]
            raise
        try:
            return await answer
        except OSError as e:  # named as os.posix_spawn names it
            raise OSError(e.errno, e.strerror, argv[0]) from None

    def _answers(self) -> None:
        try:
            data = os.read(self._read, _READ_SIZE)  # whole records: each was one atomic write
        except BlockingIOError:
            return
        for job, pid, error in _RESULT.iter_unpack(data):
            answer = self._pending.pop(job, None)
            if answer is None or answer.done():
                # Its caller is gone (cancelled): nobody would ever track this child.
                if pid > 0:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                continue
            if error:
                answer.set_exception(OSError(error, os.strerror(error)))
            else:
                answer.set_result(pid)


SPAWNER = Spawner()
