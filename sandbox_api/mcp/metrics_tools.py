"""MCP tool over the metrics: `sandboxMetrics`, the JSON of `GET /metrics`."""

from __future__ import annotations

from typing import Any

from ..system.metrics_wire import MetricsResponse
from .tools import NoArguments, Services, Tool


def tools(services: Services) -> list[Tool]:
    metrics = services.metrics
    if metrics is None:
        return []

    async def snapshot(_: NoArguments) -> dict[str, Any]:
        return await metrics().snapshot()

    return [
        Tool(
            "sandboxMetrics",
            "How loaded the sandbox is: CPU, memory and disk as its own limits see them (a 2 GB sandbox on a big "
            "host reports 2 GB), the load average, and the CPU time and resident memory of every running process "
            "started with processExecute. Cheap: call it whenever you need it.",
            NoArguments,
            MetricsResponse,
            snapshot,
        )
    ]
