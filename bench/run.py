"""`make bench`: run every benchmark module (or those named) and save the figures.

    python bench/run.py            # all
    python bench/run.py process    # bench_process.py only

Each figure is printed with its baseline and ratio as it is measured; all of them are
saved to bench/results.json with the machine and the date.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from harness import Report  # noqa: E402


def modules(names: list[str]) -> list[str]:
    found = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if not names:
        return found
    return [m for m in found if m.removeprefix("bench_") in names or m in names]


async def main(names: list[str]) -> None:
    report = Report()
    print(f"{'bench':<10} {'case':<44} {'figure':<28} {'baseline':<28} {'ratio':<8} target")
    for name in modules(names):
        started = time.monotonic()
        module = importlib.import_module(name)
        await module.main(report)
        print(f"# {name}: {time.monotonic() - started:.0f} s", flush=True)
    report.save(command=" ".join(["python bench/run.py", *names]) if names else "make bench")
    print(f"saved {HERE / 'results.json'} and {HERE / 'results.md'}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
