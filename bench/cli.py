"""`forge run help` against a bare interpreter: the median of N runs each, and their ratio.

    python bench/cli.py [--runs 15]

The target (issue 15) is a ratio of at most 4: the terminal must not pay for backend clients it
does not use. Both are timed as fresh processes, the way a person at a terminal starts them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = [sys.executable, "-c", "import asyncio, json, ssl"]
FORGE = [str(Path(sys.executable).with_name("forge")), "run", "help"]


def timed(argv: list[str], runs: int, env: dict[str, str], cwd: str) -> list[float]:
    """Wall-clock seconds of each run of the command (one unmeasured warm-up first)."""
    samples = []
    for n in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
        if n:
            samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    """Print both medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    # as at a person's terminal: bytecode is cached (this sandbox sets PYTHONDONTWRITEBYTECODE)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FORGE_", "SLACK_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    with tempfile.TemporaryDirectory() as cwd:
        bare = statistics.median(timed(BARE, runs, env, cwd))
        forge = statistics.median(timed(FORGE, runs, env, cwd))
    print(f"bare python -c 'import asyncio, json, ssl': {bare * 1000:7.1f} ms (median of {runs})")
    print(f"forge run help:                            {forge * 1000:7.1f} ms (median of {runs})")
    print(f"ratio:                                     {forge / bare:7.2f}x (target <= 4x)")


if __name__ == "__main__":
    main()
