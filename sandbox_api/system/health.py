"""What /health reports: version, build, uptime, upgrades."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .. import __version__

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_MACHINE = os.uname().machine.lower()  # (the platform module costs 4 ms to import)

try:  # written by the binary build; absent in a source checkout
    from .._build import BUILD_TIME, GIT_COMMIT
except ImportError:
    GIT_COMMIT = "unknown"
    BUILD_TIME = "unknown"


def go_duration(seconds: float) -> str:
    """Go's time.Duration format after rounding to whole seconds: 0s, 45s, 3m5s, 2h0m7s."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@dataclass
class UpgradeStatus:
    status: str = "idle"
    step: str = "none"
    version: str = ""
    last_attempt: str = ""
    error: str = ""
    download_url: str = ""
    binary_path: str = ""
    bytes_downloaded: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "step": self.step, "version": self.version}
        optional = {
            "lastAttempt": self.last_attempt,
            "error": self.error,
            "downloadUrl": self.download_url,
            "binaryPath": self.binary_path,
            "bytesDownloaded": self.bytes_downloaded,
        }
        out.update({k: v for k, v in optional.items() if v})
        return out


@dataclass
class Health:
    upgrade_count: int = 0
    started: float = field(default_factory=time.time)
    last_upgrade: UpgradeStatus = field(default_factory=UpgradeStatus)

    def report(self) -> dict[str, Any]:
        uptime = time.time() - self.started
        return {
            "status": "ok",
            "version": __version__,
            "gitCommit": GIT_COMMIT,
            "buildTime": BUILD_TIME,
            "goVersion": f"python{sys.version.split()[0]}",
            "os": "linux",
            "arch": _ARCH.get(_MACHINE, _MACHINE),
            "uptime": go_duration(uptime),
            "uptimeSeconds": round(uptime, 3),
            "upgradeCount": self.upgrade_count,
            "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "lastUpgrade": self.last_upgrade.to_dict(),
        }
