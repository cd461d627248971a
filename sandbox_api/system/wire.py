"""The system endpoints' wire shapes (see contract.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from ..contract import Shape, doc


class Welcome(Shape, omit_defaults=False):
    message: str
    documentation: str
    description: str


class UpgradeStatus(Shape):
    """The last upgrade attempt."""

    status: Literal["idle", "running", "completed", "failed"]
    step: Annotated[str, doc("none, starting, download, validate, replace, completed or skipped.")]
    version: str
    last_attempt: Annotated[str | None, doc("When it was tried (RFC 3339).")] = None
    error: str | None = None
    download_url: str | None = None
    binary_path: str | None = None
    bytes_downloaded: int | None = None


class HealthResponse(Shape, omit_defaults=False):
    status: Literal["ok"]
    version: str
    git_commit: str
    build_time: str
    go_version: Annotated[str, doc("The runtime (here a Python version); the name is the original's.")]
    os: str
    arch: str
    uptime: Annotated[str, doc("Go duration format: `3m5s`.")]
    uptime_seconds: float
    upgrade_count: int
    started_at: Annotated[str, doc("RFC 3339.")]
    last_upgrade: UpgradeStatus


class UpgradeRequest(Shape):
    """A missing or invalid body, or a field of another type, means the defaults."""

    version: Annotated[str | None, doc("`latest` (default), `develop`, `main` or `vX.Y.Z`.")] = None
    base_url: Annotated[str | None, doc("Release download base (default: the GitHub releases).")] = None
    path: Annotated[str | None, doc("A local binary to upgrade to instead of downloading one.")] = None


class UpgradeResponse(Shape):
    message: str
    version: str
    base_url: str
    path: str | None = None


class EnvironmentReloadResponse(Shape, omit_defaults=False):
    generation: int
    applied: Annotated[int, doc("Variables set.")]
    removed: Annotated[int, doc("Variables an earlier reload set that this document lacks.")]
