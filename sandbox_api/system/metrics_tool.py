"""The MCP tool of the metrics: `sandboxMetrics`, the JSON of `GET /metrics`."""

from __future__ import annotations

from typing import Any

from ..mcp.tools import Tool, obj, s
from .metrics import Metrics

NULLABLE_NUMBER = ["null", "number"]
NULLABLE_INTEGER = ["null", "integer"]

OUTPUT = obj(
    {
        "timestamp": s("When the figures were read (Unix seconds)", "number"),
        "cpu": obj(
            {
                "cores": s("CPUs the sandbox may use: its cgroup quota, else its CPU affinity", "number"),
                "limitCores": s("The cgroup's CPU quota in CPUs (null: none)", NULLABLE_NUMBER),
                "usageSeconds": s("CPU time the sandbox used so far", "number"),
                "percent": s(
                    "Share of `cores` used since the previous metrics call (null on the first)", NULLABLE_NUMBER
                ),
                "source": s("Where the figures come from: cgroup2, cgroup1 or host"),
            },
            ("cores", "limitCores", "usageSeconds", "percent", "source"),
            "CPU",
        ),
        "memory": obj(
            {
                "totalBytes": s("Memory the sandbox may use: its cgroup limit, else the machine's", "integer"),
                "limitBytes": s("The cgroup's memory limit (null: none)", NULLABLE_INTEGER),
                "usedBytes": s("In use (the working set: reclaimable file cache left out)", "integer"),
                "availableBytes": s("Still available", "integer"),
                "percent": s("usedBytes as a percent of totalBytes", NULLABLE_NUMBER),
                "source": s("Where the figures come from: cgroup2, cgroup1 or host"),
            },
            ("totalBytes", "limitBytes", "usedBytes", "availableBytes", "percent", "source"),
            "Memory",
        ),
        "load": obj(
            {
                "load1": s("Over 1 minute", "number"),
                "load5": s("Over 5 minutes", "number"),
                "load15": s("Over 15 minutes", "number"),
            },
            ("load1", "load5", "load15"),
            "The kernel's load average (the host's in a container)",
        ),
        "disk": obj(
            {
                "path": s("The working directory, whose filesystem this is"),
                "totalBytes": s("Size", NULLABLE_INTEGER),
                "usedBytes": s("Used", NULLABLE_INTEGER),
                "availableBytes": s("Available to unprivileged users", NULLABLE_INTEGER),
                "percent": s("usedBytes as a percent of totalBytes", NULLABLE_NUMBER),
                "inodesTotal": s("Inodes", "integer"),
                "inodesFree": s("Free inodes", "integer"),
            },
            ("path", "totalBytes", "usedBytes", "availableBytes"),
            "The working directory's filesystem",
        ),
        "processes": {
            "type": "array",
            "description": "Every running managed process, with its whole tree counted",
            "items": obj(
                {
                    "pid": s("Its identifier, as processExecute gave it"),
                    "name": s("Its name"),
                    "osPid": s("The OS pid of its current run", "integer"),
                    "processCount": s("Processes in its tree", "integer"),
                    "threads": s("Threads in its tree", "integer"),
                    "cpuSeconds": s("CPU time its tree used so far", "number"),
                    "cpuPercent": s(
                        "CPU used since the previous metrics call, in percent of one CPU (null on the first)",
                        NULLABLE_NUMBER,
                    ),
                    "rssBytes": s("Resident memory of its tree", "integer"),
                },
                ("pid", "name", "osPid", "processCount", "threads", "cpuSeconds", "cpuPercent", "rssBytes"),
            ),
        },
    },
    ("timestamp", "cpu", "memory", "load", "disk", "processes"),
)


def metrics_tool(metrics: Metrics) -> Tool:
    async def handler() -> dict[str, Any]:
        return await metrics.snapshot()

    return Tool(
        "sandboxMetrics",
        "How loaded the sandbox is: CPU, memory and disk as its own limits see them (a 2 GB sandbox on a big host "
        "reports 2 GB), the load average, and the CPU time and resident memory of every running process started "
        "with processExecute. Cheap: call it whenever you need it.",
        obj({}),
        OUTPUT,
        handler,
    )
