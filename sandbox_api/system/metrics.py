"""Metrics of the sandbox as its own limits see them: CPU, memory, disk, load, and the CPU and
memory of every running managed process. No HTTP here; `metrics_routes.py` serves it.

- Limits come from the sandbox's cgroup (v2: memory.max, cpu.max; v1: memory.limit_in_bytes,
  cpu.cfs_quota_us), the smallest along its ancestors, so a 2 GB container on a 64 GB host
  reports 2 GB. Without a limit (or a cgroup) the machine's own figures are used: in a
  microVM those are the sandbox's.
- Memory "used" is the working set (usage less the inactive file cache, which the kernel
  reclaims before it kills anything), as `docker stats` and kubelet count it.
- CPU is reported as cumulative seconds (counters, for scrapers) and as a percent computed
  from the change since the previous call (null on the first): nothing is sampled in the
  background, so a daemon nobody asks spends nothing.
- A managed process counts its whole tree: the process, its descendants and its process group.
- The load average is the kernel's, which is the host's in a container.
Everything here is blocking file reads of /proc and /sys (well under a millisecond each).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
UNLIMITED = 1 << 62  # cgroup v1 writes "no limit" as a huge number (2^63 rounded to pages)


@dataclass(frozen=True)
class Managed:
    """What the metrics need of a managed process."""

    key: str
    pid: str  # the identifier clients use
    name: str
    os_pid: int


def running_processes(supervisor: Any) -> Callable[[], list[Managed]]:
    """The running managed processes of a process supervisor (process/supervisor.py)."""

    def listed() -> list[Managed]:
        return [
            Managed(p.record.key, p.record.pid, p.record.name, p.record.os_pid)
            for p in supervisor.list()
            if p.record.running
        ]

    return listed


@dataclass(frozen=True)
class Cgroup:
    """The directories holding the sandbox's cgroup files, found once."""

    version: int  # 2, 1, or 0 (none found)
    memory: list[str]  # the cgroup's directory, then its ancestors up to the mount
    cpu: list[str]
    cpuacct: str | None  # v1 usage counter's directory


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (OSError, ValueError):
        return None


def _int(path: str) -> int | None:
    text = _read(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None  # "max"


def _keyed(path: str) -> dict[str, int]:
    """A flat-keyed file (memory.stat, cpu.stat, /proc/meminfo) as numbers."""
    values: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].isdigit():
            values[parts[0]] = int(parts[1])
    return values


def _lineage(mount: str, path: str) -> list[str]:
    """The cgroup's directory under `mount`, then its ancestors up to the mount itself. A
    path not under the mount (a container sees its own cgroup as the mount) is the mount."""
    directory = os.path.normpath(os.path.join(mount, path.lstrip("/")))
    if not os.path.isdir(directory):
        return [mount]
    found = [directory]
    while directory != mount and directory.startswith(mount + "/"):
        directory = os.path.dirname(directory)
        found.append(directory)
    return found


def locate(proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> Cgroup:
    """The cgroup this process is in, and where its files are (v2 preferred when it holds the
    memory controller, else v1's, else none)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in (_read(proc_cgroup) or "").splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            v2 = path
        for name in controllers.split(","):
            if name:
                v1[name] = path
    v2_lineage: list[str] = []
    if v2 is not None:
        for mount in (root, os.path.join(root, "unified")):
            if os.path.exists(os.path.join(mount, "cgroup.controllers")):
                v2_lineage = _lineage(mount, v2)
                if os.path.exists(os.path.join(v2_lineage[0], "memory.current")):
                    return Cgroup(2, v2_lineage, v2_lineage, None)
                break  # no memory controller here (a hybrid host's "unified" mount): v1 has it
    if "memory" in v1 or "cpu" in v1:

        def mount_of(controller: str) -> str | None:
            for name in (controller, "cpu,cpuacct", "cpuacct,cpu"):
                if os.path.isdir(os.path.join(root, name)) and controller in name.split(","):
                    return os.path.join(root, name)
            return None

        memory = mount_of("memory")
        cpu = mount_of("cpu")
        cpuacct = mount_of("cpuacct")
        return Cgroup(
            1,
            _lineage(memory, v1.get("memory", "/")) if memory else [],
            _lineage(cpu, v1.get("cpu", "/")) if cpu else [],
            _lineage(cpuacct, v1.get("cpuacct", "/"))[0] if cpuacct else None,
        )
    if v2_lineage:
        return Cgroup(2, [], v2_lineage, None)  # cpu.stat only (the root cgroup has no memory files)
    return Cgroup(0, [], [], None)


class Metrics:
    """Collects a snapshot on demand; keeps only the previous CPU readings (for percents)."""

    def __init__(
        self,
        workdir: str,
        processes: Callable[[], Iterable[Managed]] = tuple,
        proc_cgroup: str = "/proc/self/cgroup",
        cgroup_root: str = "/sys/fs/cgroup",
    ) -> None:
        self.workdir = workdir
        self.processes = processes
        self._where = (proc_cgroup, cgroup_root)
        self._cgroup: Cgroup | None = None
        self._last_cpu: tuple[float, float] | None = None  # (monotonic, usage seconds)
        self._last_process_cpu: dict[str, tuple[float, float]] = {}

    @property
    def cgroup(self) -> Cgroup:
        if self._cgroup is None:
            self._cgroup = locate(*self._where)
        return self._cgroup

    async def snapshot(self) -> dict[str, Any]:
        """`collect` in a worker thread: a /proc with many processes takes a few ms to read."""
        return await asyncio.to_thread(self.collect)

    def collect(self) -> dict[str, Any]:
        """The snapshot (blocking reads of /proc and /sys; a few hundred microseconds)."""
        now = time.monotonic()
        cpu = self._cpu(now)
        load1, load5, load15 = os.getloadavg()
        return {
            "timestamp": time.time(),
            "cpu": cpu,
            "memory": self._memory(),
            "load": {"load1": load1, "load5": load5, "load15": load15},
            "disk": self._disk(),
            "processes": self._processes(now, cpu["cores"]),
        }

    # --- CPU --------------------------------------------------------------------------------------

    def _cpu(self, now: float) -> dict[str, Any]:
        cg = self.cgroup
        quota: float | None = None
        for directory in cg.cpu:
            if cg.version == 2:
                parts = (_read(os.path.join(directory, "cpu.max")) or "").split()
                limit = int(parts[0]) / int(parts[1]) if len(parts) == 2 and parts[0].isdigit() else None
            else:
                q, period = _int(os.path.join(directory, "cpu.cfs_quota_us")), _int(f"{directory}/cpu.cfs_period_us")
                limit = q / period if q is not None and q > 0 and period else None
            if limit is not None and (quota is None or limit < quota):
                quota = limit
        try:
            available = float(len(os.sched_getaffinity(0)))
        except OSError:
            available = float(os.cpu_count() or 1)
        cores = min(quota, available) if quota is not None else available
        usage, source = self._cpu_usage(cg)
        percent = None
        if self._last_cpu is not None and now > self._last_cpu[0]:
            percent = round(100 * (usage - self._last_cpu[1]) / (now - self._last_cpu[0]) / cores, 2)
            percent = max(0.0, percent)
        self._last_cpu = (now, usage)
        return {
            "cores": round(cores, 3),
            "limitCores": round(quota, 3) if quota is not None else None,
            "usageSeconds": round(usage, 6),
            "percent": percent,
            "source": source,
        }

    def _cpu_usage(self, cg: Cgroup) -> tuple[float, str]:
        if cg.version == 2 and cg.cpu:
            usec = _keyed(os.path.join(cg.cpu[0], "cpu.stat")).get("usage_usec")
            if usec is not None:
                return usec / 1e6, "cgroup2"
        if cg.version == 1 and cg.cpuacct is not None:
            nsec = _int(os.path.join(cg.cpuacct, "cpuacct.usage"))
            if nsec is not None:
                return nsec / 1e9, "cgroup1"
        # The machine's busy time: user nice system (idle iowait) irq softirq steal.
        fields = (_read("/proc/stat") or "cpu 0").splitlines()[0].split()[1:]
        busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))
        return busy / CLOCK_TICKS, "host"

    # --- memory -----------------------------------------------------------------------------------

    def _memory(self) -> dict[str, Any]:
        cg = self.cgroup
        meminfo = _keyed("/proc/meminfo")
        host_total = meminfo.get("MemTotal", 0) * 1024
        limit: int | None = None
        usage: int | None = None
        inactive = 0
        if cg.memory:
            v2 = cg.version == 2
            for directory in cg.memory:
                value = _int(os.path.join(directory, "memory.max" if v2 else "memory.limit_in_bytes"))
                if value is not None and value < UNLIMITED and (limit is None or value < limit):
                    limit = value
            usage = _int(os.path.join(cg.memory[0], "memory.current" if v2 else "memory.usage_in_bytes"))
            stats = _keyed(os.path.join(cg.memory[0], "memory.stat"))
            inactive = stats.get("inactive_file" if v2 else "total_inactive_file", 0)
        if limit is not None and host_total and limit > host_total:
            limit = None  # a limit above the machine's memory limits nothing
        host_available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0)) * 1024
        if usage is not None:
            used = max(0, usage - inactive)
            total = limit if limit is not None else host_total
            # Without a limit, what is left is the machine's, whoever else uses it.
            available = max(0, limit - used) if limit is not None else host_available
            source = f"cgroup{cg.version}"
        else:
            total, used, available, source = host_total, max(0, host_total - host_available), host_available, "host"
        return {
            "totalBytes": total,
            "limitBytes": limit,
            "usedBytes": used,
            "availableBytes": available,
            "percent": round(100 * used / total, 2) if total else None,
            "source": source,
        }

    # --- disk -------------------------------------------------------------------------------------

    def _disk(self) -> dict[str, Any]:
        try:
            st = os.statvfs(self.workdir)
        except OSError:
            return {"path": self.workdir, "totalBytes": None, "usedBytes": None, "availableBytes": None}
        total = st.f_blocks * st.f_frsize
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        return {
            "path": self.workdir,
            "totalBytes": total,
            "usedBytes": used,
            "availableBytes": st.f_bavail * st.f_frsize,
            "percent": round(100 * used / total, 2) if total else None,
            "inodesTotal": st.f_files,
            "inodesFree": st.f_ffree,
        }

    # --- managed processes ------------------------------------------------------------------------

    def _processes(self, now: float, cores: float) -> list[dict[str, Any]]:
        managed = [m for m in self.processes() if m.os_pid > 0]
        if not managed:
            self._last_process_cpu.clear()
            return []
        table = _process_table()
        children: dict[int, list[int]] = {}
        groups: dict[int, list[int]] = {}
        for pid, row in table.items():
            children.setdefault(row[0], []).append(pid)
            groups.setdefault(row[1], []).append(pid)
        seen: dict[str, tuple[float, float]] = {}
        out = []
        for m in managed:
            if m.os_pid not in table:
                continue
            members: set[int] = set()
            stack = [m.os_pid, *groups.get(m.os_pid, ())]  # its process group, and every descendant
            while stack:
                pid = stack.pop()
                if pid not in members:
                    members.add(pid)
                    stack.extend(children.get(pid, ()))
            rows = [table[p] for p in members if p in table]
            cpu = sum(r[2] for r in rows) / CLOCK_TICKS
            previous = self._last_process_cpu.get(m.key)
            percent = None
            if previous is not None and now > previous[0]:
                percent = max(0.0, round(100 * (cpu - previous[1]) / (now - previous[0]), 2))
            seen[m.key] = (now, cpu)
            out.append(
                {
                    "pid": m.pid,
                    "name": m.name,
                    "osPid": m.os_pid,
                    "processCount": len(rows),
                    "threads": sum(r[4] for r in rows),
                    "cpuSeconds": round(cpu, 2),
                    "cpuPercent": percent,  # of one CPU: 200 is two CPUs busy
                    "rssBytes": sum(r[3] for r in rows) * PAGE_SIZE,
                }
            )
        self._last_process_cpu = seen  # ended processes are forgotten
        return out


def _process_table() -> dict[int, tuple[int, int, int, int, int]]:
    """pid -> (ppid, pgrp, utime+stime ticks, rss pages, threads) of every live process."""
    table: dict[int, tuple[int, int, int, int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[0] in (b"Z", b"X"):
                continue  # a zombie holds no memory and runs no more
            # After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12) ... threads(17) ... rss(21)
            table[int(name)] = (int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]), int(fields[21]),
                                int(fields[17]))  # fmt: skip
        except (OSError, IndexError, ValueError):
            continue
    return table


# --- Prometheus text exposition format 0.0.4 ---------------------------------------------------------

# (name, type, help, where in the snapshot)
_SANDBOX_SERIES: tuple[tuple[str, str, str, tuple[str, str]], ...] = (
    (
        "sandbox_cpu_cores",
        "gauge",
        "CPUs the sandbox may use: its cgroup quota, else its CPU affinity",
        ("cpu", "cores"),
    ),
    ("sandbox_cpu_usage_seconds_total", "counter", "CPU time used by the sandbox", ("cpu", "usageSeconds")),
    (
        "sandbox_memory_total_bytes",
        "gauge",
        "Memory the sandbox may use: its cgroup limit, else the machine's",
        ("memory", "totalBytes"),
    ),
    (
        "sandbox_memory_used_bytes",
        "gauge",
        "Memory in use (working set: less reclaimable file cache)",
        ("memory", "usedBytes"),
    ),
    ("sandbox_memory_available_bytes", "gauge", "Memory still available to the sandbox", ("memory", "availableBytes")),
    ("sandbox_load1", "gauge", "Load average over 1 minute (the kernel's)", ("load", "load1")),
    ("sandbox_load5", "gauge", "Load average over 5 minutes (the kernel's)", ("load", "load5")),
    ("sandbox_load15", "gauge", "Load average over 15 minutes (the kernel's)", ("load", "load15")),
)
_DISK_SERIES = (
    ("sandbox_disk_total_bytes", "gauge", "Size of the working directory's filesystem", "totalBytes"),
    ("sandbox_disk_used_bytes", "gauge", "Bytes used on the working directory's filesystem", "usedBytes"),
    ("sandbox_disk_available_bytes", "gauge", "Bytes available to unprivileged users there", "availableBytes"),
)
_PROCESS_SERIES = (
    ("sandbox_process_cpu_seconds_total", "counter", "CPU time of a managed process and its tree", "cpuSeconds"),
    ("sandbox_process_resident_memory_bytes", "gauge", "Resident memory of a managed process and its tree",
     "rssBytes"),
    ("sandbox_process_tasks", "gauge", "Processes in a managed process's tree", "processCount"),
)  # fmt: skip


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def prometheus(snapshot: dict[str, Any]) -> str:
    """The snapshot in the Prometheus text format (version 0.0.4)."""
    lines: list[str] = []

    def family(name: str, kind: str, text: str, samples: list[tuple[str, Any]]) -> None:
        samples = [(labels, v) for labels, v in samples if v is not None]
        if not samples:
            return
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    for name, kind, text, (group, key) in _SANDBOX_SERIES:
        family(name, kind, text, [("", snapshot[group].get(key))])
    disk = snapshot["disk"]
    where = f'{{path="{_label(disk["path"])}"}}'
    for name, kind, text, key in _DISK_SERIES:
        family(name, kind, text, [(where, disk.get(key))])
    processes = snapshot["processes"]
    family("sandbox_processes_running", "gauge", "Managed processes running", [("", len(processes))])
    for name, kind, text, key in _PROCESS_SERIES:
        samples = [(f'{{pid="{_label(p["pid"])}",name="{_label(p["name"])}"}}', p[key]) for p in processes]
        family(name, kind, text, samples)
    return "\n".join(lines) + "\n"
