"""The scale-to-zero control file: `+` while a keepAlive process runs, `-` when it ends.

The platform reads this file to keep the sandbox awake. Every `+` must be matched by
exactly one `-`, whatever the way the process ends (exit, stop, kill, timeout).
"""

from __future__ import annotations

import fcntl
import logging
import os

log = logging.getLogger("sandbox_api.keepalive")


class ScaleFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def _write(self, token: str) -> None:
        if not self.path or not os.path.isdir(os.path.dirname(self.path) or "/"):
            return  # not on a platform that scales to zero
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            log.warning("scale file %s: %s", self.path, e)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.pwrite(fd, token.encode(), 0)
        except OSError as e:
            log.warning("scale file %s: %s", self.path, e)
        finally:
            os.close(fd)

    def reset(self) -> None:
        self._write("=0")

    def hold(self) -> None:
        self._write("+")

    def release(self) -> None:
        self._write("-")
