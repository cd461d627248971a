"""GET /metrics (JSON and Prometheus text) and the MCP tool `sandboxMetrics`."""

from __future__ import annotations

import asyncio
import math
import os
import re
import statistics
import time
from pathlib import Path

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from sandbox_api.system.metrics import Managed, Metrics

# --- what the test computes on its own, to compare ------------------------------------------------


def meminfo_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def expected_memory_total() -> int:
    """This process's memory limit, read from its cgroup files along its ancestors (v2, else
    v1), or the machine's memory when there is none."""
    host = meminfo_total()
    limits: list[int] = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and not controllers:
            mount, name = Path("/sys/fs/cgroup"), "memory.max"
        elif "memory" in controllers.split(","):
            mount, name = Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"
        else:
            continue
        directory = mount / path.lstrip("/")
        while True:
            try:
                value = (directory / name).read_text().strip()
            except OSError:
                value = "max"
            if value.isdigit():
                limits.append(int(value))
            if directory == mount or mount not in directory.parents:
                break
            directory = directory.parent
    below = [v for v in limits if v < host]
    return min(below) if below else host


def parse_prometheus(text: str) -> dict[str, dict[str, object]]:
    """A small parser of the text format 0.0.4: families with their HELP, TYPE and samples;
    fails on any line that is not one of those."""
    families: dict[str, dict[str, object]] = {}
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$')
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in families and help_text, line
            families[name] = {"help": help_text, "samples": []}
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("gauge", "counter") and name in families and "type" not in families[name], line
            families[name]["type"] = kind
        else:
            match = sample.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.group(1), match.group(2) or "", match.group(3)
            assert "type" in families.get(name, {}), f"sample before its HELP/TYPE: {line!r}"
            number = float(value)
            assert not math.isnan(number)
            families[name]["samples"].append((labels, number))  # type: ignore[union-attr]
    return families


# --- HTTP -------------------------------------------------------------------------------------------


async def get_metrics(client, query: str = "") -> dict:
    resp = await client.get(f"/metrics{query}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_metrics_json_shape_and_sane_values(client, workdir):
    first = await get_metrics(client)
    assert set(first) == {"timestamp", "cpu", "memory", "load", "disk", "processes"}
    assert first["cpu"]["percent"] is None  # nothing to compare with yet: nothing is polled
    await asyncio.sleep(0.05)
    data = await get_metrics(client)
    cpu, memory, disk = data["cpu"], data["memory"], data["disk"]
    assert 0 < cpu["cores"] <= (os.cpu_count() or 1) and cpu["usageSeconds"] >= first["cpu"]["usageSeconds"] > 0
    assert isinstance(cpu["percent"], float) and cpu["percent"] >= 0
    assert memory["totalBytes"] == expected_memory_total()
    assert 0 < memory["usedBytes"] <= memory["totalBytes"] and 0 <= memory["availableBytes"] <= memory["totalBytes"]
    st = os.statvfs(workdir)
    assert disk["path"] == str(workdir) and disk["totalBytes"] == st.f_blocks * st.f_frsize
    assert 0 < disk["usedBytes"] < disk["totalBytes"]
    assert set(data["load"]) == {"load1", "load5", "load15"} and data["load"]["load1"] >= 0
    assert abs(data["timestamp"] - time.time()) < 60


async def test_a_managed_process_appears_with_its_tree_cpu_and_rss(client):
    resp = await client.post("/process", json={"command": "sleep 30 & sleep 30 & wait", "name": "metered"})
    started = await resp.json()
    assert resp.status == 200, started
    try:
        found = None
        for _ in range(100):  # the two sleeps are forked right after the start
            processes = (await get_metrics(client))["processes"]
            found = next((p for p in processes if p["pid"] == started["pid"]), None)
            if found is not None and found["processCount"] >= 3:
                break
            await asyncio.sleep(0.05)
        assert found is not None and found["name"] == "metered"
        assert found["osPid"] == int(started["pid"]) and found["processCount"] == 3
        assert found["rssBytes"] > 0 and found["cpuSeconds"] >= 0 and found["threads"] >= 3
    finally:
        await client.delete(f"/process/{started['pid']}/kill")
    for _ in range(100):
        if not any(p["pid"] == started["pid"] for p in (await get_metrics(client))["processes"]):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("an ended process is still listed")


async def test_prometheus_format_parses_and_agrees_with_json(client):
    resp = await client.post("/process", json={"command": "sleep 30", "name": 'quote"me'})
    started = await resp.json()
    try:
        resp = await client.get("/metrics?format=prometheus")
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        families = parse_prometheus(await resp.text())
    finally:
        await client.delete(f"/process/{started['pid']}/kill")
    assert all(name.startswith("sandbox_") for name in families)
    assert families["sandbox_cpu_usage_seconds_total"]["type"] == "counter"
    assert families["sandbox_memory_total_bytes"]["samples"] == [("", float(expected_memory_total()))]
    rss = families["sandbox_process_resident_memory_bytes"]["samples"]
    assert any(labels == f'{{pid="{started["pid"]}",name="quote\\"me"}}' and value > 0 for labels, value in rss)
    # What a Prometheus server sends also selects the text format.
    scraper = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    resp = await client.get("/metrics", headers={"Accept": scraper})
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")


async def test_an_unknown_format_is_a_400(client):
    resp = await client.get("/metrics?format=xml")
    assert resp.status == 400 and "json or prometheus" in (await resp.json())["error"]


# --- the service on cgroup trees made for the test ------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cgroup_v2_limit_is_the_sandbox_size(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "cgroup.controllers", "cpu memory\n")
    write(root / "sandbox" / "memory.max", "max\n")  # the limit is on the parent: the smallest counts
    write(root / "sandbox" / "memory.current", str(600 << 20))
    write(root / "sandbox" / "memory.stat", f"anon 1\ninactive_file {100 << 20}\n")
    write(root / "sandbox" / "cpu.max", "max 100000\n")
    write(root / "sandbox" / "cpu.stat", "usage_usec 2500000\nuser_usec 2000000\n")
    write(root / "memory.max", str(2 << 30))
    write(root / "cpu.max", "150000 100000\n")
    write(tmp_path / "self-cgroup", "0::/sandbox\n")
    metrics = Metrics(str(tmp_path), proc_cgroup=str(tmp_path / "self-cgroup"), cgroup_root=str(root))
    data = metrics.collect()
    assert data["memory"]["totalBytes"] == data["memory"]["limitBytes"] == 2 << 30
    assert data["memory"]["usedBytes"] == 500 << 20 and data["memory"]["availableBytes"] == (2 << 30) - (500 << 20)
    assert data["memory"]["source"] == "cgroup2"
    assert data["cpu"]["limitCores"] == 1.5 and data["cpu"]["cores"] == min(1.5, len(os.sched_getaffinity(0)))
    assert data["cpu"]["usageSeconds"] == 2.5 and data["cpu"]["source"] == "cgroup2"


def test_a_cgroup_v1_limit_is_the_sandbox_size(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "memory" / "docker" / "c1" / "memory.limit_in_bytes", str(1 << 30))
    write(root / "memory" / "docker" / "c1" / "memory.usage_in_bytes", str(300 << 20))
    write(root / "memory" / "docker" / "c1" / "memory.stat", f"cache 5\ntotal_inactive_file {50 << 20}\n")
    write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712")
    write(root / "cpu,cpuacct" / "docker" / "c1" / "cpu.cfs_quota_us", "50000")
    write(root / "cpu,cpuacct" / "docker" / "c1" / "cpu.cfs_period_us", "100000")
    write(root / "cpu,cpuacct" / "docker" / "c1" / "cpuacct.usage", "7000000000")
    write(tmp_path / "self-cgroup", "5:memory:/docker/c1\n3:cpu,cpuacct:/docker/c1\n0::/\n")
    metrics = Metrics(str(tmp_path), proc_cgroup=str(tmp_path / "self-cgroup"), cgroup_root=str(root))
    data = metrics.collect()
    assert data["memory"]["totalBytes"] == 1 << 30 and data["memory"]["usedBytes"] == 250 << 20
    assert data["cpu"]["cores"] == 0.5 and data["cpu"]["usageSeconds"] == 7.0 and data["cpu"]["source"] == "cgroup1"


def test_without_a_cgroup_the_machine_is_the_sandbox(tmp_path):
    write(tmp_path / "self-cgroup", "")
    data = Metrics(str(tmp_path), proc_cgroup=str(tmp_path / "self-cgroup"), cgroup_root=str(tmp_path)).collect()
    assert data["memory"]["totalBytes"] == meminfo_total() and data["memory"]["source"] == "host"
    assert data["cpu"]["limitCores"] is None and data["cpu"]["source"] == "host"


def test_one_collection_costs_under_10_ms_of_cpu(tmp_path):
    metrics = Metrics(str(tmp_path), lambda: [Managed("k", "1", "self", os.getpid())])
    costs = []
    for _ in range(15):
        started = time.process_time()  # CPU time: not skewed by other tests loading the machine
        metrics.collect()
        costs.append(time.process_time() - started)
    assert statistics.median(costs) < 0.010, costs


# --- MCP --------------------------------------------------------------------------------------------


async def test_the_mcp_tool_answers_the_same_figures(daemon):
    async with streamable_http_client(f"{daemon.url}/mcp") as (read, write_stream):
        async with ClientSession(read, write_stream) as session:
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            assert "sandboxMetrics" in tools
            result = await asyncio.wait_for(session.call_tool("sandboxMetrics", {}), 30)
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["memory"]["totalBytes"] == expected_memory_total() and data["disk"]["path"] == str(daemon.workdir)
    assert data["processes"] == [] and data["cpu"]["cores"] > 0


async def test_the_document_describes_both_formats_and_the_json_matches_it(client):
    import jsonschema

    document = await (await client.get("/openapi.json")).json()
    operation = document["paths"]["/metrics"]["get"]
    assert [p["schema"].get("enum") for p in operation["parameters"] if p["name"] == "format"] == [
        ["json", "prometheus"]
    ]
    content = operation["responses"]["200"]["content"]
    assert content["text/plain"]["schema"]["type"] == "string"
    root = {**content["application/json"]["schema"], "components": document["components"]}
    jsonschema.Draft202012Validator(root).validate(await (await client.get("/metrics")).json())
