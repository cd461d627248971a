"""Exec orchestration, once for every caller: start a process, wait for its ports, wait
for its end, all within one deadline, and say what a deadline that ran out means.

`POST /process` (plain and NDJSON) and the MCP `processExecute` tool call these; they only
translate the outcome (an HTTP 422, an NDJSON `error` event, an MCP error or `pollRequired`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..errors import Unprocessable
from ..linux import tree
from ..network import ports as port_scan
from .managed import ManagedProcess, ProcessSpec, wait_timeout_message
from .supervisor import Supervisor

PORT_POLL_FIRST, PORT_POLL_GROWTH, PORT_POLL_INTERVAL = 0.01, 1.25, 0.1


@dataclass
class Execution:
    proc: ManagedProcess
    timeout: int | None  # the seconds the caller may wait (the record's default when not given); 0/None: no limit
    deadline: float | None  # the loop time when that wait ends

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


async def launch(supervisor: Supervisor, spec: ProcessSpec) -> Execution:
    """Start the process; the deadline of every wait that follows starts now."""
    proc = await supervisor.start(spec)
    timeout = proc.record.timeout if spec.timeout is None else spec.timeout
    deadline = asyncio.get_running_loop().time() + timeout if timeout and timeout > 0 else None
    return Execution(proc, timeout, deadline)


async def wait_ports(execution: Execution, ports: list[int]) -> None:
    """Return once every port is served on a routable address by the process tree;
    Unprocessable when the deadline passes or the process ends first. The tree is looked
    at often at first, then every 100 ms."""
    proc = execution.proc
    pending: set[int] = set(ports)
    interval = PORT_POLL_FIRST
    while pending:
        if proc.final.is_set():
            raise Unprocessable(
                f"process exited with code {proc.record.exit_code} before serving ports {sorted(pending)}"
            )
        if proc.record.running:
            pending -= await asyncio.to_thread(_serving, proc, pending)
            if not pending:
                return
        remaining = execution.remaining()
        if remaining == 0:
            raise Unprocessable(f"process timed out waiting for ports after {execution.timeout or 0} seconds")
        delay = interval if remaining is None else min(interval, remaining)
        interval = min(interval * PORT_POLL_GROWTH, PORT_POLL_INTERVAL)
        try:
            await asyncio.wait_for(proc.final.wait(), delay)
        except TimeoutError:
            pass


async def wait_end(execution: Execution, cap: float | None = None) -> bool:
    """Wait for the end (after every restart). True once ended; Unprocessable when the
    deadline ran out; False when `cap` (a caller's own limit, shorter) ran out first."""
    remaining = execution.remaining()
    capped = cap is not None and (remaining is None or remaining > cap)
    if await execution.proc.wait_final(cap if capped else remaining):
        return True
    if capped:
        return False
    raise Unprocessable(wait_timeout_message(execution.proc, execution.timeout or 0))


def _serving(proc: ManagedProcess, wanted: set[int]) -> set[int]:
    """The ports of `wanted` the process tree serves (reads /proc: run in a thread)."""
    return port_scan.serving_ports(tree.tree_members(proc.record.os_pid, proc.cookie), wanted)


async def execute(
    supervisor: Supervisor, spec: ProcessSpec, ports: list[int], wait: bool, cap: float | None = None
) -> tuple[Execution, bool]:
    """Launch, wait for the ports, and (with `wait`) for the end: (execution, ended)."""
    execution = await launch(supervisor, spec)
    await wait_ports(execution, ports)
    ended = await wait_end(execution, cap) if wait else execution.proc.final.is_set()
    return execution, ended
