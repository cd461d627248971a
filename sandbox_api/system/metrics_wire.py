"""The metrics' wire shapes (see contract.py): `GET /metrics`'s query and JSON answer, which
the MCP tool `sandboxMetrics` answers too. The service (system/metrics.py) builds the answer
as a dict; these shapes describe it field for field."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from ..contract import Shape, doc

FORMATS = ("json", "prometheus")
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text exposition format 0.0.4
Source = Annotated[
    Literal["cgroup2", "cgroup1", "host"],
    doc("Where the figures come from: the sandbox's cgroup (v2 or v1), or the machine's without one."),
]
SINCE_PREVIOUS = "since the previous metrics call (null on the first: nothing is sampled in the background)"


class MetricsQuery(Shape):
    # The values are only shown: another one is refused by the route, with the values it takes.
    format: Annotated[
        str | None,
        Meta(
            description="`json` (the default) or `prometheus` (the text exposition format 0.0.4, also chosen by a "
            "scraper's `Accept: text/plain;version=0.0.4`).",
            extra_json_schema={"enum": list(FORMATS)},
        ),
    ] = None


class Cpu(Shape, omit_defaults=False):
    cores: Annotated[float, doc("CPUs the sandbox may use: its cgroup's CPU quota, else the CPUs it may run on.")]
    limit_cores: Annotated[float | None, doc("The cgroup's CPU quota in CPUs (null: none).")]
    usage_seconds: Annotated[float, doc("CPU time the sandbox's cgroup used so far (the machine's without one).")]
    percent: Annotated[float | None, doc(f"Share of `cores` used {SINCE_PREVIOUS}.")]
    source: Source


class Memory(Shape, omit_defaults=False):
    total_bytes: Annotated[
        int,
        doc("Memory the sandbox may use: its cgroup's limit (the smallest along its ancestors), else the machine's."),
    ]
    limit_bytes: Annotated[int | None, doc("The cgroup's memory limit (null: none).")]
    used_bytes: Annotated[int, doc("In use: the working set (usage less the inactive file cache, as `docker stats`).")]
    available_bytes: Annotated[int, doc("Still available to the sandbox.")]
    percent: Annotated[float | None, doc("`usedBytes` as a percent of `totalBytes`.")]
    source: Source


class Load(Shape, omit_defaults=False):
    """The kernel's load average (the host's in a container)."""

    load1: Annotated[float, doc("Over 1 minute.")]
    load5: Annotated[float, doc("Over 5 minutes.")]
    load15: Annotated[float, doc("Over 15 minutes.")]


class Disk(Shape):
    """The working directory's filesystem (only `path` and null sizes when it cannot be read)."""

    path: Annotated[str, doc("The working directory, whose filesystem this is.")]
    total_bytes: Annotated[int | None, doc("Its size.")]
    used_bytes: Annotated[int | None, doc("Bytes used.")]
    available_bytes: Annotated[int | None, doc("Bytes available to unprivileged users.")]
    percent: Annotated[float | None, doc("`usedBytes` as a percent of `totalBytes`.")] = None
    inodes_total: Annotated[int | None, doc("Inodes.")] = None
    inodes_free: Annotated[int | None, doc("Free inodes.")] = None


class ProcessMetrics(Shape, omit_defaults=False):
    """A running managed process, with its whole tree counted: the process, its descendants
    and its process group."""

    pid: Annotated[str, doc("Its identifier, as `POST /process` (or processExecute) gave it.")]
    name: Annotated[str, doc("Its name.")]
    os_pid: Annotated[int, doc("The OS pid of its current run.")]
    process_count: Annotated[int, doc("Processes in its tree.")]
    threads: Annotated[int, doc("Threads in its tree.")]
    cpu_seconds: Annotated[float, doc("CPU time its tree used so far.")]
    cpu_percent: Annotated[float | None, doc(f"CPU its tree used {SINCE_PREVIOUS}, in percent of one CPU.")]
    rss_bytes: Annotated[int, doc("Resident memory of its tree.")]


class MetricsResponse(Shape, omit_defaults=False):
    """The sandbox's load as its own limits see it."""

    timestamp: Annotated[float, doc("When the figures were read (Unix seconds).")]
    cpu: Cpu
    memory: Memory
    load: Load
    disk: Disk
    processes: Annotated[list[ProcessMetrics], doc("Every running managed process.")]
