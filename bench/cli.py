"""`forge run help` against a bare interpreter: the median of N runs each, and their ratio.

    python bench/cli.py [--runs 21]

The target (issue 15) is a ratio of at most 4: the terminal must not pay for backend clients it
does not use. Both are timed as fresh processes, the way a person at a terminal starts them; CPU
time is printed beside wall time because it holds steady on a machine that is busy.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = [sys.executable, "-c", "import asyncio, json, ssl"]
FORGE = [str(Path(sys.executable).with_name("forge")), "run", "help"]


def timed(commands: list[list[str]], runs: int, env: dict[str, str], cwd: str) -> list[tuple]:
    """Median wall-clock and CPU (user + sys) seconds of each command.

    The commands take turns, run after run, so a machine that slows down midway slows both alike;
    one unmeasured round warms the caches first.
    """
    walls: list[list[float]] = [[] for _ in commands]
    cpus: list[list[float]] = [[] for _ in commands]
    for n in range(runs + 1):
        for i, argv in enumerate(commands):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if n:
                walls[i].append(time.perf_counter() - started)
                cpus[i].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(walls, cpus, strict=True)]


def main() -> None:
    """Print both medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    runs = parser.parse_args().runs
    # as at a person's terminal: bytecode is cached (this sandbox sets PYTHONDONTWRITEBYTECODE)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FORGE_", "SLACK_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    with tempfile.TemporaryDirectory() as cwd:
        (bare, bare_cpu), (forge, forge_cpu) = timed([BARE, FORGE], runs, env, cwd)
    rows = [
        (
            "bare python -c 'import asyncio, json, ssl'",
            f"{bare * 1e3:.1f}",
            f"{bare_cpu * 1e3:.1f}",
        ),
        ("forge run help", f"{forge * 1e3:.1f}", f"{forge_cpu * 1e3:.1f}"),
        ("ratio (target <= 4x)", f"{forge / bare:.2f}x", f"{forge_cpu / bare_cpu:.2f}x"),
    ]
    print(f"{'medians of ' + str(runs) + ' runs':44} {'wall ms':>9} {'cpu ms':>9}")
    for label, wall, cpu in rows:
        print(f"{label:44} {wall:>9} {cpu:>9}")
    print(f"load average while measured: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
