"""The settings of the client subcommands (`ready`, `start-process`), from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ClientSettings:
    """What the `ready` and `start-process` subcommands read from the environment."""

    port: int
    token: str | None
    start_command: str
    start_name: str
    start_workdir: str
    start_restart_on_failure: bool
    start_max_restarts: int | None
    start_wait_for_ports: tuple[int, ...]


def client_from_environment() -> ClientSettings:
    """ValueError names a variable whose value is not usable."""
    env = os.environ

    def number(name: str) -> int | None:
        raw = env.get(name, "").strip()
        if not raw:
            return None
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not an integer") from None

    try:
        ports = tuple(int(p) for p in env.get("SANDBOX_START_WAIT_FOR_PORTS", "").split(",") if p.strip())
    except ValueError:
        raise ValueError(
            f"SANDBOX_START_WAIT_FOR_PORTS={env['SANDBOX_START_WAIT_FOR_PORTS']!r} is not a list of ports"
        ) from None
    return ClientSettings(
        port=number("SANDBOX_API_PORT") or 8080,
        token=env.get("SANDBOX_API_TOKEN") or None,
        start_command=env.get("SANDBOX_START_COMMAND", "").strip(),
        start_name=env.get("SANDBOX_START_NAME") or "entrypoint",
        start_workdir=env.get("SANDBOX_START_WORKDIR", ""),
        start_restart_on_failure=env.get("SANDBOX_START_RESTART_ON_FAILURE", "").lower() in ("1", "true", "yes"),
        start_max_restarts=number("SANDBOX_START_MAX_RESTARTS"),
        start_wait_for_ports=ports,
    )
