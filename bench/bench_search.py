"""Search benchmarks on a real tree of ~60k entries (this Python's standard library).

- content search: GET /filesystem-content-search vs the same `rg` command run alone
  (read to the end, or until 100 matches and then killed, as the daemon does);
- fuzzy search: GET /filesystem-search vs `find | fzf --filter` (Debian fzf) over the
  same tree, and the overlap of the top 20 with fzf's for 10 queries.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sysconfig
import time

import aiohttp
from harness import Daemon, Report, ms

CORPUS = sysconfig.get_paths()["stdlib"]
CONTENT_QUERIES = ["app", "page", "component", "router", "server"]
FUZZY_QUERIES = [
    "procserv",
    "handler",
    "sandbox api",
    "test_",
    "main",
    "readme",
    "config",
    "utils",
    "init",
    "http client",
]
RUNS = 5


def rg_alone(argv: list[str], limit: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=CORPUS, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        if b"\0" in line:
            seen += 1
            if limit and seen >= limit:
                proc.kill()
                break
    proc.stdout.close()
    proc.wait()
    return time.perf_counter() - t0


async def content(report: Report, session: aiohttp.ClientSession, daemon: Daemon) -> None:
    from sandbox_api.search.content import find_rg, rg_argv
    from sandbox_api.search.wire import DEFAULT_EXCLUDES

    rg = find_rg()
    assert rg is not None
    for limit, label in ((0, "all"), (100, "maxResults 100")):
        ours, base, totals = [], [], []
        for query in CONTENT_QUERIES:
            for _ in range(RUNS):
                base.append(rg_alone(rg_argv(rg, query, exclude_dirs=frozenset(DEFAULT_EXCLUDES)), limit))
                t0 = time.perf_counter()
                async with session.get(
                    f"{daemon.url}/filesystem-content-search/{CORPUS}",
                    params={"query": query, "maxResults": str(limit)},
                ) as r:
                    body = await r.json()
                ours.append(time.perf_counter() - t0)
                totals.append(body["total"])
        o, b = statistics.median(ours), statistics.median(base)
        report.add(
            "content",
            f"{len(CONTENT_QUERIES)} queries, {label} (median)",
            ms(o),
            f"rg alone {ms(b)}",
            o / b,
            "<= 1.1x",
            note=f"{min(totals)}-{max(totals)} matches",
        )


def fzf_top(query: str) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    out = (
        subprocess.run(
            ["sh", "-c", f"find . -mindepth 1 | cut -b3- | fzf --filter '{query}'"],
            cwd=CORPUS,
            capture_output=True,
            check=False,
        )
        .stdout.decode()
        .splitlines()
    )
    return time.perf_counter() - t0, out[:20]


async def fuzzy(report: Report, session: aiohttp.ClientSession, daemon: Daemon) -> None:
    if shutil.which("fzf") is None:
        report.add("fuzzy", "skipped: Debian fzf is not installed", "")
        return
    ours_t, base_t, overlaps = [], [], []
    for query in FUZZY_QUERIES:
        best_base, best_ours = float("inf"), float("inf")
        for _ in range(3):
            seconds, expected = fzf_top(query)
            best_base = min(best_base, seconds)
            t0 = time.perf_counter()
            params = {"query": query, "maxResults": "20", "excludeHidden": "false", "excludeDirs": ","}
            async with session.get(f"{daemon.url}/filesystem-search/{CORPUS}", params=params) as r:
                body = await r.json()
            best_ours = min(best_ours, time.perf_counter() - t0)
        got = [m["path"] for m in body["matches"]]
        overlaps.append(len(set(got) & set(expected)) / max(1, min(20, len(expected))) if expected else 1.0)
        ours_t.append(best_ours)
        base_t.append(best_base)
    o, b = statistics.median(ours_t), statistics.median(base_t)
    report.add(
        "fuzzy",
        f"{len(FUZZY_QUERIES)} queries over {CORPUS.rsplit('/', 1)[-1]} (median)",
        ms(o),
        f"find|fzf {ms(b)}",
        o / b,
        "<= 1.0x",
    )
    report.add(
        "fuzzy",
        "top-20 overlap with fzf (mean)",
        f"{statistics.mean(overlaps):.2f}",
        "",
        None,
        ">= 0.8",
        note=f"min {min(overlaps):.2f}",
    )


async def main(report: Report) -> None:
    with Daemon() as daemon:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            await content(report, session, daemon)
            await fuzzy(report, session, daemon)


if __name__ == "__main__":
    asyncio.run(main(Report()))
